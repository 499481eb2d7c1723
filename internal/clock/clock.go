package clock

import "time"

// Clock is a source of time and timers. Implementations must be safe for
// concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a started timer that sends the time on C after d.
	NewTimer(d time.Duration) Timer
	// AfterFunc runs f on its own goroutine after d; the returned timer's
	// C is nil.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a one-shot timer created by a Clock. Its methods follow
// time.Timer with Go 1.23 semantics: after Stop or Reset no stale value is
// received from C. A Timer is used by one goroutine at a time.
type Timer interface {
	// C returns the channel on which the firing time is delivered (nil
	// for a timer of AfterFunc).
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it was
	// active.
	Stop() bool
	// Reset re-arms the timer to fire after d; it reports whether it was
	// active.
	Reset(d time.Duration) bool
}

// Real is the wall clock (the time package). The zero value is ready to use.
type Real struct{}

var _ Clock = Real{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// NewTimer wraps time.NewTimer.
func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

// AfterFunc wraps time.AfterFunc.
func (Real) AfterFunc(d time.Duration, f func()) Timer { return realTimer{time.AfterFunc(d, f)} }

// realTimer is pointer-shaped: converting it to Timer does not allocate.
type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time        { return t.t.C }
func (t realTimer) Stop() bool                 { return t.t.Stop() }
func (t realTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }
