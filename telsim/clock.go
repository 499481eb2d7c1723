package telsim

import "time"

// Clock is the time source of a Server: the timers behind reply latency, the
// flap period, and the back-off between accept or listen retries. Tests inject
// a fake one with WithClock so that timing-dependent behaviour (flap in
// particular) is driven step by step instead of by sleeping. Implementations
// must be safe for concurrent use.
type Clock interface {
	// NewTimer returns a started timer that fires once after d.
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer created by a Clock. Its methods follow
// time.Timer (Go ≥ 1.23 semantics: no stale value after Stop or Reset). A
// Timer is used by one goroutine at a time.
type Timer interface {
	// C returns the channel on which the firing time is delivered.
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it was active.
	Stop() bool
	// Reset re-arms the timer to fire after d; it reports whether it was
	// active.
	Reset(d time.Duration) bool
}

// realClock is the wall clock.
type realClock struct{}

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time        { return t.t.C }
func (t realTimer) Stop() bool                 { return t.t.Stop() }
func (t realTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }

// unixNow returns the wall time of c in Unix ns, for tombstone expiry: c's
// own Now if it has one (a fake clock in tests), else time.Now.
func unixNow(c Clock) func() int64 {
	if n, ok := c.(interface{ Now() time.Time }); ok {
		return func() int64 { return n.Now().UnixNano() }
	}
	return func() int64 { return time.Now().UnixNano() }
}
