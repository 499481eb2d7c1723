package main

import (
	"context"
	"runtime"
	"time"
)

// clock is the time seam of the load loops: tests drive them with a fake
// that jumps instead of sleeping.
type clock interface {
	Now() time.Time
	// SleepUntil returns once t has passed, or with ctx's error if ctx
	// ends first.
	SleepUntil(ctx context.Context, t time.Time) error
}

// realClock sleeps on a Go timer, then spins (yielding) for the last spin
// of every wait. Go timers on an idle process wake up to about 1 ms late,
// which an open loop would report as latency; spinning removes that at
// the cost of CPU. A realClock is safe for concurrent use.
type realClock struct {
	spin time.Duration
}

func (realClock) Now() time.Time { return time.Now() }

func (c realClock) SleepUntil(ctx context.Context, t time.Time) error {
	if d := time.Until(t) - c.spin; d > 0 {
		timer := time.NewTimer(d)
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
