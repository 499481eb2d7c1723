package daemon

import (
	"context"
	"sync/atomic"
	"time"

	"switchboard/wire"
)

const (
	// admitWaitMax bounds how long an admitted request waits for a tier
	// slot (within its own deadline) before it is answered OVERLOADED.
	admitWaitMax = 50 * time.Millisecond
	// minSlots is the floor of the adaptive limit: a few callers are never
	// shed, however slow the tiers answer.
	minSlots = 64
)

// tierSlots sizes admission by what the telephony pools can carry.
//
// server.max_in_flight bounds the requests the daemon holds (memory,
// goroutines); it says nothing about what the tiers can take. A tier's pool
// carries its live connections × pool.max_in_flight calls at once; past that
// a call finds every connection full (mux.ErrBusy) and nothing is sent. So a
// request is only let at the tiers while the requests already there fit in
// the capacity of the first available tier — the one new allocations go to.
//
// Slots are not enough on their own: 2,048 calls queued on a tier whose
// round trips take a few hundred microseconds wait longer than the tier's
// attempt_timeout, and an attempt that times out counts against the tier's
// breaker even though the tier is healthy and the queue is ours. So the
// number of slots is also limited adaptively (additive increase,
// multiplicative decrease): it starts at minSlots, so that a burst arriving
// all at once cannot put thousands of calls on a tier before anything is
// known of its latency; a request quicker than a quarter of the first tier's
// attempt_timeout while at least half the limit is in use raises it by one,
// up to the capacity; a slower one cuts it by a quarter (at most once per
// such period, never below minSlots).
//
// A request past the limit waits up to admitWaitMax for a slot (one frees
// whenever any request ends), then is shed with OVERLOADED: a burst of any
// size gets successes and OVERLOADED, never reaches a pool it would find
// full, and does not queue past the attempt deadlines.
//
// The fast path is atomic adds and loads (the tier list, the limit) and one
// clock read at the end: no lock, no allocation. Only a request that has to
// wait arms a timer (its attempt deadline, idle at that point) and listens
// on freed, which a finishing request signals without blocking while anyone
// waits.
type tierSlots struct {
	active  atomic.Int64 // requests holding a slot
	waiters atomic.Int64 // requests waiting for one
	limit   atomic.Int64 // the adaptive limit; the capacity bounds it too
	lastCut atomic.Int64 // when the limit was last cut, Unix ns
	freed   chan struct{}
}

func newTierSlots() *tierSlots {
	ts := &tierSlots{freed: make(chan struct{}, 64)}
	ts.limit.Store(minSlots)
	return ts
}

// firstAvailable is the first tier new allocations may go to, nil if none.
func (s *service) firstAvailable() *tier {
	for _, t := range *s.tiers.Load() {
		if t.available() {
			return t
		}
	}
	return nil
}

// bound is how many requests may hold a slot now: the adaptive limit within
// the capacity of the first available tier; 0 when no tier is available
// (the request then goes ahead, to be answered UNAVAILABLE).
func (ts *tierSlots) bound(s *service) int64 {
	t := s.firstAvailable()
	if t == nil {
		return 0
	}
	return min(ts.limit.Load(), int64(t.pool.Capacity()))
}

// tryTake takes a slot if one is free.
func (ts *tierSlots) tryTake(s *service) bool {
	b := ts.bound(s)
	if ts.active.Add(1) <= b || b <= 0 {
		return true
	}
	ts.active.Add(-1)
	return false
}

// take takes a slot for the request rs, waiting (bounded by admitWaitMax and
// ctx) while none is free. A nil error means the caller must call give with
// the returned time when the request is done with the tiers; otherwise the
// error is the answer (OVERLOADED, or the context's error).
func (ts *tierSlots) take(ctx context.Context, s *service, rs *reqState) (time.Time, error) {
	if ts.tryTake(s) {
		return time.Now(), nil
	}
	ts.waiters.Add(1)
	defer ts.waiters.Add(-1)
	rs.adl.start(admitWaitMax)
	defer rs.adl.stop()
	for {
		select {
		case <-ts.freed:
		case <-rs.adl.Done():
			if ts.tryTake(s) {
				return time.Now(), nil
			}
			return time.Time{}, errf(wire.StatusOverloaded, "telephony tiers at their in-flight capacity")
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
		if ts.tryTake(s) {
			return time.Now(), nil
		}
	}
}

// give returns the slot taken at since, adapts the limit and wakes a
// waiter, if any.
func (ts *tierSlots) give(s *service, since time.Time) {
	now := time.Now()
	held := now.Sub(since)
	active := ts.active.Add(-1)
	if t := s.firstAvailable(); t != nil {
		target := t.attempt / 4
		capacity := int64(t.pool.Capacity())
		lim := min(ts.limit.Load(), capacity)
		switch last := ts.lastCut.Load(); {
		case held > target:
			if now.UnixNano()-last > int64(target) && ts.lastCut.CompareAndSwap(last, now.UnixNano()) {
				ts.limit.Store(max(lim-lim/4, minSlots))
			}
		case active >= lim/2 && lim < capacity:
			ts.limit.Add(1)
		}
	}
	if ts.waiters.Load() > 0 {
		select {
		case ts.freed <- struct{}{}:
		default:
		}
	}
}
