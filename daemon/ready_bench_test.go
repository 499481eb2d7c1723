package daemon

import (
	"context"
	"slices"
	"testing"
	"time"

	"switchboard/client"
	"switchboard/telsim/simhost"
)

// BenchmarkReadyAfterStart measures the design budget "ready after start
// (pools warm) ≤ 100 ms with sim:// tiers": from New on the embedded
// default configuration (three simulated tiers, two warm connections
// each) to Ready, which is when the socket accepts requests and systemd
// hears READY=1. Each iteration is a cold start on a fresh data directory
// (secret generation and the first key lease with its fsync included),
// then a PING through the socket to prove it serves, then a stop. It
// reports the median and the worst start of the run in ms.
func BenchmarkReadyAfterStart(b *testing.B) {
	var starts []time.Duration
	for i := 0; i < b.N; i++ {
		cfg := testConfig(b)
		cfg.Cache.SizeMB = 32

		if _, err := InitKeys(cfg, 0); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		sims := simhost.New()
		d, err := New(cfg, WithSimHost(sims))
		if err != nil {
			b.Fatal(err)
		}
		stop := runUntilReady(b, d)
		starts = append(starts, time.Since(t0))

		b.StopTimer()
		pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := client.Dial(pctx, cfg.Socket)
		if err == nil {
			err = c.Ping(pctx)
			c.Close()
		}
		pcancel()
		rerr := stop()
		sims.Close()
		if rerr != nil {
			b.Fatalf("Run: %v", rerr)
		}
		if err != nil {
			b.Fatalf("ready daemon does not answer PING: %v", err)
		}
		b.StartTimer()
	}
	slices.Sort(starts)
	b.ReportMetric(float64(starts[len(starts)/2].Microseconds())/1000, "ms-ready-p50")
	b.ReportMetric(float64(starts[len(starts)-1].Microseconds())/1000, "ms-ready-max")
	b.ReportMetric(0, "ns/op")
}
