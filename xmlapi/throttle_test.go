package xmlapi

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"switchboard/internal/clock/clocktest"
)

// TestUnknownUserCostsLikeKnown (issue 10 point 7): with accounts hashed at
// different costs, the check spent on an unknown name has the parameters
// of a configured account's hash, drawn from all of them (not always the
// first account's, which told names with another cost apart) and the same
// every time for one name; a known name's check has its own hash's.
func TestUnknownUserCostsLikeKnown(t *testing.T) {
	cfg := testConfig(t)
	h5, err := bcrypt.GenerateFromPassword([]byte("five"), 5)
	if err != nil {
		t.Fatal(err)
	}
	// accounts[0] hostid cost 4, otherhost cost 4, argonhost argon2id,
	// fivehost cost 5.
	cfg.Accounts = append(cfg.Accounts, Account{WebExID: "fivehost", SiteID: "0", PasswordHash: string(h5)})
	cfg.ApplyDefaults()
	a, err := newAuthenticator(cfg, time.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var used []string
	hook := func(h *passwordHash) {
		mu.Lock()
		used = append(used, h.params())
		mu.Unlock()
	}
	a.onVerify.Store(&hook)
	cost := func(webExID, siteID, siteName string) string {
		mu.Lock()
		used = used[:0]
		mu.Unlock()
		_, f := a.authenticate(context.Background(), &credentials{present: true, webExID: webExID, siteID: siteID, siteName: siteName, password: "wrong"}, netip.Addr{})
		if f == nil || f.ID != ExcAuth {
			t.Fatalf("%s: %v", webExID, f)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(used) != 1 {
			t.Fatalf("%s: %d slow checks, want 1", webExID, len(used))
		}
		return used[0]
	}
	accountParams := map[string]bool{}
	for _, ac := range cfg.Accounts {
		h, _ := parseHash(ac.PasswordHash)
		accountParams[h.params()] = true
		if got := cost(ac.WebExID, ac.SiteID, ac.SiteName); got != h.params() {
			t.Errorf("known %s checked with %s, its hash is %s", ac.WebExID, got, h.params())
		}
	}
	if len(accountParams) != 3 {
		t.Fatalf("want 3 distinct costs among the accounts, got %v", accountParams)
	}
	seen := map[string]int{}
	// Each account is a quarter of the draw: the chance that 60 names miss
	// one is below 1e-7.
	for i := range 60 {
		name := fmt.Sprintf("nobody%d", i)
		p := cost(name, "0", "")
		if !accountParams[p] {
			t.Fatalf("unknown %s checked with %s, no account's cost", name, p)
		}
		if i < 10 {
			if again := cost(strings.ToUpper(name), "0", ""); again != p {
				t.Fatalf("unknown %s checked with %s, then %s", name, p, again)
			}
		}
		seen[p]++
	}
	t.Logf("costs of 60 unknown names: %v", seen)
	for p := range accountParams {
		if seen[p] == 0 {
			t.Errorf("no unknown name costs %s, so a name that does is known: %v", p, seen)
		}
	}
	// The dummies match nothing, and parse as what they imitate.
	for _, d := range a.dummies {
		if d.verify([]byte("")) || d.verify([]byte("hostpassword")) {
			t.Fatal("a dummy hash verifies")
		}
	}
}

func TestThrottleDelays(t *testing.T) {
	now := time.Unix(1e9, 0)
	th := newThrottle(&AuthConfig{ThrottleFreeFailures: 3, ThrottleBaseDelay: time.Second, ThrottleMaxDelay: 8 * time.Second,
		ThrottleEntries: 64, CacheTTL: time.Minute})
	name := th.nameHash("HostID")
	if th.nameHash("hostid") != name {
		t.Fatal("names are not case-folded")
	}
	addr := netip.MustParseAddr("192.0.2.1")
	for i, want := range []time.Duration{0, 0, 0, 1, 2, 4, 8, 8} {
		nd, ad := th.fail(name, addr, now)
		if nd != want*time.Second || ad != want*time.Second {
			t.Fatalf("failure %d: delays %v %v, want %vs", i+1, nd, ad, want)
		}
		if w, _ := th.check(name, addr, now); w != want*time.Second {
			t.Fatalf("failure %d: wait %v", i+1, w)
		}
	}
	// Each key throttles alone: another address for the name, another name
	// from the address.
	other := netip.MustParseAddr("192.0.2.2")
	if w, by := th.check(name, other, now); w != 8*time.Second || by != kName {
		t.Fatalf("name from another address: %v %v", w, by)
	}
	if w, by := th.check(th.nameHash("x"), addr, now); w != 8*time.Second || by != kAddr {
		t.Fatalf("another name from the address: %v %v", w, by)
	}
	// A trusted address passes the name's throttle, not its own.
	th.succeed(name, other, now)
	if w, _ := th.check(name, other, now); w != 0 {
		t.Fatalf("trusted address waits %v", w)
	}
	// After the delay, one more failure is delayed again (capped): a
	// patient attacker gets one guess per max_delay; after twice
	// max_delay of quiet, the count starts over.
	now = now.Add(8 * time.Second)
	if w, _ := th.check(name, addr, now); w != 0 {
		t.Fatalf("after the delay: %v", w)
	}
	if nd, _ := th.fail(name, addr, now); nd != 8*time.Second {
		t.Fatalf("after the delay, a failure: %v", nd)
	}
	now = now.Add(16 * time.Second)
	if nd, _ := th.fail(name, addr, now); nd != 0 {
		t.Fatalf("after quiet, the first failure: %v", nd)
	}
}

// TestThrottleMemoryBound: failures for ever new names from ever new
// addresses never grow the table past throttle_entries, and a heavily
// failing key survives the churn.
func TestThrottleMemoryBound(t *testing.T) {
	now := time.Unix(1e9, 0)
	th := newThrottle(&AuthConfig{ThrottleFreeFailures: 3, ThrottleBaseDelay: time.Second, ThrottleMaxDelay: time.Hour,
		ThrottleEntries: 64, CacheTTL: time.Minute})
	victim := th.nameHash("hostid")
	for range 10 {
		th.fail(victim, netip.Addr{}, now)
	}
	for i := range 10000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		th.fail(th.nameHash(fmt.Sprint("junk", i)), a, now)
		th.succeed(th.nameHash(fmt.Sprint("junk", i)), a, now)
		if n := th.len(); n > 64 {
			t.Fatalf("%d entries after %d junk failures", n, i+1)
		}
	}
	if w, _ := th.check(victim, netip.Addr{}, now); w == 0 {
		t.Fatal("the heavily failing name was evicted by junk")
	}
}

func TestClientAddr(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32")}
	for _, tc := range []struct {
		peer string
		xff  []string
		want string
	}{
		{"198.51.100.1:5000", nil, "198.51.100.1"},
		{"198.51.100.1:5000", []string{"203.0.113.9"}, "198.51.100.1"}, // not a proxy: header ignored
		{"10.1.2.3:5000", []string{"203.0.113.9"}, "203.0.113.9"},
		{"10.1.2.3:5000", []string{"6.6.6.6, 203.0.113.9, 192.0.2.7"}, "203.0.113.9"}, // rightmost untrusted
		{"10.1.2.3:5000", []string{"6.6.6.6", "203.0.113.9"}, "203.0.113.9"},
		{"10.1.2.3:5000", []string{"garbage"}, "10.1.2.3"},
		{"10.1.2.3:5000", nil, "10.1.2.3"},
		{"[2001:db8:1:2:3:4:5:6]:5000", nil, "2001:db8:1:2::"}, // an IPv6 /64 is one client
		{"[::ffff:198.51.100.1]:5000", nil, "198.51.100.1"},    // mapped IPv4
		{"not an address", nil, "invalid IP"},                  // never throttled
	} {
		if got := clientAddr(tc.peer, tc.xff, proxies).String(); got != tc.want {
			t.Errorf("clientAddr(%q, %q) = %s, want %s", tc.peer, tc.xff, got, tc.want)
		}
	}
}

func TestThrottleConfig(t *testing.T) {
	h, _ := testHashes()
	acc := "accounts:\n  - {web_ex_id: a, site_id: '1', password_hash: '" + h[0] + "'}\n"
	cfg, err := ParseConfig([]byte(acc), "min")
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Auth
	if a.HashWait != 500*time.Millisecond || a.ThrottleFreeFailures != 5 || a.ThrottleBaseDelay != time.Second ||
		a.ThrottleMaxDelay != 5*time.Minute || a.ThrottleHold != time.Second || a.ThrottleEntries != 16384 || a.MaxConcurrentHashes < 1 {
		t.Fatalf("defaults %+v", a)
	}
	for name, tc := range map[string]struct{ yaml, want string }{
		"hash wait":   {"auth: {hash_wait: 12s}\n", "auth.hash_wait"},
		"free":        {"auth: {throttle_free_failures: -1}\n", "auth.throttle_free_failures"},
		"base":        {"auth: {throttle_base_delay: 1us}\n", "auth.throttle_base_delay"},
		"max < base":  {"auth: {throttle_base_delay: 2s, throttle_max_delay: 1s}\n", "auth.throttle_max_delay"},
		"hold":        {"auth: {throttle_hold: 15s}\n", "auth.throttle_hold"},
		"entries":     {"auth: {throttle_entries: 10}\n", "auth.throttle_entries"},
		"bad proxy":   {"auth: {trusted_proxies: [10.0.0.0/8, lb.example]}\n", "auth.trusted_proxies[1]"},
		"bad network": {"auth: {trusted_proxies: [10.0.0.0/33]}\n", "auth.trusted_proxies[0]"},
	} {
		_, err := ParseConfig([]byte(tc.yaml+acc), name)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", name, err, tc.want)
		}
	}
	ok, err := ParseConfig([]byte("auth: {trusted_proxies: [10.0.0.0/8, 192.0.2.7, '2001:db8::/32']}\n"+acc), "proxies")
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ok.Auth.proxies()); got != "[10.0.0.0/8 192.0.2.7/32 2001:db8::/32]" {
		t.Fatalf("proxies %s", got)
	}
}

// TestThrottleNamesOfNoAccount: a name that is no account's is counted
// under every spelling of it as one (folded as accounts are looked up),
// and an email that is no account's apart from a webExID spelled like it:
// failures under email "otherhost" must not throttle the account whose
// webExID is otherhost (nor the reverse).
func TestThrottleNamesOfNoAccount(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth.ThrottleFreeFailures = 2
	cfg.Auth.ThrottleHold = -1
	clk := clocktest.New(time.Unix(1e9, 0))
	a, err := newAuthenticator(cfg, clk.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	addrs := 0
	login := func(c credentials) *Fault {
		addrs++ // a fresh address per guess: only the name's count applies
		c.present, c.siteID, c.password = true, "0", "guess"
		_, f := a.authenticate(context.Background(), &c, netip.AddrFrom4([4]byte{198, 51, 100, byte(addrs)}))
		return f
	}
	for range 3 {
		login(credentials{email: "otherhost"})
	}
	if f := login(credentials{email: "OTHERHOST"}); f == nil || f.ID != ExcThrottled {
		t.Fatalf("email OTHERHOST after 3 failures as otherhost: %v, want %s", f, ExcThrottled)
	}
	if f := login(credentials{webExID: "otherhost"}); f == nil || f.ID != ExcAuth {
		t.Fatalf("webExID otherhost after failures of the email otherhost (no account's): %v, want %s", f, ExcAuth)
	}
	for range 3 {
		login(credentials{webExID: "nosuchİd"})
	}
	if f := login(credentials{webExID: "NOSUCHID"}); f == nil || f.ID != ExcThrottled {
		t.Fatalf("webExID NOSUCHID after 3 failures as nosuchİd: %v, want %s", f, ExcThrottled)
	}
	if f := login(credentials{email: "nosuchid"}); f == nil || f.ID != ExcAuth {
		t.Fatalf("email nosuchid after failures of the webExID: %v, want %s", f, ExcAuth)
	}
}
