// Package clocktest is the fake clock.Clock of tests: time moves only when
// the test calls Advance, and the timers that Advance passes fire in the
// order of their deadlines, on the caller's goroutine (AfterFunc's function
// too), so a test knows that what a timer triggers has started when Advance
// returns.
package clocktest

import (
	"slices"
	"sync"
	"time"

	"switchboard/internal/clock"
)

// Clock is a manual clock.Clock, safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*timer]struct{} // armed timers
}

var _ clock.Clock = (*Clock)(nil)

// New returns a Clock that reads start until it is advanced.
func New(start time.Time) *Clock {
	return &Clock{now: start, timers: map[*timer]struct{}{}}
}

type timer struct {
	c     *Clock
	ch    chan time.Time // NewTimer
	f     func()         // AfterFunc
	when  time.Time
	armed bool
}

// Now returns the fake time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer that fires when the clock reaches now+d (at once
// if d <= 0).
func (c *Clock) NewTimer(d time.Duration) clock.Timer {
	t := &timer{c: c, ch: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

// AfterFunc returns a timer that calls f, on the goroutine of Advance, when
// the clock reaches now+d (at once if d <= 0).
func (c *Clock) AfterFunc(d time.Duration, f func()) clock.Timer {
	t := &timer{c: c, f: f}
	t.Reset(d)
	return t
}

// After returns the channel of a new timer of d.
func (c *Clock) After(d time.Duration) <-chan time.Time { return c.NewTimer(d).C() }

// Advance moves the clock by d and fires the timers that are due, earliest
// first.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*timer
	for t := range c.timers {
		if !t.when.After(c.now) {
			t.armed = false
			delete(c.timers, t)
			due = append(due, t)
		}
	}
	now := c.now
	c.mu.Unlock()
	slices.SortStableFunc(due, func(a, b *timer) int { return a.when.Compare(b.when) })
	for _, t := range due {
		if t.f != nil {
			t.f()
			continue
		}
		select {
		case t.ch <- now:
		default:
		}
	}
}

// Active counts the armed timers.
func (c *Clock) Active() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Armed returns how long from now each armed timer fires: timers has those
// of NewTimer, funcs those of AfterFunc.
func (c *Clock) Armed() (timers, funcs []time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for t := range c.timers {
		if t.f != nil {
			funcs = append(funcs, t.when.Sub(c.now))
		} else {
			timers = append(timers, t.when.Sub(c.now))
		}
	}
	return timers, funcs
}

func (t *timer) C() <-chan time.Time { return t.ch }

func (t *timer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	was := t.armed
	t.armed, t.when = true, t.c.now.Add(d)
	t.c.timers[t] = struct{}{}
	t.drainLocked()
	t.c.mu.Unlock()
	if d <= 0 {
		t.c.Advance(0)
	}
	return was
}

func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.armed
	t.armed = false
	delete(t.c.timers, t)
	t.drainLocked()
	return was
}

func (t *timer) drainLocked() {
	if t.ch != nil {
		select {
		case <-t.ch:
		default:
		}
	}
}
