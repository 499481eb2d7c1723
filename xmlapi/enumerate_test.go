package xmlapi

import (
	"context"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"switchboard/internal/testsupport"
)

// TestConcurrentWrongPasswordsDoNotTellKnownNames: an unknown user name
// costs the same hash work as a known one, and the answer does not say
// whether a name exists. Concurrent identical wrong logins share one slow
// check for an unknown name as for a known one. Before the fix only a
// known name's were shared: with the throttle's free failures spent by the
// first checks, the unknown name's later requests were refused 069907
// while the known name's all got 030002.
func TestConcurrentWrongPasswordsDoNotTellKnownNames(t *testing.T) {
	const n = 6
	cfg := testConfig(t)
	cfg.Auth.ThrottleFreeFailures = 2
	cfg.Auth.MaxConcurrentHashes = 1
	cfg.Auth.HashWait = 10 * time.Second
	cfg.Auth.ThrottleHold = time.Millisecond
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	probe := func(webExID string) (answers string, checks uint64) {
		a, err := newAuthenticator(cfg, time.Now, nil)
		if err != nil {
			t.Fatal(err)
		}
		// The first slow check waits until every request has arrived and
		// parked (on the check in flight, or on the hash slot).
		release := make(chan struct{})
		var once sync.Once
		hook := func(*passwordHash) { once.Do(func() { <-release }) }
		a.onVerify.Store(&hook)
		var wg sync.WaitGroup
		got := make([]string, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, f := a.authenticate(context.Background(), &credentials{present: true, webExID: webExID, siteID: "0000", password: "guess"}, netip.Addr{})
				if f == nil {
					got[i] = "ok"
				} else {
					got[i] = f.ID
				}
			}()
		}
		testsupport.WaitFor(t, "the first check to start", func() bool { return a.running.Load() == 1 })
		time.Sleep(200 * time.Millisecond) // the others park behind it
		close(release)
		wg.Wait()
		sort.Strings(got)
		return strings.Join(got, " "), a.slowChecks.Load()
	}
	known, kc := probe("hostid")
	unknown, uc := probe("nobody")
	t.Logf("%d concurrent wrong logins: known name -> [%s], %d slow checks; unknown name -> [%s], %d slow checks", n, known, kc, unknown, uc)
	if known != unknown {
		t.Errorf("the answers tell a known name from an unknown one: known [%s], unknown [%s]", known, unknown)
	}
	if kc != uc {
		t.Errorf("hash work differs: %d slow checks for a known name, %d for an unknown one", kc, uc)
	}
}
