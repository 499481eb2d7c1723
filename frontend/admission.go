package frontend

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"switchboard/wire"
)

const (
	// admitWaitMax bounds how long an admitted request waits for a tier
	// slot (within its own deadline) before it is answered OVERLOADED.
	admitWaitMax = 50 * time.Millisecond
	// startSlots is where the adaptive limit starts and what it returns to
	// while the tiers are not kept busy (when the capacity is smaller, the
	// capacity): a steady load keeps that many calls' room for a stall.
	startSlots = 256
	// minSlots is the limit's floor under queueing: below a few dozen
	// calls at once, the pools' connections and the servers batch too
	// little to keep their throughput (bench/results/burst.txt, floor
	// experiments).
	minSlots = 32
	// limitWindow is how often, at most, the limit is recomputed, from the
	// requests that ended in the window (at least limitSamples of them).
	limitWindow  = 10 * time.Millisecond
	limitSamples = 8
	// baseEpoch: the no-load latency is the lowest window mean of the
	// current and the previous epoch, so it follows a tier that became
	// slower for good within two epochs.
	baseEpoch = 10 * time.Second
	// tolerance: a window mean up to tolerance × the no-load latency is
	// not queueing.
	tolerance = 2.0
	// rebaseWindows: windows in a row at the floor, kept busy and still
	// slower than tolerance × the no-load latency, after which that latency
	// is taken as the tier's own (not a queue: the queue is as short as it
	// gets) and becomes the no-load latency.
	rebaseWindows = 5
	// safeSlots is where the safety bound starts; minSlots is its floor
	// too (the capacity bounds both).
	safeSlots = 256
	// safeShare: the safety bound targets the slowest request of a window
	// under attempt_timeout / safeShare, the margin against host stalls
	// and the queue the gradient limit lets build before it reacts.
	safeShare = 4
	// safeLate: a window is queueing, for the safety bound, when more than
	// 1/safeLate of its requests held their slot past the target (a few
	// slow ones are not a queue).
	safeLate = 10
	// politeAt: a connection with at most this many requests read and not
	// answered is a polite client (one call at a time, or nearly). Past
	// the safety bound its request still takes one of politeSlots more
	// slots: a polite client beside a burst is not shed, and thousands of
	// polite connections together cannot queue more than that.
	politeAt    = 2
	politeSlots = minSlots
)

// tierSlots sizes admission by what the telephony pools can carry and by
// the latency the requests see there.
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
// Capacity alone is not enough: a burst that puts 2,048 calls on a tier at
// once queues them behind each other (in the pool's connections, the
// network and the telephony server, all first come first served), so every
// request — a polite client's single one too — waits behind up to 2,048
// others, and on a busy host the last ones wait past the tier's
// attempt_timeout, where a healthy tier's breaker would count them. So the
// requests at the tiers are also bounded by a limit that targets latency
// (a gradient limit, as TCP Vegas or Netflix's Gradient2): every
// limitWindow, the mean latency of the requests that ended (from their slot
// to their answer) is compared with the no-load latency (the lowest window
// mean of the last one or two baseEpochs). While the tiers are kept busy
// (at least half the limit in use in the window), the limit becomes
//
//	limit × clamp(tolerance × no-load / mean, 0.5, 1) + √limit
//
// within [minSlots, capacity]: it shrinks as soon as a queue builds and
// grows by √limit while the latency stays near the no-load one, so about as
// many requests are at the tiers as keep them busy, and the rest wait here,
// where they are served fairly. While the tiers are not kept busy it moves
// back up to startSlots. A tier that is slow by itself (not by our queue:
// still slow with the limit at its floor for rebaseWindows windows) has its
// latency taken as the new no-load latency, so a slower tier is not held at
// the floor.
//
// A request past the limit waits up to admitWaitMax for a slot, then is
// shed with OVERLOADED if its connection is heavy: it has half of
// server.max_conn_unanswered or more requests read and not yet answered
// (it pushes about as hard as the daemon lets one connection; a burst's
// connections do). Any other request then takes a slot past the limit,
// within the safety bound: shedding falls on the connections that queued
// the others, never on a polite client, and a steady load that a stall of
// the host makes pile up for a moment is delayed, not shed.
//
// Heaviness is per connection, so a burst spread over many connections
// (each under the heavy mark) would take every slot past the limit, up to
// the whole capacity, and queue past the attempt deadlines. The safety
// bound stops it: a request past the limit takes a slot only while fewer
// than the bound hold one, and the bound keeps the requests' time at the
// tiers well inside the first available tier's attempt_timeout: its
// target is attempt_timeout / safeShare. It starts at safeSlots. A window
// with at least half the bound in use, more requests holding slots than
// the gradient limit (some took slots past it: what the bound governs)
// and more than 1/safeLate of its requests over the target cuts it in
// proportion (target / slowest, at most by half; at most once per target,
// since the requests let in before a cut go on reporting their wait that
// long); a window with at least half the bound in use and no request over
// the target grows it by √bound; it stays within [minSlots, capacity]. A
// steady load within the gradient limit that a host stall slows never
// cuts it, and the bound never holds back a request within the gradient
// limit. So it backs off before attempts time out, not after (the gradient
// limit reacts to the mean, against a no-load latency that may be small
// beside attempt_timeout, and does not bound a light connection's request
// past it). Past the bound a request is shed OVERLOADED, but for a polite
// connection's (politeAt requests unanswered at most: one call at a time),
// which may take one of politeSlots slots more, so a polite client beside
// a burst is not shed. A burst of any size, over any number of
// connections, gets successes and OVERLOADED and never reaches a pool it
// would find full.
//
// Waiting requests are served fairly across connections: a freed slot
// goes to the next connection with waiters in turn (round robin), the
// oldest waiter of that connection first, so a connection with one request
// waiting goes ahead of the hundreds another one has queued. A polite
// connection's request (politeAt unanswered at most) does not queue at
// all while a slot within politeSlots past the limit is free: even its
// turn in the queue cost it a wait for a freed slot and then for its
// goroutine to be woken behind the burst's (bench/results/burst.txt,
// set 7); polite connections together still hold at most politeSlots
// slots past the limit.
//
// The fast path, taken while nobody waits, is three atomic operations and
// the capacity read (atomic loads over the tier list): no lock, no
// allocation, no clock (the request's start time serves). Ending a request
// adds its latency to the window (a handful of atomic operations: the
// slowest and the late count are loads unless they change); one request
// per window recomputes the limit and the safety bound. Only a request
// that has to wait takes the queue's lock, arms a timer (its attempt
// deadline, idle at that point) and listens on its own channel (kept with
// its pooled state).
type tierSlots struct {
	waitMax time.Duration // admitWaitMax; tests lengthen it
	active  atomic.Int64  // requests holding a slot
	waiters atomic.Int64  // requests in the queue
	limit   atomic.Int64  // the adaptive limit (the capacity bounds it too)
	safe    atomic.Int64  // the safety bound (the capacity bounds it too)

	// The current window (give): latency sum, slowest, count and how many
	// took longer than lateNs (the safety bound's target, set by adapt),
	// the most requests holding a slot, when it began (Unix ns); updating
	// is held by the one request recomputing the limit.
	sumNs, maxNs, samples, late, peak, winStart atomic.Int64
	lateNs                                      atomic.Int64
	updating                                    atomic.Bool
	// Since when (Unix ns) the first tier is the one the limit is learnt
	// from: a request admitted earlier spent its time at another tier
	// (timing out on a tier that then failed, say), and its latency is no
	// sample of this one's queue. first is that tier (Tiers.FirstTier);
	// only touched while updating is held.
	firstSince atomic.Int64
	first      any
	// When the safety bound was last cut (Unix ns); only touched while
	// updating is held.
	lastCut int64
	// The no-load latency (ns; 0: none yet) of the current and previous
	// epoch, when the epoch began, windows in a row for a rebase: only
	// touched while updating is held.
	baseCur, basePrev, epochStart int64
	slowAtFloor                   int

	// The queue (slow path only).
	mu   sync.Mutex
	ring []*conn // connections with waiters, served in turn; guarded by mu
	next int     // the ring's next turn; guarded by mu
}

func newTierSlots() *tierSlots {
	ts := &tierSlots{waitMax: admitWaitMax}
	ts.limit.Store(startSlots)
	ts.safe.Store(safeSlots)
	ts.lateNs.Store(math.MaxInt64) // no target before the first window
	return ts
}

// Tiers is what admission knows of the telephony tiers: the first tier new
// allocations may go to, its capacity (calls its connections may have in
// flight at once) and the bound of one attempt on it; false when no tier
// is available. It is atomic loads only (route.Router implements it).
//
// FirstTier identifies the first available tier (nil when none): the
// limit and the safety bound are learnt from one tier's latency, and start
// over when it changes (a breaker opened or closed, a drain, a reload).
// Compared once per window, never dereferenced.
type Tiers interface {
	FirstCapacity() (capacity int64, attempt time.Duration, ok bool)
	FirstTier() any
}

// slotWaiter is a request waiting for a slot, in its connection's queue.
// It lives in the request's pooled state.
type slotWaiter struct {
	ready      chan struct{} // a granted slot is signalled here (buffer 1)
	c          *conn
	prev, next *slotWaiter
	queued     bool // guarded by tierSlots.mu
}

// connWaiters is a connection's queue of requests waiting for a slot;
// guarded by tierSlots.mu.
type connWaiters struct {
	head, tail *slotWaiter
	inRing     bool
}

// bound is how many requests may hold a slot now; 0 when no tier is
// available (the request then goes ahead, to be answered UNAVAILABLE).
func (ts *tierSlots) bound(s Tiers) int64 {
	capacity, _, ok := s.FirstCapacity()
	if !ok {
		return 0
	}
	return min(ts.limit.Load(), capacity)
}

// tryTake takes a slot if one is free.
func (ts *tierSlots) tryTake(s Tiers) bool {
	c := ts.bound(s)
	if ts.active.Add(1) <= c || c <= 0 {
		return true
	}
	ts.active.Add(-1)
	return false
}

// tryTakePolite takes a slot for a polite connection's request without
// queueing: within politeSlots past the adaptive limit (and the capacity of
// the first available tier), so polite connections together cannot put more
// than that many calls past the limit at the tiers.
func (ts *tierSlots) tryTakePolite(s Tiers) bool {
	capacity, _, ok := s.FirstCapacity()
	if !ok { // no tier: the request goes ahead, to be answered UNAVAILABLE
		ts.active.Add(1) // give returns it
		return true
	}
	if ts.active.Add(1) <= min(min(ts.limit.Load(), capacity)+politeSlots, capacity) {
		return true
	}
	ts.active.Add(-1)
	return false
}

// takeOver takes a slot past the adaptive limit, within the safety bound
// (politeSlots more for a polite connection's request) and the capacity of
// the first available tier, for a request that waited admitWaitMax.
func (ts *tierSlots) takeOver(s Tiers, polite bool) bool {
	capacity, _, ok := s.FirstCapacity()
	if !ok { // no tier: the request goes ahead, to be answered UNAVAILABLE
		ts.active.Add(1) // give returns it
		return true
	}
	bound := ts.safe.Load()
	if polite {
		bound += politeSlots
	}
	if ts.active.Add(1) <= min(bound, capacity) {
		return true
	}
	ts.active.Add(-1)
	return false
}

// take takes a slot for the request rs of connection c, waiting (bounded by
// admitWaitMax and ctx) while none is free or others wait. Past that wait
// a request is shed if c is heavy (heavyAt or more requests read and
// not yet answered); otherwise it takes a slot past the limit, if the
// safety bound leaves one. A nil error
// means the caller must call give when the request is done with the tiers;
// waited then says whether it waited (its slot was taken later than the
// request began). Otherwise the error is the answer (OVERLOADED, or the
// context's error).
func (ts *tierSlots) take(ctx context.Context, s Tiers, c *conn, heavyAt int32, rs *reqState) (waited bool, err error) {
	if ts.waiters.Load() == 0 && ts.tryTake(s) {
		return false, nil
	}
	if c.unanswered.Load() <= politeAt && ts.tryTakePolite(s) {
		// A polite connection's request does not queue behind a burst's
		// waiters: a turn in the queue costs it a wait for a freed slot
		// and then for its goroutine to be scheduled, each behind the
		// burst's (bench/results/burst.txt, set 7).
		return false, nil
	}
	w := &rs.wait
	if w.ready == nil {
		w.ready = make(chan struct{}, 1)
	}
	w.c = c
	ts.mu.Lock()
	ts.waiters.Add(1)
	ts.enqueue(w)
	ts.dispatch(s)
	ts.mu.Unlock()
	rs.wdl.Start(ts.waitMax)
	defer rs.wdl.Stop()
	select {
	case <-w.ready:
		return true, nil
	case <-rs.wdl.Done():
	case <-ctx.Done():
		err = ctx.Err()
	}
	ts.mu.Lock()
	if !w.queued { // granted meanwhile: the slot is ours
		ts.mu.Unlock()
		<-w.ready
		return true, nil
	}
	ts.dequeue(w)
	ts.waiters.Add(-1)
	if err == nil && (ts.tryTake(s) || ts.overLimit(s, c.unanswered.Load(), heavyAt)) {
		// Admission's own wait is up, and a slot is free (the bound
		// grew: a connection came up, a reload), or the request's
		// connection is not heavy: it takes a slot past the limit,
		// within the safety bound.
		ts.mu.Unlock()
		return true, nil
	}
	ts.mu.Unlock()
	if err != nil {
		return true, err
	}
	return true, &wire.RemoteError{Status: wire.StatusOverloaded, Message: "telephony tiers at their in-flight limit"}
}

// overLimit takes a slot past the adaptive limit for a request whose wait
// is up, of a connection with unanswered requests read and not answered:
// none for a heavy connection, within the safety bound for a light one,
// politeSlots past it for a polite one.
func (ts *tierSlots) overLimit(s Tiers, unanswered, heavyAt int32) bool {
	return unanswered < heavyAt && ts.takeOver(s, unanswered <= politeAt)
}

// enqueue puts w at the end of its connection's queue, and the connection
// in the ring if it was not; mu held.
func (ts *tierSlots) enqueue(w *slotWaiter) {
	q := &w.c.waiters
	w.prev, w.next, w.queued = q.tail, nil, true
	if q.tail != nil {
		q.tail.next = w
	} else {
		q.head = w
	}
	q.tail = w
	if !q.inRing {
		q.inRing = true
		ts.ring = append(ts.ring, w.c)
	}
}

// dequeue takes w out of its connection's queue, and the connection out of
// the ring if that emptied it; mu held.
func (ts *tierSlots) dequeue(w *slotWaiter) {
	q := &w.c.waiters
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		q.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		q.tail = w.prev
	}
	w.prev, w.next, w.queued = nil, nil, false
	if q.head == nil && q.inRing {
		q.inRing = false
		for i, c := range ts.ring {
			if c == w.c {
				ts.ring = append(ts.ring[:i], ts.ring[i+1:]...)
				if ts.next > i {
					ts.next--
				}
				break
			}
		}
	}
}

// dispatch hands free slots to waiters, one connection after the other;
// mu held.
func (ts *tierSlots) dispatch(s Tiers) {
	for len(ts.ring) > 0 {
		if !ts.tryTake(s) {
			return
		}
		if ts.next >= len(ts.ring) {
			ts.next = 0
		}
		w := ts.ring[ts.next].waiters.head
		ts.next++
		ts.dequeue(w)
		ts.waiters.Add(-1)
		w.ready <- struct{}{} // never blocks: one grant per wait
	}
}

// give returns the slot of a request that held it for took (ending at now),
// adapts the limit and hands the slot to a waiter, if any.
func (ts *tierSlots) give(s Tiers, now time.Time, took time.Duration) {
	active := ts.active.Add(-1) + 1
	nowNs := now.UnixNano()
	if nowNs-int64(took) < ts.firstSince.Load() {
		// Admitted while another tier came first: no sample of this one.
		ts.dispatchWaiters(s)
		return
	}
	ts.sumNs.Add(int64(took))
	if m := ts.maxNs.Load(); int64(took) > m {
		ts.maxNs.CompareAndSwap(m, int64(took))
	}
	if int64(took) > ts.lateNs.Load() {
		ts.late.Add(1)
	}
	n := ts.samples.Add(1)
	if p := ts.peak.Load(); active > p {
		ts.peak.CompareAndSwap(p, active)
	}
	if n >= limitSamples && nowNs-ts.winStart.Load() >= int64(limitWindow) && ts.updating.CompareAndSwap(false, true) {
		ts.adapt(s, nowNs)
		ts.updating.Store(false)
	}
	ts.dispatchWaiters(s)
}

// dispatchWaiters hands free slots to waiters, if any.
func (ts *tierSlots) dispatchWaiters(s Tiers) {
	if ts.waiters.Load() > 0 {
		ts.mu.Lock()
		ts.dispatch(s)
		ts.mu.Unlock()
	}
}

// adapt closes the window and recomputes the limit; updating held.
func (ts *tierSlots) adapt(s Tiers, now int64) {
	ts.winStart.Store(now)
	n := ts.samples.Swap(0)
	sum := ts.sumNs.Swap(0)
	slowest, late := ts.maxNs.Swap(0), ts.late.Swap(0)
	peak := ts.peak.Swap(ts.active.Load())
	if f := s.FirstTier(); f != ts.first {
		// Another tier comes first: what was learnt of the previous one
		// (its no-load latency, the limit, the bound) says nothing of
		// it, and the window's requests, like every request admitted
		// before now, spent their time there (give drops their samples).
		// Start over, as at the start.
		ts.first = f
		ts.firstSince.Store(now)
		ts.limit.Store(startSlots)
		ts.safe.Store(safeSlots)
		ts.lateNs.Store(math.MaxInt64)
		ts.baseCur, ts.basePrev, ts.epochStart, ts.slowAtFloor, ts.lastCut = 0, 0, now, 0, 0
		return
	}
	capacity, attempt, ok := s.FirstCapacity()
	if n <= 0 || !ok {
		return
	}
	ts.adaptSafe(now, n, late, slowest, peak, ts.limit.Load(), int64(attempt), capacity)
	mean := max(sum/n, 1)
	if now-ts.epochStart > int64(baseEpoch) {
		ts.basePrev, ts.baseCur, ts.epochStart = ts.baseCur, 0, now
	}
	if ts.baseCur == 0 || mean < ts.baseCur {
		ts.baseCur = mean
	}
	base := ts.baseCur
	if ts.basePrev != 0 && ts.basePrev < base {
		base = ts.basePrev
	}
	lim := ts.limit.Load()
	next := lim
	if peak >= lim/2 {
		grad := min(max(tolerance*float64(base)/float64(mean), 0.5), 1)
		next = int64(float64(lim)*grad + math.Sqrt(float64(lim)))
		if lim <= minSlots && grad < 1 {
			// At the floor, kept busy, still slow: the tier's own latency.
			if ts.slowAtFloor++; ts.slowAtFloor >= rebaseWindows {
				ts.baseCur, ts.basePrev, ts.slowAtFloor = mean, 0, 0
			}
		} else {
			ts.slowAtFloor = 0
		}
	} else if lim < startSlots {
		next = min(lim+int64(math.Sqrt(float64(lim))), startSlots)
	}
	ts.limit.Store(min(max(next, minSlots), max(capacity, minSlots)))
}

// adaptSafe moves the safety bound from the window that ended at now (n
// requests, late of them over the target, the slowest, the most holding a
// slot, the gradient limit in force), against the first available tier's
// attempt deadline; updating held. It is cut only while requests past the
// gradient limit hold slots (taken over: what the bound governs); a steady
// load under the gradient limit that a host stall slows is left alone.
func (ts *tierSlots) adaptSafe(now, n, late, slowest, peak, lim, attempt, capacity int64) {
	target := attempt / safeShare
	ts.lateNs.Store(target)
	safe := ts.safe.Load()
	switch {
	case target <= 0 || peak < safe/2:
		// The bound is not what holds the requests back: a host stall
		// or a few slow requests under a light load say nothing of it.
	case late*safeLate > n && peak > lim:
		// Requests past the gradient limit (taken over) held slots.
		// A queue: cut in proportion (at most by half), at most once per
		// target, since the requests let in before the cut go on
		// reporting their wait that long.
		if now-ts.lastCut >= target {
			ts.lastCut = now
			safe = max(int64(float64(safe)*float64(target)/float64(max(slowest, target))), safe/2)
		}
	case slowest < target:
		safe += int64(math.Sqrt(float64(safe)))
	}
	ts.safe.Store(min(max(safe, minSlots), max(capacity, minSlots)))
}

// currentLimit is the adaptive limit in force (the capacity may bound it
// lower), for metrics.
func (ts *tierSlots) currentLimit() int64 { return ts.limit.Load() }
