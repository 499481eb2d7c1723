package xmlapi

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"switchboard/internal/clock/clocktest"
)

// TestAttackerCannotLockOutHostFromItsAddress: "a host is not locked out
// by someone guessing its password elsewhere" (operations.md): its address
// stays trusted for the account for auth.trust_ttl after its latest
// sign-in. Before the fix the trust lasted auth.cache_ttl (5 min), while
// one guess per throttle_max_delay keeps the account's throttle at its cap
// as long as the attacker likes: a host signing in less often than every 5
// minutes was refused 069907 with the right password.
func TestAttackerCannotLockOutHostFromItsAddress(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth.ThrottleFreeFailures = 5 // the defaults
	cfg.Auth.ThrottleBaseDelay = time.Second
	cfg.Auth.ThrottleMaxDelay = 5 * time.Minute
	cfg.Auth.CacheTTL = 5 * time.Minute
	cfg.Auth.ThrottleHold = -1 // answer throttled logins at once: the clock is the test's
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	clk := clocktest.New(time.Unix(1e9, 0))
	a, err := newAuthenticator(cfg, clk.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	host, attacker := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("198.51.100.7")
	login := func(pw string, from netip.Addr) *Fault {
		_, f := a.authenticate(context.Background(), &credentials{present: true, webExID: "hostid", siteID: "0000", password: pw}, from)
		return f
	}
	if f := login("hostpassword", host); f != nil {
		t.Fatalf("the host's first sign-in: %v", f)
	}
	// The attacker guesses whenever the throttle lets it: a guess per
	// delay, so at most one per 5 minutes once at the cap.
	guesses := 0
	for end := clk.Now().Add(time.Hour); ; {
		if w, _ := a.thr.check(a.thr.nameHash("hostid"), attacker, clk.Now()); w > 0 {
			clk.Advance(w)
			continue
		}
		if f := login("guess", attacker); f == nil || f.ID != ExcAuth {
			t.Fatalf("guess: %v", f)
		}
		if guesses++; !clk.Now().Before(end) {
			break
		}
	}
	// An hour later (a minute after the attacker's latest guess) the host
	// signs in again, from the same address, with its password.
	clk.Advance(time.Minute)
	f := login("hostpassword", host)
	t.Logf("%d guesses in an hour from one address; the host's sign-in from its own address: %v", guesses, f)
	if f != nil {
		t.Fatalf("the host is locked out of its account from its usual address by %d guesses an hour from elsewhere: %s %s", guesses, f.ID, f.Reason)
	}
}
