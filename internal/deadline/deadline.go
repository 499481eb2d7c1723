package deadline

import (
	"context"
	"time"
)

// Deadline is a context.Context carrying a deadline and nothing else,
// reused from one request to the next: each request has one for itself and
// one per tier attempt, and context.WithTimeout for those cost a timer, a
// timerCtx, a channel and (for the attempt) registration with its parent,
// every time — about a quarter of the daemon's own CPU per request under
// pipelined load (bench/results/throughput.txt). A deadline keeps its timer
// and channel across uses: Start re-arms the timer, Stop disarms it, and
// only a use that actually expired costs a new channel and timer.
//
// Contract: Start and Stop are called by the goroutine that owns the
// request, which is also the only one to call the Context methods between
// them (the request path passes it down to pool.RoundTrip and mux.Call,
// which select on Done and read Err on the same goroutine). Never derive a
// context from it (context.WithX on a foreign Context spawns a goroutine);
// use Within instead.
type Deadline struct {
	at    time.Time
	done  chan struct{} // what Done returns: ch, or expired when armed already past
	ch    chan struct{} // closed by timer's function on expiry
	timer *time.Timer
}

var _ context.Context = (*Deadline)(nil)

// expired is the Done channel of a deadline armed already past, as
// context.WithDeadline cancels at once when its deadline has passed.
var expired = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func noop() {}

// Start arms d to expire after timeout.
func (d *Deadline) Start(timeout time.Duration) {
	d.at = time.Now().Add(timeout)
	if timeout <= 0 {
		d.disarm()
		d.done = expired
		return
	}
	if d.timer != nil {
		d.timer.Reset(timeout)
		d.done = d.ch
		return
	}
	ch := make(chan struct{})
	d.ch, d.done = ch, ch
	d.timer = time.AfterFunc(timeout, func() { close(ch) })
}

// Within returns the context for one tier attempt of the request parent:
// parent itself when parent's deadline comes first (as context.WithTimeout
// would: the attempt then ends exactly with the request, and the request's
// Err says so), else d armed for timeout. For a parent that is neither a
// *Deadline nor Background-like (it can be cancelled otherwise), it falls
// back to context.WithTimeout. Call the returned function when the
// attempt is over.
func (d *Deadline) Within(parent context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	p, ok := parent.(*Deadline)
	if !ok && parent.Done() != nil {
		return context.WithTimeout(parent, timeout)
	}
	if ok && time.Until(p.at) <= timeout {
		return p, noop
	}
	d.Start(timeout)
	return d, d.Stop
}

// Stop ends a use of d.
func (d *Deadline) Stop() { d.disarm(); d.done = nil }

// disarm stops the timer. If it already fired (or is firing), its channel
// is or will be closed: the next start makes a new timer and channel.
func (d *Deadline) disarm() {
	if d.timer != nil && !d.timer.Stop() {
		d.timer, d.ch = nil, nil
	}
}

// Deadline implements context.Context.
func (d *Deadline) Deadline() (time.Time, bool) { return d.at, true }

// Done implements context.Context.
func (d *Deadline) Done() <-chan struct{} { return d.done }

// Err implements context.Context.
func (d *Deadline) Err() error {
	select {
	case <-d.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// Value implements context.Context: a deadline carries no values.
func (d *Deadline) Value(any) any { return nil }
