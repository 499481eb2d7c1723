package pool

import "time"

// Clock is the pool's source of time: backoff, heartbeats and max age all go
// through it, so tests drive them without sleeping. Implementations must be
// safe for concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a started timer that sends on C after d.
	NewTimer(d time.Duration) Timer
	// AfterFunc runs f on its own goroutine after d; the returned
	// timer's C is nil.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is the subset of *time.Timer the pool uses, with Go 1.23 semantics:
// after Stop or Reset no stale value is received from C.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
	Reset(d time.Duration) bool
}

// realClock is the wall clock.
type realClock struct{}

func (realClock) Now() time.Time                            { return time.Now() }
func (realClock) NewTimer(d time.Duration) Timer            { return realTimer{time.NewTimer(d)} }
func (realClock) AfterFunc(d time.Duration, f func()) Timer { return realTimer{time.AfterFunc(d, f)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time        { return t.t.C }
func (t realTimer) Stop() bool                 { return t.t.Stop() }
func (t realTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }
