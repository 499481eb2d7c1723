package testsupport

import (
	"testing"
	"time"
)

// WaitBound is how long WaitFor and WaitForStep wait before failing the
// test: long enough that only a condition that will never hold reaches it.
const WaitBound = 30 * time.Second

// Poll calls cond until it holds or within passes, and reports whether it
// held. step, if not nil, runs before each new poll (to advance a fake clock,
// say), at a fixed short interval; without step the interval grows from
// 100 µs to 5 ms, so a condition that holds soon is seen soon and a long
// wait does not spin.
func Poll(within time.Duration, step func(), cond func() bool) bool {
	deadline := time.Now().Add(within)
	pause := 100 * time.Microsecond
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		if step != nil {
			step()
		} else {
			pause = min(2*pause, 5*time.Millisecond)
		}
		time.Sleep(pause)
	}
	return true
}

// WaitFor polls cond until it holds, failing the test with what if it does
// not within WaitBound.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !Poll(WaitBound, nil, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// WaitForStep is WaitFor calling step before each new poll (e.g. advancing
// a fake clock by a little).
func WaitForStep(t testing.TB, what string, step func(), cond func() bool) {
	t.Helper()
	if !Poll(WaitBound, step, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}
