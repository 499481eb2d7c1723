package daemon

import (
	"context"
	"slices"
	"testing"
	"time"

	"switchboard/breaker"
	"switchboard/route"
	"switchboard/telsim"
	"switchboard/wire"
)

// benchDaemon starts a quiet daemon for benchmarks with large simulators.
func benchDaemon(b *testing.B, tiers ...string) *harness {
	return startDaemon(b, func(c *Config) {
		c.Tiers = nil
		c.Simulators = nil
		for _, n := range tiers {
			c.Tiers = append(c.Tiers, TierConfig{Name: n, Servers: []string{"sim://" + n}})
			c.Simulators = append(c.Simulators, SimConfig{Name: n, Capacity: 10_000_000})
		}
		c.applyDefaults()
	})
}

// allocateLoop measures the router's allocation path directly (no front-end
// socket): key, tier order, RESERVE round trip over the pooled TCP
// connection, index. Allocations are released with the timer stopped.
func allocateLoop(b *testing.B, h *harness, wantTier string) {
	svc := h.d.rt
	ctx := context.Background()
	req := wire.AllocateRequest{Spec: spec("bench")}
	rs := &route.Scratch{}
	var buf []byte
	var keys []uint64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out, err := svc.Allocate(ctx, rs, &req, buf[:0])
		if err != nil {
			b.Fatal(err)
		}
		buf = out
		if rs.Slot != 0 { // its answer "written": as the server settles it
			svc.Delivered(rs.Slot)
			rs.Slot = 0
		}
		var a wire.AllocateResponse
		if err := a.Decode(out); err != nil || string(a.Tier) != wantTier {
			b.Fatalf("served by %q (%v), want %s", a.Tier, err, wantTier)
		}
		keys = append(keys, a.Key)
		if len(keys) == 4096 {
			b.StopTimer()
			for _, k := range keys {
				svc.Release(ctx, rs, k, nil)
			}
			keys = keys[:0]
			b.StartTimer()
		}
	}
}

// BenchmarkAllocateDirectNextGen is the baseline of the switch cost: nextgen
// is the only tier.
func BenchmarkAllocateDirectNextGen(b *testing.B) {
	h := benchDaemon(b, "nextgen")
	allocateLoop(b, h, "nextgen")
}

// BenchmarkAllocatePrimaryDown: primary's server is gone (its pool has no
// live connection), so every allocation passes over it to nextgen. The
// difference to BenchmarkAllocateDirectNextGen is the switch cost.
func BenchmarkAllocatePrimaryDown(b *testing.B) {
	h := benchDaemon(b, "primary-large", "nextgen")
	h.d.Simulator("primary-large").Close()
	waitLive(b, h, "primary-large", 0)
	allocateLoop(b, h, "nextgen")
}

// BenchmarkAllocatePrimaryBreakerOpen: primary is up but its breaker is
// open (forced), so it is skipped on the breaker mirror alone.
func BenchmarkAllocatePrimaryBreakerOpen(b *testing.B) {
	h := benchDaemon(b, "primary-large", "nextgen")
	tierByName(h, "primary-large").Breaker.SetOverride(breaker.ForceOpen)
	allocateLoop(b, h, "nextgen")
}

// BenchmarkTierSkip is the switch cost itself: deciding that a tier known
// to be down is not available.
func BenchmarkTierSkip(b *testing.B) {
	for _, c := range []struct {
		name string
		down func(*tier)
	}{
		{"no-live-conn", nil},
		{"breaker-open", func(t *tier) { t.Breaker.SetOverride(breaker.ForceOpen) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := benchDaemon(b, "primary-large")
			t := tierByName(h, "primary-large")
			if c.down == nil {
				h.d.Simulator("primary-large").Close()
				waitLive(b, h, "primary-large", 0)
			} else {
				c.down(t)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if t.Available() {
					b.Fatal("a down tier is available")
				}
			}
		})
	}
}

// BenchmarkDetectPeerClose measures how long it takes from a telephony
// server closing its connections (fault "down": listener and every
// connection closed) until the tier's pool reports no live connection, the
// moment allocations stop trying it. Reported as detect-p50-us,
// detect-p99-us and detect-max-us over b.N closes; setfault-p50-us is the
// part spent in SetFault itself (the simulator's hand-off to its serve
// loop, which closes the listener and the connections, and back).
func BenchmarkDetectPeerClose(b *testing.B) {
	for _, mode := range []telsim.Mode{telsim.ModeDown, telsim.ModeReset} {
		b.Run(mode.String(), func(b *testing.B) {
			h := startDaemon(b, func(c *Config) {
				chaosConfig(c)
				c.Pool.MinConns = 1
				c.Tiers = c.Tiers[:1]
				c.applyDefaults()
			})
			sim := h.d.Simulator("primary-large")
			tr := tierByName(h, "primary-large")
			var lat, set []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				waitLive(b, h, "primary-large", 1)
				b.StartTimer()
				changed := tr.Pool.LiveChanged()
				start := time.Now()
				if err := sim.SetFault(telsim.Fault{Mode: mode}); err != nil {
					b.Fatal(err)
				}
				set = append(set, time.Since(start))
				// Parked on LiveChanged, never spinning: a spinning
				// waiter starves the network poller (pool's benchmark).
				for tr.Pool.Live() > 0 {
					<-changed
					changed = tr.Pool.LiveChanged()
				}
				lat = append(lat, time.Since(start))
				b.StopTimer()
				if err := sim.SetFault(telsim.Fault{Mode: telsim.ModeNone}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.StopTimer()
			slices.Sort(lat)
			slices.Sort(set)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "detect-p50-us")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "detect-p99-us")
			b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "detect-max-us")
			b.ReportMetric(float64(set[len(set)/2].Microseconds()), "setfault-p50-us")
		})
	}
}

func tierByName(h *harness, name string) *tier {
	for _, t := range h.d.rt.Tiers() {
		if t.Name == name {
			return t
		}
	}
	return nil
}

func waitLive(b testing.TB, h *harness, name string, want int) {
	t := tierByName(h, name)
	deadline := time.Now().Add(10 * time.Second)
	for (want == 0) != (t.Pool.Live() == 0) {
		if time.Now().After(deadline) {
			b.Fatalf("tier %s live %d, want %d", name, t.Pool.Live(), want)
		}
		time.Sleep(time.Millisecond)
	}
}
