package daemon

import (
	"errors"
	"sync"
	"testing"
	"time"

	"switchboard/telsim"
	"switchboard/wire"
)

// TestSilentFullTierFailsOverNotShed: a tier whose server stops answering
// without closing (a blackhole) fills its connections with calls that wait
// for their attempt deadline. A request that finds it full must not be
// answered OVERLOADED as if the tier were busy (a burst on a healthy tier is
// shed, and the tier order is a priority): the tier is silent, and the next
// tier serves it. Both layers are crossed: the front end's admission, which
// bounds requests by the first tier's capacity, and the router's wait for a
// slot. Before: every allocation past the silent tier's capacity was
// answered OVERLOADED (sbbench scenario failover -fault blackhole: 129 of
// 10,000).
func TestSilentFullTierFailsOverNotShed(t *testing.T) {
	slow, slowAddr := startTCPSim(t, "primary-large", "silent")
	fast, fastAddr := startTCPSim(t, "nextgen", "fast")
	const capacity, calls = 2, 8
	h := startDaemon(t, func(c *Config) {
		chaosConfig(c)
		c.Server.RequestTimeout = 8 * time.Second
		c.Tiers = c.Tiers[:2]
		c.Tiers[0].Servers = []string{slowAddr}
		c.Tiers[0].AttemptTimeout = 3 * time.Second // the silent tier's calls hold their slots this long
		c.Tiers[0].Pool.MinConns = 1
		c.Tiers[0].Pool.MaxInFlight = capacity
		c.Tiers[0].Pool.HeartbeatInterval = time.Minute // the blackholed server stays connected
		c.Tiers[0].Pool.HeartbeatTimeout = time.Minute
		c.Tiers[1].Servers = []string{fastAddr}
		c.Breaker.Failures = 100 // the breaker must not be what saves the later calls
	})
	if err := slow.SetFault(telsim.Fault{Mode: telsim.ModeBlackhole}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = slow.SetFault(telsim.Fault{}) }) // let the daemon stop without waiting for it
	ctx := ctxT(t)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for i := 0; i < calls; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			al, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("silent tier")})
			if err == nil && al.Tier != "nextgen" {
				err = errors.New("served by " + al.Tier + ", which is blackholed")
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Errorf("allocate: %v", err)
	}
	if len(errs) > 0 {
		t.Fatalf("%d of %d allocations failed while nextgen could serve them (want 0; OVERLOADED: the silent tier was taken for a busy one)", len(errs), calls)
	}
	if n := fast.Stats().Reservations; n < calls {
		t.Fatalf("nextgen holds %d bridges, want at least %d", n, calls)
	}
}
