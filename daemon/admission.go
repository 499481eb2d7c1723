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
	// minSlots is where the adaptive limit starts and its floor (when the
	// capacity is smaller, the capacity): a stall of a few hundred
	// milliseconds at a steady rate never sheds.
	minSlots = 256
)

// tierSlots sizes admission by what the telephony pools can carry.
//
// server.max_in_flight bounds the requests the daemon holds (memory,
// goroutines); it says nothing about what the tiers can take. A tier's pool
// carries its live connections × pool.max_in_flight calls at once; past that
// a call finds every connection full (mux.ErrBusy) and nothing is sent. So a
// request is only let at the tiers while the requests already there fit in
// the capacity of the first available tier — the one new allocations go to
// (read at every admission: it follows connections coming and going, a
// breaker opening, a drain and a reload).
//
// Slots alone are not enough: a burst that puts 2,048 calls on a tier at
// once queues them behind each other, and on a busy host the last ones wait
// longer than the tier's attempt_timeout; an attempt that times out counts
// against the tier's breaker although the queue is ours. So the slots are
// also limited adaptively, from the requests' own latency against the first
// tier's attempt_timeout: the limit starts at minSlots; a request answered
// within a quarter of attempt_timeout while at least half the limit is in
// use raises it by one, up to the capacity (a burst on a quick tier soon
// has all of it); one that took more than half of attempt_timeout cuts it
// by a quarter, at most once per half attempt_timeout and never below
// minSlots: the limit backs off before attempts time out, not after.
//
// A request past it waits up to admitWaitMax for a slot (one frees whenever
// any request ends), then is shed with OVERLOADED: a burst of any size gets
// successes and OVERLOADED and never reaches a pool it would find full.
//
// The fast path is two atomic adds and the capacity read (atomic loads over
// the tier list): no lock, no allocation, no clock. Only a request that has
// to wait arms a timer (its attempt deadline, idle at that point) and
// listens on freed, which a finishing request signals without blocking
// while anyone waits.
type tierSlots struct {
	active  atomic.Int64 // requests holding a slot
	waiters atomic.Int64 // requests waiting for one
	limit   atomic.Int64 // the adaptive limit (the capacity bounds it too)
	lastCut atomic.Int64 // when the limit was last cut, Unix ns
	freed   chan struct{}
}

func newTierSlots() *tierSlots {
	ts := &tierSlots{freed: make(chan struct{}, 64)}
	ts.limit.Store(minSlots)
	return ts
}

// firstAvailable is the first tier new allocations may go to; nil if none.
func (s *service) firstAvailable() *tier {
	for _, t := range *s.tiers.Load() {
		if t.available() {
			return t
		}
	}
	return nil
}

// bound is how many requests may hold a slot now; 0 when no tier is
// available (the request then goes ahead, to be answered UNAVAILABLE).
func (ts *tierSlots) bound(s *service) int64 {
	t := s.firstAvailable()
	if t == nil {
		return 0
	}
	return min(ts.limit.Load(), int64(t.pool.Capacity()))
}

// tryTake takes a slot if one is free.
func (ts *tierSlots) tryTake(s *service) bool {
	c := ts.bound(s)
	if ts.active.Add(1) <= c || c <= 0 {
		return true
	}
	ts.active.Add(-1)
	return false
}

// take takes a slot for the request rs, waiting (bounded by admitWaitMax and
// ctx) while none is free. A nil error means the caller must call give when
// the request is done with the tiers; otherwise the error is the answer
// (OVERLOADED, or the context's error).
func (ts *tierSlots) take(ctx context.Context, s *service, rs *reqState) error {
	if ts.tryTake(s) {
		return nil
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
				return nil
			}
			return errf(wire.StatusOverloaded, "telephony tiers at their in-flight capacity")
		case <-ctx.Done():
			return ctx.Err()
		}
		if ts.tryTake(s) {
			return nil
		}
	}
}

// give returns the slot of a request that took took, adapts the limit and
// wakes a waiter, if any.
func (ts *tierSlots) give(s *service, took time.Duration) {
	active := ts.active.Add(-1)
	if t := s.firstAvailable(); t != nil {
		capacity := int64(t.pool.Capacity())
		lim := ts.limit.Load()
		switch {
		case took > t.attempt/2:
			now := time.Now().UnixNano()
			last := ts.lastCut.Load()
			if now-last > int64(t.attempt/2) && ts.lastCut.CompareAndSwap(last, now) {
				ts.limit.Store(max(lim-lim/4, minSlots))
			}
		case took < t.attempt/4 && active >= min(lim, capacity)/2 && lim < capacity:
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
