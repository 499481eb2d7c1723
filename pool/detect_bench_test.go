package pool

import (
	"context"
	"net"
	"runtime"
	"slices"
	"testing"
	"time"
)

// BenchmarkDetectPeerClose measures the design's dead-connection budget
// (≤ 1 ms from the peer's close to the tier marked down): the time from the
// server's close(2) of its connection to the pool's Live() reaching 0, the
// moment the request path stops choosing the tier. One live connection;
// each iteration builds a fresh server and pool (untimed). Reported as
// detect-p50-us and detect-max-us.
func BenchmarkDetectPeerClose(b *testing.B) {
	lat := make([]time.Duration, 0, b.N)
	for i := 0; i < b.N; i++ {
		s := startTel(b, "127.0.0.1:0")
		cfg := testConfig(s.addr)
		cfg.MinConns = 1
		cfg.HeartbeatInterval = time.Hour // only the close may reveal the death
		p, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { p.Shutdown(context.Background()) })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := p.WaitReady(ctx); err != nil {
			b.Fatal(err)
		}
		cancel()
		s.mu.Lock()
		var ncs []net.Conn
		for c := range s.conns {
			ncs = append(ncs, c)
		}
		s.mu.Unlock()
		if len(ncs) != 1 {
			b.Fatalf("%d server connections, want 1", len(ncs))
		}
		// No redial may hide the death: the listener goes first.
		s.ln.Close()
		start := time.Now()
		ncs[0].Close()
		for spins := 0; p.Live() > 0; spins++ {
			if spins%1024 == 0 && time.Since(start) > 5*time.Second {
				b.Fatalf("Live() = %d 5s after the peer closed (server holds %d)", p.Live(), s.open())
			}
			runtime.Gosched()
		}
		lat = append(lat, time.Since(start))
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		p.Shutdown(sctx) // idempotent: the cleanup's call is a no-op
		scancel()
		s.kill()
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "detect-p50-us")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "detect-p99-us")
	b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds())/1e3, "detect-max-us")
}
