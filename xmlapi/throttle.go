package xmlapi

import (
	"hash/maphash"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Login throttling.
//
// Why: every wrong password costs a slow hash (bcrypt or argon2id, tens of
// milliseconds of one core). Without a brake, a few connections posting
// wrong passwords keep every core busy and genuine requests starve. So
// failed logins are counted twice, per claimed account and per client
// address. The account is counted as one whichever of its names is
// claimed (webExID or email, in any spelling that signs in to it); a name
// that is no account's is counted under its own name, so that the answer
// says nothing about which names exist (authenticator.throttleName says
// what an account's email reveals). After auth.throttle_free_failures
// failures a key is refused for auth.throttle_base_delay, doubling with
// each further failure up to auth.throttle_max_delay. A refused login
// costs no hash and is answered ExcThrottled at once.
//
// An address that signed in successfully to an account is trusted for that
// account for auth.trust_ttl (30 days) from its latest success: the
// account's own throttle does not apply to it, so that an attacker
// guessing a host's password from elsewhere does not lock the host out,
// however rarely the host signs in. The address throttle still applies
// to it. A full table evicts trusted pairs last.
//
// Memory is bounded: at most auth.throttle_entries keys are kept; an entry
// without failures for twice auth.throttle_max_delay is forgotten, and when
// the table is full a new key evicts the entry with the fewest failures
// among a few sampled ones (so a key with many failures outlives a churn
// of one-failure keys). New keys come from failed logins, each behind a
// slow check, and from successful ones: both are few per second.

// keyKind says what a throttle key counts.
type keyKind uint8

const (
	kName    keyKind = iota + 1 // failures for one claimed account name
	kAddr                       // failures from one client address (an IPv6 /64)
	kTrusted                    // a successful sign-in to an account from an address
)

// throttleKey identifies a throttle entry. Names are kept as a keyed hash,
// so that the table's size does not depend on what attackers send.
type throttleKey struct {
	kind keyKind
	name uint64
	addr netip.Addr
}

type throttleEntry struct {
	fails uint32
	last  time.Time // last failure (kName, kAddr) or success (kTrusted)
	until time.Time // refused before this (kName, kAddr); trusted until (kTrusted)
}

// evictSample is how many entries a full table examines to choose the one
// it evicts.
const evictSample = 8

// throttle is the failed-login table. Safe for concurrent use.
type throttle struct {
	free     uint32
	base     time.Duration
	max      time.Duration
	trustTTL time.Duration
	size     int
	seed     maphash.Seed

	mu sync.Mutex
	m  map[throttleKey]throttleEntry // guarded by mu
}

func newThrottle(c *AuthConfig) *throttle {
	trust := max(c.TrustTTL, c.CacheTTL, c.ThrottleMaxDelay)
	return &throttle{free: uint32(c.ThrottleFreeFailures), base: c.ThrottleBaseDelay, max: c.ThrottleMaxDelay,
		trustTTL: trust, size: c.ThrottleEntries, seed: maphash.MakeSeed(), m: map[throttleKey]throttleEntry{}}
}

// nameHash is the keyed hash of a claimed webExID, folded as accounts are
// looked up (foldName): every spelling of one name has one hash.
func (t *throttle) nameHash(webExID string) uint64 { return t.hash(nsWebExID, webExID) }

// emailHash is the keyed hash of a claimed email that names no account,
// folded like nameHash's.
func (t *throttle) emailHash(email string) uint64 { return t.hash(nsEmail, email) }

// Namespaces of the names hashed: a webExID and an email spelled alike
// are different names.
const (
	nsWebExID byte = 'i'
	nsEmail   byte = 'e'
)

func (t *throttle) hash(ns byte, name string) uint64 {
	var h maphash.Hash
	h.SetSeed(t.seed)
	h.WriteByte(ns)
	h.WriteString(foldName(name))
	return h.Sum64()
}

// addrKey folds an address to what one client controls: the address
// itself for IPv4, its /64 for IPv6. An invalid address (no client address
// known, e.g. in-process calls) is kept as is and never throttled.
func addrKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a.WithZone("")
}

// check reports how long a login for name from addr must still wait (0:
// go ahead) and which key refuses it.
func (t *throttle) check(name uint64, addr netip.Addr, now time.Time) (time.Duration, keyKind) {
	var wait time.Duration
	var by keyKind
	t.mu.Lock()
	defer t.mu.Unlock()
	if addr.IsValid() {
		if e, ok := t.m[throttleKey{kind: kAddr, addr: addr}]; ok && now.Before(e.until) {
			wait, by = e.until.Sub(now), kAddr
		}
		if e, ok := t.m[throttleKey{kind: kTrusted, name: name, addr: addr}]; ok && now.Before(e.until) {
			return wait, by
		}
	}
	if e, ok := t.m[throttleKey{kind: kName, name: name}]; ok && now.Before(e.until) {
		if d := e.until.Sub(now); d > wait {
			wait, by = d, kName
		}
	}
	return wait, by
}

// fail counts a failed login for name from addr. It returns the delay now
// imposed on each key that has just become throttled (zero when none).
func (t *throttle) fail(name uint64, addr netip.Addr, now time.Time) (nameDelay, addrDelay time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	nameDelay = t.failLocked(throttleKey{kind: kName, name: name}, now)
	if addr.IsValid() {
		addrDelay = t.failLocked(throttleKey{kind: kAddr, addr: addr}, now)
	}
	return nameDelay, addrDelay
}

func (t *throttle) failLocked(k throttleKey, now time.Time) time.Duration {
	e, ok := t.m[k]
	if ok && t.stale(k, e, now) {
		e = throttleEntry{} // quiet long enough: forgotten
	}
	if !ok {
		t.makeRoomLocked(now)
	}
	e.fails++
	e.last = now
	var d time.Duration
	if e.fails > t.free {
		d = t.base
		for n := e.fails - t.free - 1; n > 0 && d < t.max; n-- {
			d *= 2
		}
		d = min(d, t.max)
		e.until = now.Add(d)
	}
	t.m[k] = e
	return d
}

// succeed trusts addr for name. It does not forget name's failures: an
// attacker's count would otherwise restart with every genuine sign-in;
// the genuine host passes through its trust instead, and counts are
// forgotten after twice auth.throttle_max_delay of quiet.
func (t *throttle) succeed(name uint64, addr netip.Addr, now time.Time) {
	if !addr.IsValid() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	tk := throttleKey{kind: kTrusted, name: name, addr: addr}
	e, ok := t.m[tk]
	if ok && e.until.Sub(now) > t.trustTTL/2 {
		return // fresh enough: spare the write on every cached login
	}
	if !ok {
		t.makeRoomLocked(now)
	}
	t.m[tk] = throttleEntry{last: now, until: now.Add(t.trustTTL)}
}

// makeRoomLocked frees one slot when the table is full: first every
// forgotten entry, else the sampled entry worth least: a failure count
// not yet throttled, then a host's trusted pair, and a throttled count
// last. Junk names flooding the table must wipe out neither a guesser's
// delay nor the hosts' trust (what keeps a guesser from locking them out).
func (t *throttle) makeRoomLocked(now time.Time) {
	if len(t.m) < t.size {
		return
	}
	for k, e := range t.m {
		if t.stale(k, e, now) {
			delete(t.m, k)
		}
	}
	if len(t.m) < t.size {
		return
	}
	var victim throttleKey
	best, n := ^uint32(0), 0
	for k, e := range t.m { // map order is random: a sample
		v := e.fails
		if k.kind == kTrusted {
			v = t.free + 1 // worth more than failures not yet throttled, less than a throttled key's
		}
		if v < best {
			victim, best = k, v
		}
		if n++; n == evictSample {
			break
		}
	}
	delete(t.m, victim)
}

func (t *throttle) stale(k throttleKey, e throttleEntry, now time.Time) bool {
	if k.kind == kTrusted {
		return !now.Before(e.until)
	}
	// Twice the cap: a key at the cap that fails again once its delay has
	// run is delayed again, not forgotten.
	return now.Sub(e.last) >= 2*t.max
}

// len is the number of entries (tests).
func (t *throttle) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// clientAddr returns the address the throttle counts for a request from
// peer (the TCP peer, host:port) with the given X-Forwarded-For values.
// When peer is a trusted proxy, the rightmost forwarded address that is not
// itself a trusted proxy is the client; else the peer is.
func clientAddr(peer string, xff []string, proxies []netip.Prefix) netip.Addr {
	ap, err := netip.ParseAddrPort(peer)
	if err != nil {
		return netip.Addr{}
	}
	a := ap.Addr().Unmap()
	if !inPrefixes(a, proxies) {
		return addrKey(a)
	}
	for i := len(xff) - 1; i >= 0; i-- {
		parts := strings.Split(xff[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			f, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return addrKey(a) // garbage: count the proxy itself
			}
			f = f.Unmap()
			if !inPrefixes(f, proxies) {
				return addrKey(f)
			}
			a = f
		}
	}
	return addrKey(a)
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
