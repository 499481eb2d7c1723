package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"switchboard/client"
	"switchboard/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, goleak.Cleanup(removeScenarioBins)) }

// fakeClock only moves when told to: SleepUntil jumps to the deadline.
// Other goroutines can follow it (follower): their SleepUntil waits until
// the clock has been moved past the deadline. It is safe for concurrent use.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	changed chan struct{} // closed (and replaced) whenever now moves
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1_800_000_000, 0), changed: make(chan struct{})}
}

// setLocked moves the clock to t and wakes the followers.
func (c *fakeClock) setLocked(t time.Time) {
	c.now = t
	close(c.changed)
	c.changed = make(chan struct{})
}

// follower is a view of a fakeClock that never moves it: SleepUntil waits
// for whoever drives the clock to reach the deadline.
type follower struct{ c *fakeClock }

func (f follower) Now() time.Time { return f.c.Now() }

func (f follower) SleepUntil(ctx context.Context, t time.Time) error {
	for {
		f.c.mu.Lock()
		reached, ch := !t.After(f.c.now), f.c.changed
		f.c.mu.Unlock()
		if reached {
			return ctx.Err()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) SleepUntil(ctx context.Context, t time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.setLocked(t)
	}
	return nil
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setLocked(c.now.Add(d))
}

// fakeTarget answers at once, or after service(n) of fake time for the
// n-th allocation (from 0). It is safe for concurrent use.
type fakeTarget struct {
	clk     *fakeClock
	service func(n int) time.Duration       // nil: instant
	fail    func(n int) error               // nil: never
	block   chan struct{}                   // non-nil: allocation 0 waits for it to close
	relFail func(key uint64) error          // nil: never
	seen    func(req *wire.AllocateRequest) // nil: ignored

	mu       sync.Mutex
	n        int
	live     map[uint64]bool
	released int
}

func (f *fakeTarget) Allocate(ctx context.Context, req *wire.AllocateRequest) (uint64, string, error) {
	f.mu.Lock()
	n := f.n
	f.n++
	f.mu.Unlock()
	if f.seen != nil {
		f.seen(req)
	}
	if f.block != nil && n == 0 {
		<-f.block
	}
	if f.service != nil {
		f.clk.advance(f.service(n))
	}
	if f.fail != nil {
		if err := f.fail(n); err != nil {
			return 0, "", err
		}
	}
	key := uint64(100_000_000 + n)
	f.mu.Lock()
	if f.live == nil {
		f.live = map[uint64]bool{}
	}
	f.live[key] = true
	f.mu.Unlock()
	return key, "primary-large", nil
}

func (f *fakeTarget) Release(ctx context.Context, key uint64) error {
	if f.relFail != nil {
		if err := f.relFail(key); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.live[key] {
		return &wire.RemoteError{Status: wire.StatusNotFound, Message: "no session"}
	}
	delete(f.live, key)
	f.released++
	return nil
}

func (f *fakeTarget) state() (allocs, live, released int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n, len(f.live), f.released
}

// capture keeps every allocation outcome, in order of arrival.
type capture struct {
	mu     sync.Mutex
	allocs []outcome
	onBack func(n int) // called with the running count of client_backlog outcomes
	backs  int
}

func (c *capture) allocation(o *outcome) {
	c.mu.Lock()
	c.allocs = append(c.allocs, *o)
	var cb func(int)
	if errors.Is(o.err, errClientBacklog) {
		c.backs++
		cb = c.onBack
	}
	n := c.backs
	c.mu.Unlock()
	if cb != nil {
		cb(n)
	}
}

func (c *capture) release(*outcome) {}

func testRunner(clk clock, tgt target, obs observer, spec loadSpec) *runner {
	if spec.timeout == 0 {
		spec.timeout = time.Second
	}
	if spec.maxInFlight == 0 {
		spec.maxInFlight = 100
	}
	if spec.releasers == 0 {
		spec.releasers = 2
	}
	return &runner{spec: spec, tgt: tgt, clk: clk, obs: obs, build: newRequestBuilder("test", "t", 16, clk.Now())}
}

func TestIntendedTimeDoesNotDrift(t *testing.T) {
	start := time.Unix(0, 0)
	for _, c := range []struct {
		rate float64
		i    int64
		want time.Duration
	}{
		{3, 0, 0},
		{3, 1, 333333333},
		{3, 3, time.Second},
		{3, 3_000_000, 1_000_000 * time.Second},
		{1000, 1234, 1234 * time.Millisecond},
		{0.5, 3, 6 * time.Second},
	} {
		if got := intendedTime(start, c.rate, c.i).Sub(start); got != c.want {
			t.Errorf("rate %g, request %d: due at %v, want %v", c.rate, c.i, got, c.want)
		}
	}
}

// TestOpenLoopMeasuresFromIntendedTime is the coordinated-omission test:
// at 1000/s for 1 s, allocation 100 stalls the (single, inline) sender for
// 100 ms. The 99 requests due during the stall go out late and must carry
// that wait in their latency (99 ms … 1 ms), so p99 is ~90 ms, not ~0 as a
// measurement from the actual send would claim.
func TestOpenLoopMeasuresFromIntendedTime(t *testing.T) {
	clk := newFakeClock()
	tgt := &fakeTarget{clk: clk, service: func(n int) time.Duration {
		if n == 100 {
			return 100 * time.Millisecond
		}
		return 0
	}}
	start := clk.Now()
	rec := newRecorder(start)
	cp := &capture{}
	r := testRunner(clk, tgt, fanout{rec, cp}, loadSpec{rate: 1000, duration: time.Second})
	r.inline = true
	stopped := r.run(context.Background(), start)

	if len(cp.allocs) != 1000 {
		t.Fatalf("%d allocations, want 1000", len(cp.allocs))
	}
	for i, o := range cp.allocs {
		if want := start.Add(time.Duration(i) * time.Millisecond); !o.intended.Equal(want) {
			t.Fatalf("allocation %d due at %v, want %v: intended times must not shift after a stall", i, o.intended.Sub(start), want.Sub(start))
		}
	}
	if got := cp.allocs[150]; got.sent.Sub(got.intended) != 50*time.Millisecond {
		t.Fatalf("allocation 150 sent %v late, want 50ms (it was due during the stall)", got.sent.Sub(got.intended))
	}

	s := rec.summary(stopped)
	if s.Sent != 1000 || s.OK != 1000 || len(s.Errors) != 0 {
		t.Fatalf("sent %d ok %d errors %v", s.Sent, s.OK, s.Errors)
	}
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > want*0.01+1 {
			t.Errorf("%s = %.1f µs, want ≈ %.1f µs", name, got, want)
		}
	}
	near("p99", s.P99, 90_000)
	near("p99.9", s.P999, 99_000)
	near("max", s.Max, 100_000)
	if s.P50 > 1 {
		t.Errorf("p50 = %.1f µs, want ~0 (most requests were not delayed)", s.P50)
	}
	near("send lag max", s.LagMax, 99_000)
	if s.ByTier["primary-large"] != 1000 {
		t.Errorf("by tier %v", s.ByTier)
	}
	if _, live, released := tgt.state(); live != 0 || released != 1000 || s.Released != 1000 {
		t.Errorf("live %d, released %d (summary %d): every allocation must be released", live, released, s.Released)
	}
}

func TestWarmupIsNotMeasured(t *testing.T) {
	clk := newFakeClock()
	tgt := &fakeTarget{clk: clk}
	start := clk.Now()
	rec := newRecorder(start.Add(time.Second))
	r := testRunner(clk, tgt, rec, loadSpec{rate: 100, warmup: time.Second, duration: 2 * time.Second})
	r.inline = true
	s := rec.summary(r.run(context.Background(), start))
	if s.WarmupSent != 100 || s.Sent != 200 || s.OK != 200 {
		t.Fatalf("warmup %d, sent %d, ok %d; want 100, 200, 200", s.WarmupSent, s.Sent, s.OK)
	}
	if s.Released != 300 {
		t.Fatalf("released %d, want 300 (warmup allocations are released too)", s.Released)
	}
	if s.Rate != 100 || s.DurationS != 2 {
		t.Fatalf("rate %.2f/s over %gs, want 100/s over 2s", s.Rate, s.DurationS)
	}
}

func TestOpenLoopRequestCapAndCancel(t *testing.T) {
	clk := newFakeClock()
	tgt := &fakeTarget{clk: clk}
	rec := newRecorder(clk.Now())
	r := testRunner(clk, tgt, rec, loadSpec{rate: 1000, duration: time.Hour, requests: 37})
	r.inline = true
	if s := rec.summary(r.run(context.Background(), clk.Now())); s.Sent != 37 {
		t.Fatalf("sent %d, want the cap of 37", s.Sent)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec = newRecorder(clk.Now())
	r = testRunner(clk, tgt, rec, loadSpec{rate: 1000, duration: time.Hour})
	if s := rec.summary(r.run(ctx, clk.Now())); s.Sent != 0 {
		t.Fatalf("sent %d after cancel, want 0", s.Sent)
	}
}

// TestBacklogIsCountedNotQueued: with one request allowed in flight and the
// first one stuck, the nine due after it are not sent but counted as
// client_backlog — the generator never waits for the daemon.
func TestBacklogIsCountedNotQueued(t *testing.T) {
	clk := newFakeClock()
	gate := make(chan struct{})
	tgt := &fakeTarget{clk: clk, block: gate}
	rec := newRecorder(clk.Now())
	cp := &capture{onBack: func(n int) {
		if n == 9 {
			close(gate)
		}
	}}
	r := testRunner(clk, tgt, fanout{rec, cp}, loadSpec{rate: 10, duration: time.Second, maxInFlight: 1})
	s := rec.summary(r.run(context.Background(), clk.Now()))
	if s.Sent != 10 || s.OK != 1 || s.Errors[codeBacklog] != 9 {
		t.Fatalf("sent %d, ok %d, errors %v; want 10, 1, client_backlog 9", s.Sent, s.OK, s.Errors)
	}
	if allocs, _, _ := tgt.state(); allocs != 1 {
		t.Fatalf("%d requests reached the target, want 1", allocs)
	}
}

func TestClosedLoop(t *testing.T) {
	clk := newFakeClock()
	var mu sync.Mutex
	tokens := map[string]bool{}
	tgt := &fakeTarget{
		clk: clk,
		fail: func(n int) error {
			if n%10 == 9 {
				return fmt.Errorf("call: %w", &wire.RemoteError{Status: wire.StatusCapacity})
			}
			return nil
		},
		seen: func(req *wire.AllocateRequest) {
			mu.Lock()
			defer mu.Unlock()
			tokens[string(req.Token)] = true
		},
	}
	rec := newRecorder(clk.Now())
	r := testRunner(clk, tgt, rec, loadSpec{concurrency: 3, duration: time.Hour, requests: 50})
	s := rec.summary(r.run(context.Background(), clk.Now()))
	if s.Sent != 50 || s.OK != 45 || s.Errors["CAPACITY"] != 5 {
		t.Fatalf("sent %d, ok %d, errors %v; want 50, 45, CAPACITY 5", s.Sent, s.OK, s.Errors)
	}
	if len(tokens) != 50 {
		t.Fatalf("%d distinct tokens for 50 requests", len(tokens))
	}
	if _, live, released := tgt.state(); live != 0 || released != 45 {
		t.Fatalf("live %d released %d", live, released)
	}
}

func TestReleaseErrorsCountedApart(t *testing.T) {
	clk := newFakeClock()
	tgt := &fakeTarget{clk: clk, relFail: func(key uint64) error {
		if key%4 == 0 {
			return context.DeadlineExceeded
		}
		return nil
	}}
	rec := newRecorder(clk.Now())
	r := testRunner(clk, tgt, rec, loadSpec{rate: 100, duration: time.Second})
	r.inline = true
	s := rec.summary(r.run(context.Background(), clk.Now()))
	if s.OK != 100 || len(s.Errors) != 0 {
		t.Fatalf("ok %d errors %v: release errors must not count as allocation errors", s.OK, s.Errors)
	}
	if s.Released != 75 || s.ReleaseErrors[codeTimeout] != 25 {
		t.Fatalf("released %d, release errors %v; want 75, client_timeout 25", s.Released, s.ReleaseErrors)
	}
}

func TestReleaserDrainsOnClose(t *testing.T) {
	clk := newFakeClock()
	tgt := &fakeTarget{clk: clk}
	rec := newRecorder(clk.Now())
	rel := startReleaser(3, tgt, clk, rec, time.Second)
	for range 500 {
		k, _, _ := tgt.Allocate(context.Background(), nil)
		rel.push(k)
	}
	rel.close()
	rel.close() // idempotent
	if _, live, released := tgt.state(); live != 0 || released != 500 {
		t.Fatalf("live %d released %d after close", live, released)
	}
}

func TestErrorCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&wire.RemoteError{Status: wire.StatusUnavailable, Message: "x"}, "UNAVAILABLE"},
		{fmt.Errorf("allocate: %w", &wire.RemoteError{Status: wire.StatusOverloaded}), "OVERLOADED"},
		{wire.StatusKeysExhausted, "KEYS_EXHAUSTED"},
		{errClientBacklog, codeBacklog},
		{fmt.Errorf("call: %w", context.DeadlineExceeded), codeTimeout},
		{context.Canceled, codeCanceled},
		{fmt.Errorf("x: %w", client.ErrBusy), codeBusy},
		{fmt.Errorf("x: %w", client.ErrConnLost), codeConnLost},
		{client.ErrConnClosed, codeClosed},
		{fmt.Errorf("x: %w", client.ErrClosed), codeClosed},
		{errors.New("broken pipe"), codeTransport},
	} {
		if got := errorCode(c.err); got != c.want {
			t.Errorf("errorCode(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestRealClockSleepUntil(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		spin, wait time.Duration
	}{
		{0, time.Millisecond},                      // nanosleep only
		{0, 3 * shortSleepMax},                     // timer, then nanosleep
		{500 * time.Microsecond, time.Millisecond}, // nanosleep, then spin
		{shortSleepMax, shortSleepMax},             // spin only
	} {
		due := time.Now().Add(c.wait)
		if err := (realClock{spin: c.spin}).SleepUntil(ctx, due); err != nil {
			t.Fatal(err)
		}
		if now := time.Now(); now.Before(due) {
			t.Fatalf("spin %v, wait %v: woke %v early", c.spin, c.wait, due.Sub(now))
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := (realClock{}).SleepUntil(cctx, time.Now().Add(time.Hour)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled sleep returned %v", err)
	}
	if err := (realClock{spin: time.Hour}).SleepUntil(cctx, time.Now().Add(time.Minute)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled spin returned %v", err)
	}
	// A long sleep ends promptly when ctx ends during it.
	cctx, cancel = context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := (realClock{}).SleepUntil(cctx, time.Now().Add(time.Hour)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("sleep interrupted by a deadline returned %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("an interrupted one-hour sleep took %v", d)
	}
}

func TestRequestBuilder(t *testing.T) {
	build := newRequestBuilder("0123456789abcdef", "Load test", 256, time.Unix(1_800_000_000, 0))
	a, b := build(0), build(12345)
	if string(a.Token) == string(b.Token) || string(b.Token) != "sbbench-0123456789abcdef-12345" {
		t.Fatalf("tokens %q %q", a.Token, b.Token)
	}
	if string(b.Spec.Name) != "Load test 12345" || len(b.Meta) != 256 {
		t.Fatalf("name %q meta %d", b.Spec.Name, len(b.Meta))
	}
	// The request must encode and decode as a valid ALLOCATE.
	f, err := wire.AppendFrame(nil, wire.Header{Op: wire.OpAllocate, ID: 1}, b, wire.DefaultMaxFrame)
	if err != nil {
		t.Fatal(err)
	}
	var got wire.AllocateRequest
	if err := got.Decode(f[wire.HeaderSize:]); err != nil {
		t.Fatalf("built request does not decode: %v", err)
	}
}

// TestOverloadedCountedApart: OVERLOADED answers are the daemon shedding
// load, counted in overloaded (summary, releases and timeline), never among
// the errors with UNAVAILABLE and the rest; sent = ok + overloaded + errors.
func TestOverloadedCountedApart(t *testing.T) {
	from := time.Unix(1000, 0)
	r := newRecorder(from)
	tl := newTimeline(from, time.Second, 2*time.Second)
	at := from.Add(100 * time.Millisecond)
	shed := &wire.RemoteError{Status: wire.StatusOverloaded, Message: "busy"}
	down := &wire.RemoteError{Status: wire.StatusUnavailable}
	for _, err := range []error{nil, shed, shed, down} {
		o := &outcome{intended: at, sent: at, done: at.Add(time.Millisecond), tier: "primary-large", err: err}
		r.allocation(o)
		tl.allocation(o)
	}
	r.release(&outcome{sent: at, done: at, err: shed})
	s := r.summary(at.Add(time.Second))
	if s.Sent != 4 || s.OK != 1 || s.Overloaded != 2 || sum(s.Errors) != 1 || s.Errors["UNAVAILABLE"] != 1 || s.ReleaseShed != 1 {
		t.Errorf("summary: sent %d ok %d overloaded %d errors %v release_overloaded %d; want 4, 1, 2, UNAVAILABLE 1, 1",
			s.Sent, s.OK, s.Overloaded, s.Errors, s.ReleaseShed)
	}
	rows := tl.snapshot(at.Add(time.Second))
	if len(rows) == 0 || rows[0].Overloaded != 2 || sum(rows[0].Errors) != 1 {
		t.Errorf("timeline rows %+v: want overloaded 2 and 1 error in row 0", rows)
	}
	var b strings.Builder
	s.Mode = "concurrency"
	if err := writeText(&b, &s); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "overloaded    2 ") {
		t.Errorf("text output lacks the overloaded line:\n%s", b.String())
	}
	var j strings.Builder
	if err := writeJSON(&j, &s); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(j.String(), `"overloaded":2`) || !strings.Contains(j.String(), `"release_overloaded":1`) {
		t.Errorf("JSON output lacks the overloaded counts: %s", j.String())
	}
}
