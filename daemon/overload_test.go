package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/breaker"
	"switchboard/client"
	"switchboard/mux"
	"switchboard/telsim"
	"switchboard/wire"
)

// burstCounts is what a burst of callers saw, by answer.
type burstCounts struct {
	ok, overloaded, unavailable, timeout, clientBusy, other atomic.Int64
	mu                                                      sync.Mutex
	firstOther                                              error
}

func (c *burstCounts) count(err error) {
	switch {
	case err == nil:
		c.ok.Add(1)
	case errors.Is(err, wire.StatusOverloaded):
		c.overloaded.Add(1)
	case errors.Is(err, wire.StatusUnavailable):
		c.unavailable.Add(1)
		c.keep(err)
	case errors.Is(err, wire.StatusTimeout), errors.Is(err, context.DeadlineExceeded):
		c.timeout.Add(1)
	case errors.Is(err, mux.ErrBusy):
		// The caller's own connection to the daemon was full: shed
		// before anything was sent, by the client.
		c.clientBusy.Add(1)
	default:
		c.other.Add(1)
		c.keep(err)
	}
}

func (c *burstCounts) keep(err error) {
	c.mu.Lock()
	if c.firstOther == nil {
		c.firstOther = err
	}
	c.mu.Unlock()
}

func (c *burstCounts) String() string {
	return fmt.Sprintf("ok %d, overloaded %d, unavailable %d, timeout %d, client-side busy %d, other %d (first unexpected: %v)",
		c.ok.Load(), c.overloaded.Load(), c.unavailable.Load(), c.timeout.Load(), c.clientBusy.Load(), c.other.Load(), c.firstOther)
}

// wellBehaved allocates and releases one request at a time until stop
// closes, and returns its latencies and errors.
func wellBehaved(ctx context.Context, c *client.Client, stop <-chan struct{}) (lat []time.Duration, errs []error) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return lat, errs
		default:
		}
		t0 := time.Now()
		a, err := c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("polite")})
		if err == nil {
			err = c.Release(ctx, a.Key)
		}
		lat = append(lat, time.Since(t0))
		if err != nil {
			errs = append(errs, err)
		}
	}
}

func p99(lat []time.Duration) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	return s[len(s)*99/100]
}

// TestBurstIsShedNeverFailedOver is issue 11 point 1 against the real daemon
// (in process, on the embedded default: three sim:// tiers, 2 connections ×
// 1,024 calls per tier, far below server.max_in_flight): 3,000 concurrent
// callers on 4 connections. Healthy tiers must give successes and
// OVERLOADED, never UNAVAILABLE, and every breaker must stay closed. A
// well-behaved client runs alongside and must see no error at all; its
// latency is reported (the machine is shared and noisy).
func TestBurstIsShedNeverFailedOver(t *testing.T) {
	if testing.Short() {
		t.Skip("burst of 3000 callers")
	}
	// The embedded default, with longer attempt deadlines: in process, the
	// 3,000 callers, the daemon and the simulated tiers share two (busy)
	// cores, so a tier's latency (and a heartbeat's) here is mostly the process's scheduling
	// latency, which under -race on a loaded machine (load average 16 on 2
	// cores when this was written) reaches seconds. What
	// is tested is that local limits never count against a tier; a tier
	// that really does not answer in time still does (TestChaos).
	h := startDaemon(t, func(c *Config) {
		c.Server.RequestTimeout = 12 * time.Second
		c.Pool.HeartbeatTimeout = 4 * time.Second
		for i := range c.Tiers {
			c.Tiers[i].AttemptTimeout = 4 * time.Second
			c.Tiers[i].Pool = PoolConfig{}
		}
		c.applyDefaults()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	burst, err := client.Dial(ctx, h.sock, client.WithConns(4))
	if err != nil {
		t.Fatal(err)
	}
	defer burst.Close()

	// The polite client's quiet latency first.
	stop := make(chan struct{})
	time.AfterFunc(500*time.Millisecond, func() { close(stop) })
	quiet, quietErrs := wellBehaved(ctx, h.c, stop)
	if len(quietErrs) > 0 {
		t.Fatalf("quiet run: %d errors, first %v", len(quietErrs), quietErrs[0])
	}

	const callers, runFor, overloadPause = 3000, 2 * time.Second, 50 * time.Millisecond
	var counts burstCounts
	stop = make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < callers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				a, err := burst.Allocate(ctx, &wire.AllocateRequest{Spec: spec("burst")})
				counts.count(err)
				if err == nil {
					err = burst.Release(ctx, a.Key)
					counts.count(err)
				}
				if errors.Is(err, wire.StatusOverloaded) || errors.Is(err, mux.ErrBusy) {
					// OVERLOADED means "busy, retry": after a pause, as
					// the XML front end's callers do.
					time.Sleep(overloadPause)
				}
			}
		}()
	}
	type politeResult struct {
		lat  []time.Duration
		errs []error
	}
	politeDone := make(chan politeResult, 1)
	go func() {
		lat, errs := wellBehaved(ctx, h.c, stop)
		politeDone <- politeResult{lat, errs}
	}()
	time.Sleep(runFor)
	close(stop)
	wg.Wait()
	polite := <-politeDone

	t.Logf("burst of %d callers for %v: %v", callers, runFor, &counts)
	t.Logf("well-behaved client: quiet p99 %v (%d calls); under the burst p99 %v (%d calls, %d errors)",
		p99(quiet), len(quiet), p99(polite.lat), len(polite.lat), len(polite.errs))
	if len(polite.errs) > 0 {
		t.Logf("well-behaved client's first error: %v", polite.errs[0])
	}
	if n := counts.unavailable.Load(); n != 0 {
		t.Errorf("%d UNAVAILABLE answers while every tier was healthy", n)
	}
	if n := counts.other.Load(); n != 0 {
		t.Errorf("%d unexpected errors", n)
	}
	if counts.ok.Load() == 0 {
		t.Error("no success at all")
	}
	for _, tr := range h.d.rt.Tiers() {
		if st := tr.Breaker.State(); st != breaker.Closed {
			t.Errorf("breaker of %s is %v after the burst, want closed", tr.Name, st)
		}
	}
	// The polite client's latency is measured and reported, not held to a
	// bound: here it is the noisy machine's (bench/results/burst.txt has
	// the real processes' figures). Its errors are held to none: its one
	// request at a time waits in admission's queue only behind one request
	// of each other connection with waiters, never the 50 ms that sheds.
	for _, err := range polite.errs {
		t.Errorf("well-behaved client: %v", err)
	}
}

// TestFullTierIsShedNotSpilled: when the first tier is healthy but its pool
// is full (tiny pool.max_in_flight, replies slowed so slots stay taken), a
// burst is answered with successes from that tier and OVERLOADED — never
// UNAVAILABLE, never pushed onto the next tier (the tier order is a
// priority, not a spill-over) — and no breaker opens.
func TestFullTierIsShedNotSpilled(t *testing.T) {
	h := startDaemon(t, func(c *Config) {
		c.Pool.MaxInFlight = 4 // capacity 2 conns × 4 = 8 calls per tier
		c.Server.RequestTimeout = 5 * time.Second
		for i := range c.Tiers {
			c.Tiers[i].Pool = PoolConfig{}
			c.Tiers[i].AttemptTimeout = 2 * time.Second
		}
		c.applyDefaults()
	})
	ctx := ctxT(t)
	if err := h.d.Simulator("primary-large").SetFault(telsim.Fault{Mode: telsim.ModeSlow, Latency: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	const callers = 200
	var counts burstCounts
	var mu sync.Mutex
	byTier := map[string]int{}
	var wg sync.WaitGroup
	for w := 0; w < callers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 3; i++ {
				a, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("full")})
				counts.count(err)
				if err == nil {
					mu.Lock()
					byTier[a.Tier]++
					mu.Unlock()
					counts.count(h.c.Release(ctx, a.Key))
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d callers × 3 on a tier carrying 8 calls: %v; served by %v", callers, &counts, byTier)
	if n := counts.unavailable.Load() + counts.other.Load() + counts.timeout.Load(); n != 0 {
		t.Errorf("%d answers other than success and OVERLOADED", n)
	}
	if counts.overloaded.Load() == 0 {
		t.Error("no OVERLOADED although the tier can carry only 8 calls")
	}
	if counts.ok.Load() == 0 {
		t.Error("no success at all")
	}
	for tier, n := range byTier {
		if tier != "primary-large" {
			t.Errorf("%d allocations spilled onto %s", n, tier)
		}
	}
	for _, tr := range h.d.rt.Tiers() {
		if st := tr.Breaker.State(); st != breaker.Closed {
			t.Errorf("breaker of %s is %v, want closed", tr.Name, st)
		}
	}
}
