package pool

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"
)

// BenchmarkDetectPeerClose measures the design's dead-connection budget
// (≤ 1 ms from the peer's close to the tier marked down): the time from the
// server's close(2) of its connection to the pool's Live() reaching 0, the
// moment the request path stops choosing the tier. One live connection;
// each iteration builds a fresh server and pool (untimed). Reported as
// detect-p50-us, detect-p99-us and detect-max-us.
//
// The benchmark waits for the death on LiveChanged, parked, as any other
// goroutine of a process waits for an event. It must not spin on Live()
// (a runtime.Gosched loop, as it once did): a goroutine that is always
// runnable keeps every P of a 2-core machine finding work in the run
// queues, so no thread blocks in the network poller and the scheduler's
// non-blocking poll, made only when the run queues are empty, is skipped;
// the reader goroutine's EOF then waited for sysmon's forced poll (at most
// every 10 ms) or a gap in the spinning. That was the 8–12 ms p99 of the
// first measurements: the benchmark measured its own spinning
// (bench/results/detect-2026-12-07.txt has the runtime trace's evidence).
// The recorded time ends when the waiter has woken, a little after the
// live set was swapped: an upper bound.
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
		changed := p.LiveChanged()
		start := time.Now()
		ncs[0].Close()
		for p.Live() > 0 {
			select {
			case <-changed:
			case <-ctx.Done():
				b.Fatalf("Live() = %d after the peer closed: %v (server holds %d)", p.Live(), ctx.Err(), s.open())
			}
			changed = p.LiveChanged()
		}
		lat = append(lat, time.Since(start))
		cancel()
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
