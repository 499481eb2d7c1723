package main

import (
	"context"
	"runtime"
	"time"

	"switchboard/internal/precisesleep"
)

// clock is the time seam of the load loops: tests drive them with a fake
// that jumps instead of sleeping.
type clock interface {
	Now() time.Time
	// SleepUntil returns once t has passed, or with ctx's error if ctx
	// ends first.
	SleepUntil(ctx context.Context, t time.Time) error
}

// pinner is implemented by clocks that sleep better on a goroutine set up
// for it: the open loop calls pin on its scheduling goroutine and unpin
// when it is done.
type pinner interface {
	pin() (unpin func())
}

// shortSleepMax is the longest wait realClock sleeps with shortSleep; longer
// waits first sleep on a Go timer, which ctx can interrupt.
const shortSleepMax = 2 * time.Millisecond

// realClock paces the open loop. A Go timer wakes an idle process up to
// about 1 ms late (the runtime's netpoller waits in whole milliseconds),
// which an open loop would report as latency on every request; so the last
// shortSleepMax of a wait is a nanosleep of the thread (on Linux, pinned
// with a 1 ns timer slack: tens of µs late instead of a millisecond), and
// the last spin of it a busy wait that yields, which is precise but burns
// a core. A realClock is safe for concurrent use.
type realClock struct {
	spin time.Duration
}

func (realClock) Now() time.Time { return time.Now() }

func (c realClock) SleepUntil(ctx context.Context, t time.Time) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := time.Until(t) - c.spin
		if d <= 0 {
			break
		}
		if d <= shortSleepMax {
			shortSleep(d)
			continue
		}
		// Long waits: a Go timer (which ctx can interrupt) to within
		// shortSleepMax of the deadline, then precise short sleeps.
		timer := time.NewTimer(d - shortSleepMax/2)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		}
	}
	for i := 0; time.Now().Before(t); i++ {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		runtime.Gosched()
	}
	return ctx.Err()
}

// timerClock waits on Go timers: about a millisecond late, at no CPU cost,
// and interruptible by ctx. It paces what needs no better (the fault
// schedule), leaving realClock's pinned thread to the load loop. A
// timerClock is safe for concurrent use.
type timerClock struct{}

func (timerClock) Now() time.Time { return time.Now() }

func (timerClock) SleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return ctx.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pin pins the scheduler's goroutine for precise sleeps (precisesleep.Pin).
func (realClock) pin() (unpin func()) { return precisesleep.Pin() }

// shortSleep blocks the pinned thread for d (precisesleep.Sleep).
func shortSleep(d time.Duration) { precisesleep.Sleep(d) }
