package xmlapi

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// account is a configured host, ready for checks.
type account struct {
	index     int
	webExID   string // as configured; the owner written into records
	email     string
	siteID    int64
	hasSiteID bool
	siteName  string // lower case; "" if none
	partnerID string
	hash      *passwordHash
	hashText  string // password_hash as configured: binds session tickets to it
	tz        int
}

// siteKey identifies the account's site in meeting records.
func (a *account) siteKey() string {
	if a.hasSiteID {
		return "id:" + strconv.FormatInt(a.siteID, 10)
	}
	return "name:" + a.siteName
}

// credentials is what a securityContext carried.
type credentials struct {
	present     bool // a securityContext element was seen
	webExID     string
	email       string
	password    string
	siteID      string
	siteName    string
	partnerID   string
	ticket      string // sessionTicket
	otherSecret bool   // webExAccessToken
}

// authenticator checks credentials against the configured accounts. It is
// safe for concurrent use.
type authenticator struct {
	byID    map[string]*account // by foldName(webExID)
	byEmail map[string]*account // by foldName(email)
	// dummies[i] has the parameters (bcrypt cost, argon2id m, t, p) of
	// account i's hash and matches no password. An unknown name is checked
	// against dummies[keyed hash of the name mod len], so it costs what a
	// known name costs, whatever the accounts' costs: its cost is drawn
	// from the accounts' own, stable for one name.
	dummies  []*passwordHash
	sem      chan struct{} // bounds slow hash checks in progress
	hashWait time.Duration // longest wait for a slot before answering busy
	holdMax  time.Duration // longest hold of a throttled login's answer
	thr      *throttle
	tickets  ticketer
	log      *zap.Logger
	now      func() time.Time
	ttl      time.Duration // ≤ 0: no cache
	size     int
	macKey   [32]byte

	// Observability and test seams.
	slowChecks atomic.Uint64                       // slow hash checks run
	running    atomic.Int32                        // slow hash checks running now
	peak       atomic.Int32                        // most slow hash checks ever running at once
	onVerify   atomic.Pointer[func(*passwordHash)] // called under the slot, before each slow check

	mu sync.Mutex
	// Guarded by mu.
	cache    map[[32]byte]time.Time   // HMAC(account, password) → expiry
	inflight map[[32]byte]*hashFlight // slow checks in progress, shared by identical requests
}

// hashFlight is one slow check that concurrent requests with the same
// credentials wait for, instead of each paying for it (a cold cache under
// load would otherwise queue hundreds of identical bcrypt runs).
type hashFlight struct {
	done chan struct{} // closed when ok and err are set
	ok   bool
	err  error
}

func newAuthenticator(cfg *Config, now func() time.Time, log *zap.Logger) (*authenticator, error) {
	if log == nil {
		log = zap.NewNop()
	}
	a := &authenticator{
		byID:     map[string]*account{},
		byEmail:  map[string]*account{},
		sem:      make(chan struct{}, cfg.Auth.MaxConcurrentHashes),
		hashWait: cfg.Auth.HashWait,
		holdMax:  cfg.Auth.ThrottleHold,
		thr:      newThrottle(&cfg.Auth),
		log:      log,
		now:      now,
		ttl:      cfg.Auth.CacheTTL,
		size:     cfg.Auth.CacheSize,
		cache:    map[[32]byte]time.Time{},
		inflight: map[[32]byte]*hashFlight{},
	}
	if _, err := rand.Read(a.macKey[:]); err != nil {
		return nil, err
	}
	var err error
	if a.tickets.key, err = ticketKey(cfg.Auth.TicketSecretFile); err != nil {
		return nil, err
	}
	dummyBy := map[string]*passwordHash{}
	for i, ac := range cfg.Accounts {
		h, err := parseHash(ac.PasswordHash)
		if err != nil {
			return nil, err
		}
		d := dummyBy[h.params()]
		if d == nil {
			if d, err = dummyLike(h); err != nil {
				return nil, err
			}
			dummyBy[h.params()] = d
		}
		a.dummies = append(a.dummies, d)
		acc := &account{index: i, webExID: ac.WebExID, email: ac.Email, siteName: foldName(ac.SiteName),
			partnerID: ac.PartnerID, hash: h, hashText: ac.PasswordHash, tz: DefaultTimeZoneID}
		if ac.SiteID != "" {
			acc.siteID, err = strconv.ParseInt(ac.SiteID, 10, 64)
			if err != nil {
				return nil, err
			}
			acc.hasSiteID = true
		}
		if ac.TimeZoneID != nil {
			acc.tz = *ac.TimeZoneID
		}
		a.byID[foldName(ac.WebExID)] = acc
		if ac.Email != "" {
			a.byEmail[foldName(ac.Email)] = acc
		}
	}
	return a, nil
}

// authenticate returns the account c identifies, or a FAILURE: 030002 for
// anything wrong with the credentials (the reason says what is missing, but
// never whether the user exists), ExcThrottled when the claimed name or
// the client address from has failed too often lately (throttle.go), and
// ExcBusy when no slow hash check could start within auth.hash_wait. It
// implements the rule of docs/webex-xml.md §3: (siteName or siteID) and
// (webExID or email) and (password or sessionTicket). A password, when
// given, is checked and a ticket beside it ignored; a ticket alone is
// checked by checkTicket. webExAccessToken is not supported. from may be
// the zero Addr (no address throttle).
func (a *authenticator) authenticate(ctx context.Context, c *credentials, from netip.Addr) (*account, *Fault) {
	switch {
	case !c.present:
		return nil, &Fault{ID: ExcAuth, Reason: "securityContext is required", Elem: "header/securityContext"}
	case c.siteID == "" && c.siteName == "":
		return nil, &Fault{ID: ExcAuth, Reason: "securityContext needs siteName or siteID", Elem: "securityContext/siteID"}
	case c.webExID == "" && c.email == "":
		return nil, &Fault{ID: ExcAuth, Reason: "securityContext needs webExID or email", Elem: "securityContext/webExID"}
	case c.password == "" && c.ticket != "":
		return a.checkTicket(c)
	case c.password == "" && c.otherSecret:
		return nil, &Fault{ID: ExcAuth, Reason: "Only password and sessionTicket authentication are supported", Elem: "securityContext/password"}
	case c.password == "":
		return nil, &Fault{ID: ExcAuth, Reason: "securityContext needs a password or a sessionTicket", Elem: "securityContext/password"}
	}
	name := a.throttleName(c)
	if wait, _ := a.thr.check(name, from, a.now()); wait > 0 {
		a.hold(ctx, wait)
		return nil, throttledFault(wait)
	}
	acc := a.match(c)
	var ok bool
	var err error
	if acc == nil {
		// Spend what a real check of a known name costs, shared between
		// identical concurrent requests as a known name's is (else the
		// count of checks, and the answers of a burst, would tell).
		_, err = a.verify(ctx, nil, c.password, name, from)
	} else {
		ok, err = a.verify(ctx, acc, c.password, name, from)
	}
	if err != nil {
		return nil, authErrFault(err)
	}
	if !ok {
		a.failed(acc, name, from)
		return nil, faultAuth
	}
	a.thr.succeed(name, from, a.now())
	return acc, nil
}

// checkTicket signs in with a sessionTicket alone: 030047 unless it is a
// ticket issued to the account the securityContext names, unexpired. A
// ticket costs one HMAC, so it needs neither a hash slot nor the login
// throttle (a guess is as hopeless as guessing the secret).
func (a *authenticator) checkTicket(c *credentials) (*account, *Fault) {
	acc := a.match(c)
	if !a.tickets.check(c.ticket, acc, a.now()) {
		return nil, faultTicket
	}
	return acc, nil
}

// issueTicket returns a new session ticket for acc and its issue time.
func (a *authenticator) issueTicket(acc *account) (string, time.Time) {
	now := a.now()
	return a.tickets.issue(acc, now), now
}

// failed counts a failed login and logs each key it throttles. The name is
// logged only when it is a configured account's: an unknown one may be a
// password typed in the wrong field.
func (a *authenticator) failed(acc *account, name uint64, from netip.Addr) {
	nd, ad := a.thr.fail(name, from, a.now())
	if nd > 0 {
		fs := []zap.Field{zap.String("key", "account"), zap.Duration("delay", nd)}
		if acc != nil {
			fs = append(fs, zap.String("user", acc.webExID))
		} else {
			fs = append(fs, zap.Bool("known", false))
		}
		a.log.Warn("login throttled", fs...)
	}
	if ad > 0 {
		a.log.Warn("login throttled", zap.String("key", "address"), zap.Stringer("addr", from), zap.Duration("delay", ad))
	}
}

// hold delays a throttled login's answer by its remaining wait, at most
// auth.throttle_hold, or until ctx ends: a client that ignores Retry-After
// and posts again at once then sends a few requests a second per
// connection instead of thousands. Holding costs a parked goroutine, no
// CPU.
func (a *authenticator) hold(ctx context.Context, wait time.Duration) {
	d := min(wait, a.holdMax)
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// errHashBusy: no slow hash check slot freed within auth.hash_wait.
var errHashBusy = errors.New("xmlapi: every password check slot busy")

// throttledError: the throttle refused the login once a slot was free
// (failures recorded while it waited).
type throttledError struct{ wait time.Duration }

func (e *throttledError) Error() string { return fmt.Sprintf("xmlapi: login throttled for %v", e.wait) }

// authErrFault maps an error of a slow check to its FAILURE. None of them
// is the daemon's doing, so none is 000035: a cancelled or expired request
// context while waiting for a slot is the sign-in service being busy too.
func authErrFault(err error) *Fault {
	var te *throttledError
	if errors.As(err, &te) {
		return throttledFault(te.wait)
	}
	return faultBusy
}

// verify checks password against acc: from the cache, else by joining an
// identical check in flight, else by a slow check that it remembers.
//
// acc nil stands for an unknown name: it is checked against the dummy hash
// its name maps to (never accepted, never remembered), joining identical
// checks in flight like a known name, so that neither the work nor the
// answers tell the two apart.
func (a *authenticator) verify(ctx context.Context, acc *account, password string, name uint64, from netip.Addr) (bool, error) {
	h := a.dummies[name%uint64(len(a.dummies))]
	if acc != nil {
		h = acc.hash
	}
	if a.ttl <= 0 {
		return a.slowVerify(ctx, h, password, name, from)
	}
	k := a.mac(acc, name, password)
	now := a.now()
	a.mu.Lock()
	if exp, ok := a.cache[k]; ok {
		if !now.After(exp) {
			a.mu.Unlock()
			return true, nil
		}
		delete(a.cache, k)
	}
	if fl, ok := a.inflight[k]; ok {
		a.mu.Unlock()
		select {
		case <-fl.done:
			return fl.ok, fl.err
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	fl := &hashFlight{done: make(chan struct{})}
	a.inflight[k] = fl
	a.mu.Unlock()

	// The check runs under the first caller's context; if that ends
	// first, the waiters get its error and retry on their next request.
	fl.ok, fl.err = a.slowVerify(ctx, h, password, name, from)
	if acc == nil {
		fl.ok = false // a dummy hash admits no one
	}
	a.mu.Lock()
	delete(a.inflight, k)
	if fl.ok {
		a.rememberLocked(k, a.now())
	}
	a.mu.Unlock()
	close(fl.done)
	return fl.ok, fl.err
}

// foldName is the one case folding of names (webExID, email, siteName):
// two spellings name the same account exactly when they fold alike. It is
// Unicode lower casing, so "HostID", "hostİd" (U+0130 for the I) and
// "hostid" are one name, and the login throttle counts them as one
// (throttleName).
func foldName(s string) string { return strings.ToLower(s) }

// throttleName is the name the login throttle counts c's attempt under:
// the account's when c's identity names a configured account, whichever
// of its names (webExID or email) and however spelled, so that an
// account's guesses share one count; else the identity, folded. It reads
// only the identity, never the site fields, so that it is the same for a
// name whatever else a request says.
//
// An email that is an account's counts under the account's webExID: a
// caller that has throttled the webExID sees that email throttled too,
// which tells it the two name one account. That is the price of counting
// the account once; counting each name apart would give every account
// twice the guesses. An email that is no account's counts under its own
// name, apart from webExIDs, so that it never throttles an account whose
// webExID is spelled like it.
func (a *authenticator) throttleName(c *credentials) uint64 {
	if c.webExID != "" {
		return a.thr.nameHash(c.webExID)
	}
	if acc := a.byEmail[foldName(c.email)]; acc != nil {
		return a.thr.nameHash(acc.webExID)
	}
	return a.thr.emailHash(c.email)
}

// match finds the account the identity and site fields name, or nil.
func (a *authenticator) match(c *credentials) *account {
	var acc *account
	if c.webExID != "" {
		acc = a.byID[foldName(c.webExID)]
		if acc == nil {
			return nil
		}
		if c.email != "" && foldName(c.email) != foldName(acc.email) {
			return nil
		}
	} else {
		acc = a.byEmail[foldName(c.email)]
		if acc == nil {
			return nil
		}
	}
	if c.siteID != "" {
		n, err := strconv.ParseInt(c.siteID, 10, 64)
		if err != nil || !acc.hasSiteID || n != acc.siteID {
			return nil
		}
	}
	if c.siteName != "" && (acc.siteName == "" || foldName(c.siteName) != acc.siteName) {
		return nil
	}
	if c.partnerID != "" && acc.partnerID != "" && c.partnerID != acc.partnerID {
		return nil
	}
	return acc
}

// slowVerify runs a hash check under the concurrency bound. It waits at
// most auth.hash_wait for a slot (errHashBusy), and once it has one checks
// the throttle again: failures counted while it waited may have throttled
// name or from, and then it spends no hash (*throttledError).
func (a *authenticator) slowVerify(ctx context.Context, h *passwordHash, password string, name uint64, from netip.Addr) (bool, error) {
	select {
	case a.sem <- struct{}{}:
	default:
		t := time.NewTimer(a.hashWait)
		select {
		case a.sem <- struct{}{}:
			t.Stop()
		case <-t.C:
			return false, errHashBusy
		case <-ctx.Done():
			t.Stop()
			return false, ctx.Err()
		}
	}
	defer func() { <-a.sem }()
	if wait, _ := a.thr.check(name, from, a.now()); wait > 0 {
		return false, &throttledError{wait: wait}
	}
	a.slowChecks.Add(1)
	n := a.running.Add(1)
	defer a.running.Add(-1)
	for p := a.peak.Load(); n > p && !a.peak.CompareAndSwap(p, n); p = a.peak.Load() {
	}
	if f := a.onVerify.Load(); f != nil {
		(*f)(h)
	}
	return h.verify([]byte(password)), nil
}

// mac keys the cache and the checks in flight: the account (or, for an
// unknown name, the name's hash) and the password.
func (a *authenticator) mac(acc *account, name uint64, password string) [32]byte {
	m := hmac.New(sha256.New, a.macKey[:])
	var idx [9]byte
	if acc != nil {
		binary.BigEndian.PutUint64(idx[1:], uint64(acc.index))
	} else {
		idx[0] = 1
		binary.BigEndian.PutUint64(idx[1:], name)
	}
	m.Write(idx[:])
	m.Write([]byte(password))
	var out [32]byte
	m.Sum(out[:0])
	return out
}

// rememberLocked caches a verified pair. a.mu must be held.
func (a *authenticator) rememberLocked(k [32]byte, now time.Time) {
	if len(a.cache) >= a.size {
		for ck, exp := range a.cache {
			if now.After(exp) {
				delete(a.cache, ck)
			}
		}
		// Still full: drop arbitrary entries (map order is random); they
		// only cost one more slow check.
		for ck := range a.cache {
			if len(a.cache) < a.size {
				break
			}
			delete(a.cache, ck)
		}
	}
	a.cache[k] = now.Add(a.ttl)
}
