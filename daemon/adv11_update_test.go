package daemon

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"switchboard/internal/testsupport"
	"switchboard/wire"
)

// TestUpdateBurstOnFullPoolIsShedNotUnavailable: issue 11 promises that a
// burst gets successes and OVERLOADED, never UNAVAILABLE, while every tier
// is healthy. Admission is sized by the first available tier's pool, but an
// UPDATE goes to the tier that holds its session, whose pool may carry
// fewer calls (its own pool settings, or fewer live connections). A call
// that finds that pool full (mux.ErrBusy: nothing sent, a local limit) is
// answered UNAVAILABLE by serverErr, as if the tier had failed.
//
// Every tier here is healthy: the session sits on nextgen (primary is
// full, it answers CAPACITY), whose pool carries 2 calls at once; its
// simulator answers after 3 s, so 64 concurrent UPDATEs overlap there
// whatever the machine's speed. None may be answered UNAVAILABLE.
func TestUpdateBurstOnFullPoolIsShedNotUnavailable(t *testing.T) {
	h := startDaemon(t, func(c *Config) {
		c.Server.RequestTimeout = 20 * time.Second
		c.Simulators = []SimConfig{{Name: "primary-large", Capacity: 1}, {Name: "nextgen", Capacity: 100000, Latency: 3 * time.Second}, {Name: "backup2-large", Capacity: 100000}}
		c.Tiers[1].Pool = c.Pool
		c.Tiers[1].Pool.MinConns = 1
		c.Tiers[1].Pool.MaxInFlight = 2
		c.Tiers[1].AttemptTimeout = 10 * time.Second
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("fills primary")}); err != nil {
		t.Fatal(err)
	}
	a, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("on nextgen")})
	if err != nil {
		t.Fatal(err)
	}
	if string(a.Tier) != "nextgen" {
		t.Fatalf("the second session is on %q, want nextgen", a.Tier)
	}
	const n = 64
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[string]int{}
	var firstUnavailable error
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := h.c.Update(ctx, a.Key, &wire.Spec{Name: []byte("renamed")}, nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				counts["ok"]++
			case errors.Is(err, wire.StatusOverloaded):
				counts["overloaded"]++
			case errors.Is(err, wire.StatusUnavailable):
				counts["unavailable"]++
				if firstUnavailable == nil {
					firstUnavailable = err
				}
			default:
				counts[err.Error()]++
			}
		}()
	}
	wg.Wait()
	t.Logf("%d concurrent UPDATEs of a session on nextgen: %v", n, counts)
	if counts["unavailable"] > 0 {
		t.Errorf("%d of %d UPDATEs answered UNAVAILABLE while every tier is healthy (the pool of the session's tier was merely full); first: %v", counts["unavailable"], n, firstUnavailable)
	}
	st, err := h.d.Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range st.Tiers {
		if ts.Breaker != "closed" {
			t.Errorf("tier %s breaker %s after the burst", ts.Name, ts.Breaker)
		}
	}
}

// TestLookupOnFullPoolIsNotUnavailable: the same local limit on the LOOKUP
// path. A LOOKUP of a key this daemon has not indexed (another node's
// session, or one evicted from the cache) asks every server; a server whose
// pool is merely full (mux.ErrBusy: nothing sent) counts as unreachable,
// and the answer is UNAVAILABLE. Here nextgen's pool (2 calls at once) is
// held by two slow UPDATEs, seen in flight from the pool's stats before the
// LOOKUP is sent: no timing involved. Healthy tiers, a local limit: the
// answer must not be UNAVAILABLE.
func TestLookupOnFullPoolIsNotUnavailable(t *testing.T) {
	h := startDaemon(t, func(c *Config) {
		c.Server.RequestTimeout = 20 * time.Second
		c.Simulators = []SimConfig{{Name: "primary-large", Capacity: 1}, {Name: "nextgen", Capacity: 100000, Latency: 3 * time.Second}, {Name: "backup2-large", Capacity: 100000}}
		c.Tiers[1].Pool = c.Pool
		c.Tiers[1].Pool.MinConns = 1
		c.Tiers[1].Pool.MaxInFlight = 2
		c.Tiers[1].AttemptTimeout = 10 * time.Second
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("fills primary")}); err != nil {
		t.Fatal(err)
	}
	a, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("on nextgen")})
	if err != nil || string(a.Tier) != "nextgen" {
		t.Fatalf("second allocation: %v on %q, want nextgen", err, a.Tier)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.c.Update(ctx, a.Key, &wire.Spec{Name: []byte("slow")}, nil)
		}()
	}
	testsupport.WaitFor(t, "nextgen's pool full", func() bool {
		st, err := h.d.Status()
		if err != nil {
			return false
		}
		for _, ts := range st.Tiers {
			if ts.Name == "nextgen" {
				return ts.InFlight >= 2
			}
		}
		return false
	})
	_, err = h.c.Lookup(ctx, a.Key+1) // a key not indexed here
	t.Logf("LOOKUP of an unindexed key while nextgen's pool is full: %v", err)
	if errors.Is(err, wire.StatusUnavailable) {
		t.Errorf("LOOKUP answered UNAVAILABLE while every tier is healthy (a pool merely full): %v", err)
	}
}
