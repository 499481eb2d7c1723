package daemon

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/internal/testsupport"
	"switchboard/telsim"
	"switchboard/wire"
)

// chaosConfig makes failure handling fast enough to exercise in a test:
// short attempt deadlines, heartbeats, backoff and open periods.
func chaosConfig(c *Config) {
	c.Pool.HeartbeatInterval = 50 * time.Millisecond
	c.Pool.HeartbeatTimeout = 100 * time.Millisecond
	c.Pool.DialTimeout = 100 * time.Millisecond
	c.Pool.BackoffBase = 10 * time.Millisecond
	c.Pool.BackoffMax = 100 * time.Millisecond
	c.Breaker.Failures = 3
	c.Breaker.OpenFor = 100 * time.Millisecond
	c.Server.RequestTimeout = 3 * time.Second
	c.Tiers = nil
	for _, n := range []string{"primary-large", "nextgen", "backup2-large"} {
		c.Tiers = append(c.Tiers, TierConfig{Name: n, Servers: []string{"sim://" + n}, AttemptTimeout: 100 * time.Millisecond})
	}
	c.applyDefaults()
}

// loadResult is what a load run saw.
type loadResult struct {
	ok, errs atomic.Int64
	mu       sync.Mutex
	byTier   map[string]int
	firstErr error
	failed   []failedCall // every error, with when its call ran
	wait     func()
}

// failedCall is one error a load run saw and when its call ran.
type failedCall struct {
	err  error
	when span
}

// fail records err, from a call begun at t0.
func (r *loadResult) fail(t0 time.Time, err error) {
	r.errs.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.firstErr == nil {
		r.firstErr = err
	}
	r.failed = append(r.failed, failedCall{err, span{t0, time.Now()}})
}

// load allocates and releases from workers goroutines until stop closes.
func (h *harness) load(ctx context.Context, workers int, stop <-chan struct{}) *loadResult {
	r := &loadResult{byTier: map[string]int{}}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				t0 := time.Now()
				a, err := h.c.Allocate(ctx, &wire.AllocateRequest{Token: []byte(fmt.Sprint(w, "-", i, "-", time.Now().UnixNano())), Spec: spec("chaos")})
				if err != nil {
					r.fail(t0, err)
					continue
				}
				r.ok.Add(1)
				r.mu.Lock()
				r.byTier[a.Tier]++
				r.mu.Unlock()
				t0 = time.Now()
				if err := h.c.Release(ctx, a.Key); err != nil {
					r.fail(t0, fmt.Errorf("release %d on %s: %w", a.Key, a.Tier, err))
				}
			}
		}(w)
	}
	r.wait = wg.Wait
	return r
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	if !testsupport.Poll(d, nil, cond) {
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

// chaosStall is the stall of this process that excuses a failed call in a
// chaos run: half chaosConfig's shortest deadline (attempt_timeout and
// the heartbeat timeout), as the starved goroutines also lose time around
// what the watch measures.
const chaosStall = 50 * time.Millisecond

var chaosFaults = []telsim.Fault{
	{Mode: telsim.ModeDown},
	{Mode: telsim.ModeRefuse},
	{Mode: telsim.ModeReset},
	{Mode: telsim.ModeBlackhole},
	{Mode: telsim.ModeSlow, Latency: 300 * time.Millisecond},
	{Mode: telsim.ModeErrors, Fraction: 1},
	{Mode: telsim.ModeGarbage},
	{Mode: telsim.ModeCut},
	{Mode: telsim.ModeFull},
	{Mode: telsim.ModeFlap, Period: 60 * time.Millisecond},
}

// TestChaos injects every fault mode into primary (and then into primary and
// nextgen together) under concurrent load through the real socket: the
// client must see no error while a tier can serve, traffic must return to
// primary once it recovers, and no reservation may leak on any tier.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos drills take a few seconds")
	}
	for _, broken := range [][]string{{"primary-large"}, {"primary-large", "nextgen"}} {
		for _, f := range chaosFaults {
			name := fmt.Sprintf("%s/%v", f.Mode, broken)
			t.Run(name, func(t *testing.T) { chaosRun(t, f, broken) })
		}
	}
}

func chaosRun(t *testing.T, f telsim.Fault, broken []string) {
	h := startDaemon(t, chaosConfig)
	sw := watchStalls(t, chaosStall)
	ctx := ctxT(t)
	stop := make(chan struct{})
	r := h.load(ctx, 8, stop)

	time.Sleep(50 * time.Millisecond)
	for _, n := range broken {
		if err := h.d.Simulator(n).SetFault(f); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(400 * time.Millisecond)
	for _, n := range broken {
		if err := h.d.Simulator(n).SetFault(telsim.Fault{Mode: telsim.ModeNone}); err != nil {
			t.Fatal(err)
		}
	}
	// Traffic returns to primary.
	waitFor(t, "allocations on primary again", 10*time.Second, func() bool {
		a, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("probe")})
		if err != nil {
			return false
		}
		h.c.Release(ctx, a.Key)
		return a.Tier == "primary-large"
	})
	close(stop)
	r.wait()
	// An error is excused only when this process was not scheduled for
	// half the shortest deadline involved (attempt_timeout and the
	// heartbeat timeout: 100 ms) or more while its call ran, or shortly
	// before (a breaker's open period, a redial's backoff and dial: what
	// a connection or breaker the stall broke takes to mend): the healthy
	// tiers' simulators, in this process, were starved too, and could
	// not serve. On an idle machine no stall is seen and nothing is
	// excused.
	cfg := h.d.Config()
	mend := cfg.Breaker.OpenFor + cfg.Pool.BackoffMax + cfg.Pool.DialTimeout
	var real []failedCall
	for _, f := range r.failed {
		if ok, d := sw.during(f.when, mend); ok {
			t.Logf("excused: the process stalled %v during a call that failed: %v", d.Round(time.Millisecond), f.err)
			continue
		}
		real = append(real, f)
	}
	if len(real) != 0 {
		t.Fatalf("%d errors reached the client while a tier could serve (%d more during stalls of this process); first: %v", len(real), len(r.failed)-len(real), real[0].err)
	}
	if r.ok.Load() == 0 {
		t.Fatal("no allocation succeeded")
	}
	t.Logf("ok %d, by tier %v", r.ok.Load(), r.byTier)
	// No leaked reservation: what the client released is gone, and what
	// timed out is released by the orphan releaser.
	for _, n := range []string{"primary-large", "nextgen", "backup2-large"} {
		sim := h.d.Simulator(n)
		waitFor(t, "no reservation left on "+n, 10*time.Second, func() bool { return sim.Stats().Reservations == 0 })
	}
}

// TestOrphanReleasedAfterBlackhole: a RESERVE that was sent to a silent tier
// may have landed; the daemon must not reuse its key, must serve the request
// on the next tier with a fresh key, and must release the orphan once the
// tier answers again.
func TestOrphanReleasedAfterBlackhole(t *testing.T) {
	h := startDaemon(t, chaosConfig)
	ctx := ctxT(t)
	primary := h.d.Simulator("primary-large")
	if err := primary.SetFault(telsim.Fault{Mode: telsim.ModeBlackhole}); err != nil {
		t.Fatal(err)
	}
	a, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("orphan")})
	if err != nil {
		t.Fatal(err)
	}
	if a.Tier != "nextgen" {
		t.Fatalf("served by %s, want nextgen", a.Tier)
	}
	if n := primary.Stats().Reserves; n != 1 {
		t.Fatalf("primary received %d RESERVEs, want the 1 orphan", n)
	}
	if h.d.rt.Stats().Orphans != 1 {
		t.Fatalf("orphans queued: %d", h.d.rt.Stats().Orphans)
	}
	if err := primary.SetFault(telsim.Fault{Mode: telsim.ModeNone}); err != nil {
		t.Fatal(err)
	}
	// A blackhole executes requests, so the releaser's RELEASE may already
	// have landed; either way the queue drains only on a confirmed answer.
	waitFor(t, "orphan queue empty", 5*time.Second, func() bool { return h.d.rt.Stats().Orphans == 0 })
	if n := primary.Stats().Reservations; n != 0 {
		t.Fatalf("primary still holds %d reservations", n)
	}
	// The session on nextgen is untouched.
	r, err := h.c.Lookup(ctx, a.Key)
	if err != nil || r.Tier != "nextgen" {
		t.Fatalf("lookup after orphan release: %+v %v", r, err)
	}
}
