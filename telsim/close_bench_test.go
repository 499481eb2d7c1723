package telsim

import (
	"slices"
	"testing"
	"time"
)

// BenchmarkFaultSeenByPeer measures the simulator's part of a fault that
// closes connections: from the SetFault call to the moment a client's
// blocked read returns (EOF for down, ECONNRESET for reset) on a connection
// whose reader goroutine sits in its Read, as every idle pooled connection's
// does. Reported as seen-p50-us, seen-p99-us and setfault-p50-us (SetFault's
// own return). The client waits parked in its read, never spinning, so the
// network poller is not starved (pool's BenchmarkDetectPeerClose).
func BenchmarkFaultSeenByPeer(b *testing.B) {
	for _, mode := range []Mode{ModeDown, ModeReset} {
		b.Run(mode.String(), func(b *testing.B) {
			s, addr := startServer(b, Config{})
			seen := make([]time.Duration, 0, b.N)
			set := make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				if err := s.SetFault(Fault{Mode: ModeNone}); err != nil {
					b.Fatal(err)
				}
				c := dial(b, addr)
				if _, err := c.ping(); err != nil { // served: its reader is in Read
					b.Fatal(err)
				}
				done := make(chan time.Time, 1)
				go func() {
					_ = c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
					var buf [1]byte
					_, _ = c.nc.Read(buf[:])
					done <- time.Now()
				}()
				start := time.Now()
				if err := s.SetFault(Fault{Mode: mode}); err != nil {
					b.Fatal(err)
				}
				set = append(set, time.Since(start))
				seen = append(seen, (<-done).Sub(start))
				_ = c.nc.Close()
			}
			slices.Sort(seen)
			slices.Sort(set)
			b.ReportMetric(float64(seen[len(seen)/2].Nanoseconds())/1e3, "seen-p50-us")
			b.ReportMetric(float64(seen[len(seen)*99/100].Nanoseconds())/1e3, "seen-p99-us")
			b.ReportMetric(float64(set[len(set)/2].Nanoseconds())/1e3, "setfault-p50-us")
		})
	}
}
