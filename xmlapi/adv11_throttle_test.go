package xmlapi

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"switchboard/internal/clock/clocktest"
)

// TestAccountThrottleCountsEveryNameOfTheAccount: issue 11 promises failed
// logins throttled per account. The throttle keys the claimed name as
// written, ASCII case folded (throttle.nameHash), while the account is
// found by strings.ToLower (authenticator.match), which also folds
// non-ASCII capitals onto ASCII letters: "hostİd" (U+0130) and "hostid"
// name the same account, as do its webExID and its email. Each spelling
// gets its own failure count, so once "hostid" is throttled a guesser
// (from fresh addresses, as a distributed one is) carries on under
// "hostİd", "johnsmith@xyz.com", "JOHNSMİTH@xyz.com"... each with its own
// free failures and its own delay: 2^(number of i and k) spellings of a
// name, times two with the email.
//
// On the authenticator with the test's clock: no timing involved.
func TestAccountThrottleCountsEveryNameOfTheAccount(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth.ThrottleFreeFailures = 5 // the defaults
	cfg.Auth.ThrottleBaseDelay = time.Second
	cfg.Auth.ThrottleMaxDelay = 5 * time.Minute
	cfg.Auth.ThrottleHold = -1
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	clk := clocktest.New(time.Unix(1e9, 0))
	a, err := newAuthenticator(cfg, clk.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	addrs := 0
	fresh := func() netip.Addr { // a new client address for every guess
		addrs++
		return netip.MustParseAddr(fmt.Sprintf("198.51.%d.%d", 100+addrs/250, addrs%250+1))
	}
	login := func(c credentials, pw string) *Fault {
		c.present, c.siteID, c.password = true, "0000", pw
		_, f := a.authenticate(context.Background(), &c, fresh())
		return f
	}
	spellings := []credentials{{webExID: "hostİd"}, {email: "johnsmith@xyz.com"}, {email: "JOHNSMİTH@XYZ.COM"}}
	for _, c := range spellings {
		if f := login(c, "hostpassword"); f != nil {
			t.Fatalf("%+v with the account's password: %s %s (not the same account?)", c, f.ID, f.Reason)
		}
	}
	// Throttle the account under its webExID: guesses until one is
	// refused (past the free failures).
	n := 0
	for ; ; n++ {
		f := login(credentials{webExID: "hostid"}, "guess")
		if f != nil && f.ID == ExcThrottled {
			break
		}
		if f == nil || f.ID != ExcAuth || n > 2*cfg.Auth.ThrottleFreeFailures {
			t.Fatalf("guess %d at hostid: %v", n+1, f)
		}
	}
	t.Logf("hostid throttled after %d failed guesses", n)
	// The same account under its other names must be throttled too.
	for _, c := range spellings {
		if f := login(c, "guess"); f == nil || f.ID != ExcThrottled {
			got := "signed in"
			if f != nil {
				got = f.ID + " " + f.Reason
			}
			t.Errorf("the throttled account guessed as %+v: %s, want %s (a password check spent on a throttled account)", c, got, ExcThrottled)
		}
	}
}
