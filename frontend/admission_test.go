package frontend

import (
	"context"
	"errors"
	"testing"
	"time"

	"switchboard/wire"
)

// TestAdmissionServesConnectionsInTurn: with every slot taken, a connection
// with hundreds of requests waiting and a light one (a few requests
// unanswered, more than a polite client's, so it queues) with a single
// request waiting share the freed slots in turn, so the single request
// gets one of the first two, however many the busy connection queued
// before it. (Admission once let any waiter take a freed slot: the lone
// request then waited, on average, for half the busy connection's queue.)
func TestAdmissionServesConnectionsInTurn(t *testing.T) {
	svc := fakeTiers{capacity: 2048, attempt: time.Second}
	ts := newTierSlots()
	ts.waitMax = time.Minute // the test's pace, not admission's, decides
	ts.limit.Store(1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if waited, err := ts.take(ctx, svc, &conn{}, 1000, &reqState{}); err != nil || waited {
		t.Fatalf("first take: waited %v, err %v; want the free slot at once", waited, err)
	}
	type grant struct {
		who string
		err error
	}
	granted := make(chan grant, 1000)
	waitFor := func(n int64) {
		t.Helper()
		for ts.waiters.Load() != n {
			if ctx.Err() != nil {
				t.Fatalf("%d waiters, want %d", ts.waiters.Load(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	const busy = 200
	busyConn, politeConn := &conn{}, &conn{}
	busyConn.unanswered.Store(busy)
	politeConn.unanswered.Store(politeAt + 1)
	for i := 0; i < busy; i++ {
		go func() {
			_, err := ts.take(ctx, svc, busyConn, 1000, &reqState{})
			granted <- grant{"busy", err}
		}()
	}
	waitFor(busy)
	go func() {
		_, err := ts.take(ctx, svc, politeConn, 1000, &reqState{})
		granted <- grant{"polite", err}
	}()
	waitFor(busy + 1)

	// Free the slot once per grant and see who gets it: the polite
	// connection must be served by the second.
	for i := 1; i <= busy+1; i++ {
		ts.give(svc, time.Now(), time.Millisecond)
		g := <-granted
		if g.err != nil {
			t.Fatalf("grant %d: %v", i, g.err)
		}
		if g.who == "polite" {
			if i > 2 {
				t.Fatalf("the single waiting request got slot %d, after %d of the busy connection's", i, i-1)
			}
			t.Logf("the single waiting request got slot %d of %d", i, busy+1)
			cancel()
			break
		}
		if i == busy+1 {
			t.Fatal("the polite request was never granted")
		}
	}
	// The rest time out (ctx cancelled) and leave the queue.
	for ts.waiters.Load() != 0 {
		time.Sleep(time.Millisecond)
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.ring) != 0 || busyConn.waiters.head != nil {
		t.Fatalf("queue not empty after every waiter left: ring %d", len(ts.ring))
	}
}

// TestAdmissionPoliteRequestDoesNotQueue: with every slot taken and a busy
// connection's requests waiting, a polite connection's request (one
// unanswered) takes a slot at once, without queueing, up to politeSlots
// past the adaptive limit; past that it queues like any other. (Before, it
// queued for its turn: beside a 3,000-caller burst that cost the polite
// client a mean 0.45 ms and a p99 of 5 ms of its latency,
// bench/results/burst.txt set 7.)
func TestAdmissionPoliteRequestDoesNotQueue(t *testing.T) {
	svc := fakeTiers{capacity: 2048, attempt: time.Second}
	ts := newTierSlots()
	ts.waitMax = time.Minute // the test's pace, not admission's, decides
	ts.limit.Store(1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := ts.take(ctx, svc, &conn{}, 1000, &reqState{}); err != nil {
		t.Fatal(err)
	}
	const busy = 50
	busyConn := &conn{}
	busyConn.unanswered.Store(busy)
	errs := make(chan error, busy+1)
	for range busy {
		go func() {
			_, err := ts.take(ctx, svc, busyConn, 1000, &reqState{})
			errs <- err
		}()
	}
	for ts.waiters.Load() != busy {
		if ctx.Err() != nil {
			t.Fatalf("%d waiters, want %d", ts.waiters.Load(), busy)
		}
		time.Sleep(time.Millisecond)
	}

	// takePolite takes a slot for a new polite connection's request and
	// reports whether it got one without queueing (false: it queued, and
	// stays queued until ctx ends).
	takePolite := func() bool {
		t.Helper()
		c := &conn{}
		c.unanswered.Store(1)
		type res struct {
			waited bool
			err    error
		}
		done := make(chan res, 1)
		before := ts.waiters.Load()
		go func() {
			waited, err := ts.take(ctx, svc, c, 1000, &reqState{})
			done <- res{waited, err}
		}()
		for {
			select {
			case r := <-done:
				if r.err != nil || r.waited {
					t.Fatalf("polite request: waited %v, err %v", r.waited, r.err)
				}
				return true
			default:
			}
			if ts.waiters.Load() > before {
				go func() { r := <-done; errs <- r.err }() // collected below
				return false
			}
			if ctx.Err() != nil {
				t.Fatal("the polite request neither took a slot nor queued")
			}
			time.Sleep(time.Millisecond)
		}
	}
	for i := 1; i <= politeSlots; i++ {
		if !takePolite() {
			t.Fatalf("polite request %d queued behind the busy connection's %d waiters; want a slot at once (up to %d past the limit)", i, busy, politeSlots)
		}
	}
	if n := ts.active.Load(); n != 1+politeSlots {
		t.Fatalf("%d slots taken, want %d", n, 1+politeSlots)
	}
	if takePolite() {
		t.Fatalf("a polite request past politeSlots (%d) took a slot; want it queued", politeSlots)
	}
	cancel() // the waiters leave the queue
	for range busy + 1 {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Fatalf("waiter: %v, want context.Canceled", err)
		}
	}
}

// TestAdmissionShedsHeavyConnectionsOnly: with every slot taken and none
// freed, a request of a heavy connection (300 requests read and not
// answered, with heavy from 128) is answered OVERLOADED after admission's
// wait, while one of a light connection (3 requests: more than a polite
// client's, which would not wait at all) takes a slot past the adaptive
// limit, within the capacity. (Admission once shed both alike.)
func TestAdmissionShedsHeavyConnectionsOnly(t *testing.T) {
	svc := fakeTiers{capacity: 2048, attempt: time.Second}
	ts := newTierSlots()
	ts.waitMax = 20 * time.Millisecond
	ts.limit.Store(1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const heavyAt = 128
	if _, err := ts.take(ctx, svc, &conn{}, heavyAt, &reqState{}); err != nil {
		t.Fatal(err)
	}
	heavy, light := &conn{}, &conn{}
	heavy.unanswered.Store(300)
	light.unanswered.Store(politeAt + 1)
	if _, err := ts.take(ctx, svc, heavy, heavyAt, &reqState{}); !errors.Is(err, wire.StatusOverloaded) {
		t.Fatalf("heavy connection's request: %v, want OVERLOADED", err)
	}
	waited, err := ts.take(ctx, svc, light, heavyAt, &reqState{})
	if err != nil || !waited {
		t.Fatalf("light connection's request: waited %v, err %v; want a slot past the limit after the wait", waited, err)
	}
	if n := ts.active.Load(); n != 2 {
		t.Fatalf("%d slots taken, want 2", n)
	}
}

// TestAdmissionSafetyBoundHoldsLightConnections: past the adaptive limit a
// light connection's request takes a slot only within the safety bound;
// past that bound it is shed like any other, but for a polite connection's
// (one request unanswered), which takes one of politeSlots more. (Admission
// once let light requests take slots up to the pool's whole capacity: a
// burst spread over many connections, none heavy, then queued past the
// attempt deadlines.)
func TestAdmissionSafetyBoundHoldsLightConnections(t *testing.T) {
	svc := fakeTiers{capacity: 2048, attempt: time.Second}
	ts := newTierSlots()
	ts.waitMax = 20 * time.Millisecond
	ts.limit.Store(1)
	ts.safe.Store(3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const heavyAt = 128
	if _, err := ts.take(ctx, svc, &conn{}, heavyAt, &reqState{}); err != nil {
		t.Fatal(err)
	}
	light, polite := &conn{}, &conn{}
	light.unanswered.Store(40) // one of 64 connections carrying 3,000 callers
	polite.unanswered.Store(1)
	for i := 2; i <= 3; i++ {
		if _, err := ts.take(ctx, svc, light, heavyAt, &reqState{}); err != nil {
			t.Fatalf("light request %d, within the safety bound: %v", i, err)
		}
	}
	if _, err := ts.take(ctx, svc, light, heavyAt, &reqState{}); !errors.Is(err, wire.StatusOverloaded) {
		t.Fatalf("light request past the safety bound: %v, want OVERLOADED", err)
	}
	if _, err := ts.take(ctx, svc, polite, heavyAt, &reqState{}); err != nil {
		t.Fatalf("polite request past the safety bound: %v, want a slot", err)
	}
	if n := ts.active.Load(); n != 4 {
		t.Fatalf("%d slots taken, want 4", n)
	}
}

// TestAdmissionSafetyBoundAdapts: the safety bound is cut in proportion when
// a window with the bound in use and requests past the gradient limit has
// more than a tenth of its requests past a quarter of the attempt deadline,
// grows when such a window is quick, and is left alone by a window with the
// bound hardly in use or all its requests within the gradient limit (a
// stall under a steady load), whatever its latency. Pure arithmetic.
func TestAdmissionSafetyBoundAdapts(t *testing.T) {
	const attempt, capacity, lim = int64(400 * time.Millisecond), 2048, 32
	ms := int64(time.Millisecond)
	ts := newTierSlots()
	ts.adaptSafe(0, 100, 90, 900*ms, 10, lim, attempt, capacity) // 10 in use of 256: a stall, not a queue
	if got := ts.safe.Load(); got != safeSlots {
		t.Fatalf("after a slow window with the bound hardly in use: %d, want %d", got, safeSlots)
	}
	ts.adaptSafe(0, 100, 90, 900*ms, 200, 256, attempt, capacity) // within the gradient limit
	if got := ts.safe.Load(); got != safeSlots {
		t.Fatalf("after a slow window within the gradient limit: %d, want %d", got, safeSlots)
	}
	ts.adaptSafe(int64(time.Second), 100, 50, 200*ms, 256, lim, attempt, capacity) // half late, slowest 2 × target
	if got := ts.safe.Load(); got != safeSlots/2 {
		t.Fatalf("after a queueing window: %d, want %d", got, safeSlots/2)
	}
	ts.adaptSafe(int64(time.Second)+ms, 100, 50, 200*ms, 128, lim, attempt, capacity) // within one target of the cut
	if got := ts.safe.Load(); got != safeSlots/2 {
		t.Fatalf("cut twice within one target: %d", got)
	}
	ts.adaptSafe(2*int64(time.Second), 100, 5, 120*ms, 128, lim, attempt, capacity) // a few slow: not a queue
	if got := ts.safe.Load(); got != safeSlots/2 {
		t.Fatalf("after a window with a few slow requests: %d, want %d", got, safeSlots/2)
	}
	ts.adaptSafe(3*int64(time.Second), 100, 0, 10*ms, 128, lim, attempt, capacity) // quick, in use
	if got := ts.safe.Load(); got != safeSlots/2+11 {
		t.Fatalf("after a quick window: %d, want %d", got, safeSlots/2+11)
	}
	for i := int64(0); i < 100; i++ { // a heavy cut never goes under the floor
		ts.adaptSafe((4+i)*int64(time.Second), 100, 100, 10*int64(time.Second), 1000, lim, attempt, capacity)
	}
	if got := ts.safe.Load(); got != minSlots {
		t.Fatalf("after many slow windows: %d, want the floor %d", got, minSlots)
	}
}

// movingTiers is fakeTiers whose first tier the test changes.
type movingTiers struct {
	fakeTiers
	first string
}

func (m *movingTiers) FirstTier() any { return m.first }

// TestAdmissionStartsOverWhenTheFirstTierChanges: the limit and the safety
// bound are learnt from the first tier's latency. When another tier comes
// first (the first one's breaker opened), they start over, and a request
// admitted before the change is no sample (it spent its time at the other
// tier). Before: the requests that timed out on a silent first tier and
// failed over reported 250 ms each, the limit fell to its floor with the
// next tier answering in microseconds, and a heavy connection's requests
// were shed (sbbench scenario failover -fault blackhole: 129 OVERLOADED).
func TestAdmissionStartsOverWhenTheFirstTierChanges(t *testing.T) {
	s := &movingTiers{fakeTiers: fakeTiers{capacity: 2048, attempt: 250 * time.Millisecond}, first: "primary"}
	ts := newTierSlots()
	t0 := time.Unix(1000, 0)
	window := func(now time.Time, took time.Duration) {
		for i := 0; i < limitSamples; i++ {
			ts.active.Add(1)
			ts.give(s, now, took)
		}
	}
	window(t0, time.Millisecond) // the first window learns which tier is first
	ts.limit.Store(minSlots)     // as if cut by that tier's queue
	ts.safe.Store(2 * minSlots)
	window(t0.Add(2*limitWindow), time.Millisecond)
	if l := ts.limit.Load(); l > 2*minSlots {
		t.Fatalf("limit %d with the same first tier: the test's windows moved it by themselves", l)
	}
	s.first = "nextgen"
	changed := t0.Add(4 * limitWindow)
	window(changed, time.Millisecond)
	if l, b := ts.limit.Load(), ts.safe.Load(); l != startSlots || b != safeSlots {
		t.Fatalf("after the first tier changed: limit %d, bound %d; want both started over (%d, %d)", l, b, startSlots, safeSlots)
	}
	n := ts.samples.Load()
	ts.active.Add(1)
	ts.give(s, changed.Add(time.Millisecond), 250*time.Millisecond) // admitted before the change
	if got := ts.samples.Load(); got != n {
		t.Fatalf("a request admitted before the change counted as a sample (%d -> %d)", n, got)
	}
	ts.active.Add(1)
	ts.give(s, changed.Add(2*time.Millisecond), time.Millisecond) // admitted after it
	if got := ts.samples.Load(); got != n+1 {
		t.Fatalf("a request admitted after the change: samples %d -> %d, want one more", n, got)
	}
	if a := ts.active.Load(); a != 0 {
		t.Fatalf("%d slots still held", a)
	}
}
