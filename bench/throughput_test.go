package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/bench/httpbaseline"
	"switchboard/client"
	"switchboard/internal/testsupport"
	"switchboard/wire"
)

// The throughput budget: allocations per second of the daemon, pipelined,
// ≥ 10 × those of the net/http + JSON baseline (package httpbaseline), both
// measured in one process in one run, with the same closed-loop load.
const (
	// throughputConcurrency is the number of allocations in flight, for
	// both: that many goroutines, each allocating and releasing in a loop.
	throughputConcurrency = 64
	// switchboardConns is the number of connections the switchboard
	// client spreads those goroutines over (pipelining: 32 requests in
	// flight per connection). The baseline, HTTP/1.1, needs one
	// connection per request in flight.
	switchboardConns = 2
	// throughputBatches splits a measurement into batches, interleaved
	// with the baseline's in the switchboard sub-benchmark, so a noisy
	// moment hits both alike. A GC runs, untimed, before each batch.
	throughputBatches = 4
	// maxInRunBaseline caps the baseline cycles the switchboard
	// sub-benchmark runs for its x-baseline ratio (the baseline is several
	// times slower; a rate does not need the same count to compare).
	maxInRunBaseline = 20000
	// throughputWarmup cycles run untimed before measuring: they open
	// every keep-alive connection and fault in buffers.
	throughputWarmup = 4 * throughputConcurrency
)

// cycleFunc is one unit of measured work: one allocation with a fresh
// token and its release. Each load goroutine owns one.
type cycleFunc func(ctx context.Context) error

// load is a service under test as seen by closedLoop: one cycleFunc per
// goroutine, built once and reused across batches.
type load struct {
	name    string
	workers []cycleFunc
}

// labelled runs f with the pprof label load=name on its goroutine, so every
// goroutine it starts (a daemon, its servers, a client's readers) carries
// the label too: `go tool pprof -tagfocus load=switchboard` then shows one
// service's CPU in a profile of the sub-benchmark that runs both.
func labelled(name string, f func()) {
	pprof.Do(context.Background(), pprof.Labels("load", name), func(context.Context) { f() })
}

// closedLoop runs n cycles on len(l.workers) goroutines, each taking the
// next cycle as soon as its previous one is done, and returns the wall time.
// The first error stops every goroutine and is returned.
func closedLoop(l *load, n int) (time.Duration, error) {
	ctx, cancel := context.WithCancelCause(pprof.WithLabels(context.Background(), pprof.Labels("load", l.name)))
	defer cancel(nil)
	var left atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	t0 := time.Now()
	for _, w := range l.workers {
		wg.Go(func() {
			pprof.SetGoroutineLabels(ctx)
			for left.Add(-1) >= 0 && ctx.Err() == nil {
				if err := w(ctx); err != nil {
					cancel(fmt.Errorf("%s: %w", l.name, err))
					return
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(t0)
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return el, err
	}
	return el, nil
}

// tokenCounter hands out token numbers. It starts at the clock's
// nanoseconds, as allocClient does, so tokens never repeat across runs even
// against one long-running daemon ($SWITCHBOARD_BENCH_SOCKET).
type tokenCounter struct{ n atomic.Uint64 }

func newTokenCounter() *tokenCounter {
	tc := &tokenCounter{}
	tc.n.Store(uint64(time.Now().UnixNano()))
	return tc
}

// token writes the next token into tok (sampleToken's layout) in place.
func (tc *tokenCounter) token(tok []byte) {
	n := tc.n.Add(1)
	d := tok[len(tokenPrefix):]
	for i := tokenDigits - 1; i >= 0; i-- {
		d[i] = '0' + byte(n%10)
		n /= 10
	}
}

// switchboardLoad starts the real daemon in-process (default transport,
// the embedded config's sim:// tiers on TCP loopback) and a pipelining
// client with switchboardConns connections shared by every goroutine.
func switchboardLoad(tb testing.TB) *load {
	tb.Helper()
	var c *client.Client
	labelled("switchboard", func() {
		sock := startDaemon(tb, "")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		if c, err = client.Dial(ctx, sock, client.WithConns(switchboardConns)); err != nil {
			tb.Fatal(err)
		}
	})
	tb.Cleanup(func() { _ = c.Close() })
	tc := newTokenCounter()
	l := &load{name: "switchboard"}
	for range throughputConcurrency {
		req := wire.AllocateRequest{Token: sampleToken(0), Spec: sampleSpec(), Meta: sampleMeta()}
		l.workers = append(l.workers, func(ctx context.Context) error {
			tc.token(req.Token)
			a, err := c.Allocate(ctx, &req)
			if err != nil {
				return err
			}
			if a.Replayed {
				return fmt.Errorf("token %q replayed", req.Token)
			}
			return c.Release(ctx, a.Key)
		})
	}
	return l
}

// baselineSpec is sampleSpec in the baseline's JSON types.
func baselineSpec() httpbaseline.Spec {
	s := sampleSpec()
	return httpbaseline.Spec{
		Name: string(s.Name), Start: s.Start, TimeZone: s.TimeZone, Duration: s.Duration, Tone: uint8(s.Tone),
		Repeat: httpbaseline.Recurrence{
			Kind: uint8(s.Repeat.Kind), Interval: s.Repeat.Interval, Until: s.Repeat.Until, Days: s.Repeat.Days,
			DayOfMonth: s.Repeat.DayOfMonth, WeekOfMonth: s.Repeat.WeekOfMonth,
		},
		FullAttendees: s.FullAttendees, LimitedAttendees: s.LimitedAttendees,
	}
}

// baselineLoad starts the baseline in-process (the HTTP stub on TCP
// loopback, the daemon on a Unix socket) and an HTTP client whose
// keep-alive pool holds a connection per goroutine. It also returns the
// service, for its counters.
func baselineLoad(tb testing.TB) (*load, *httpbaseline.Service) {
	return baselineLoadWith(tb, 0)
}

// baselineLoadWith is baselineLoad with the baseline daemon's attempt
// timeout (0: its default, the benchmark's).
func baselineLoadWith(tb testing.TB, attempt time.Duration) (*load, *httpbaseline.Service) {
	tb.Helper()
	dir := testsupport.ShortTempDir(tb)
	sock := filepath.Join(dir, "baseline.sock")
	var svc *httpbaseline.Service
	labelled("baseline", func() {
		var err error
		if svc, err = httpbaseline.StartWith(httpbaseline.Config{Socket: sock, AttemptTimeout: attempt}); err != nil {
			tb.Fatal(err)
		}
	})
	c := httpbaseline.NewClient(sock, throughputConcurrency)
	tb.Cleanup(func() {
		c.Close()
		if err := svc.Close(); err != nil {
			tb.Errorf("baseline: %v", err)
		}
	})
	tc := newTokenCounter()
	l := &load{name: "baseline"}
	for range throughputConcurrency {
		tok := sampleToken(0)
		req := httpbaseline.AllocateRequest{Spec: baselineSpec(), Meta: sampleMeta()}
		l.workers = append(l.workers, func(ctx context.Context) error {
			tc.token(tok)
			req.Token = string(tok)
			a, err := c.Allocate(ctx, &req)
			if err != nil {
				return err
			}
			if a.Replayed {
				return fmt.Errorf("token %q replayed", req.Token)
			}
			return c.Release(ctx, a.Key)
		})
	}
	return l, svc
}

// warm runs throughputWarmup cycles of l, untimed.
func warm(tb testing.TB, l *load) {
	tb.Helper()
	if _, err := closedLoop(l, throughputWarmup); err != nil {
		tb.Fatal(err)
	}
}

// batches splits n into throughputBatches parts (fewer when n is small).
func batches(n int) []int {
	var out []int
	size := max((n+throughputBatches-1)/throughputBatches, 1)
	for n > 0 {
		k := min(size, n)
		out = append(out, k)
		n -= k
	}
	return out
}

// tally accumulates what the batches of one load measured.
type tally struct {
	n            int
	el           time.Duration
	syscr, syscw uint64 // read and write syscalls of the whole process
	sysOK        bool   // /proc/self/io was readable for every batch
}

// report adds the tally's metrics to b, prefixed.
func (t *tally) report(b *testing.B, prefix string) float64 {
	rate := float64(t.n) / t.el.Seconds()
	b.ReportMetric(rate, prefix+"alloc-per-s")
	if t.sysOK && t.n > 0 {
		b.ReportMetric(float64(t.syscr)/float64(t.n), prefix+"syscr-per-alloc")
		b.ReportMetric(float64(t.syscw)/float64(t.n), prefix+"syscw-per-alloc")
	}
	return rate
}

// procIO returns the read and write syscalls the process has made
// (Linux's /proc/self/io, which counts every thread); ok is false where it
// cannot be read.
func procIO() (syscr, syscw uint64, ok bool) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, 0, false
	}
	var nr, nw int
	for line := range strings.Lines(string(b)) {
		name, v, found := strings.Cut(strings.TrimSpace(line), ": ")
		if !found {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		switch {
		case err != nil:
		case name == "syscr":
			syscr, nr = n, nr+1
		case name == "syscw":
			syscw, nw = n, nw+1
		}
	}
	return syscr, syscw, nr == 1 && nw == 1
}

// runBatch runs n cycles of l after an untimed GC and adds them to t. The
// benchmark timer runs during the cycles only if timed.
func runBatch(b *testing.B, l *load, n int, timed bool, t *tally) {
	b.StopTimer()
	runtime.GC()
	r0, w0, ok0 := procIO()
	if timed {
		b.StartTimer()
	}
	d, err := closedLoop(l, n)
	b.StopTimer()
	r1, w1, ok1 := procIO()
	if err != nil {
		b.Fatal(err)
	}
	if t.n == 0 {
		t.sysOK = true
	}
	t.n += n
	t.el += d
	t.syscr += r1 - r0
	t.syscw += w1 - w0
	t.sysOK = t.sysOK && ok0 && ok1
}

// BenchmarkThroughput measures allocations per second (alloc-per-s; each
// cycle is an ALLOCATE with a fresh token and the RELEASE of its key, both
// inside the measured loop for both services) under the same closed-loop
// load: throughputConcurrency goroutines, b.N cycles. syscr-per-alloc and
// syscw-per-alloc are the read and write syscalls of the whole process per
// cycle (clients, daemon and telephony tier alike; Linux only): pipelining
// is worth what it saves there.
//
//   - baseline: the net/http + JSON daemon over a Unix socket with HTTP
//     keep-alive (one connection per goroutine), calling an HTTP telephony
//     stub over TCP loopback with keep-alive.
//   - switchboard: the real daemon in-process on its default transport, its
//     sim:// tiers on TCP loopback, and the Go client pipelining every
//     goroutine over switchboardConns connections. It also measures the
//     baseline in the same process, interleaved batch by batch (untimed),
//     and reports baseline-alloc-per-s and x-baseline = its rate / the
//     baseline's. Budget: x-baseline ≥ 10.
//
// Run with -benchtime Nx (for example 20000x) so both sub-benchmarks make
// the same number of allocations.
func BenchmarkThroughput(b *testing.B) {
	b.Run("baseline", func(b *testing.B) {
		base, _ := baselineLoad(b)
		warm(b, base)
		b.ReportAllocs()
		b.ResetTimer()
		var t tally
		for _, n := range batches(b.N) {
			runBatch(b, base, n, true, &t)
		}
		t.report(b, "")
	})
	b.Run("switchboard", func(b *testing.B) {
		sw := switchboardLoad(b)
		base, _ := baselineLoad(b)
		warm(b, sw)
		warm(b, base)
		b.ReportAllocs()
		b.ResetTimer()
		var swT, baseT tally
		swN, baseN := batches(b.N), batches(min(b.N, maxInRunBaseline))
		for i := range max(len(swN), len(baseN)) {
			if i < len(swN) {
				runBatch(b, sw, swN[i], true, &swT)
			}
			if i < len(baseN) {
				runBatch(b, base, baseN[i], false, &baseT)
			}
		}
		swRate := swT.report(b, "")
		baseRate := baseT.report(b, "baseline-")
		b.ReportMetric(swRate/baseRate, "x-baseline")
	})
}

// TestThroughputLoads runs both loads of BenchmarkThroughput briefly: every
// cycle succeeds (fresh tokens, no replay, every key released) and the
// baseline's stub saw each reserve and release.
func TestThroughputLoads(t *testing.T) {
	const n = 600
	// A correctness test, not a measurement: a -race build on a busy
	// 2-core machine (make test runs packages side by side) can take more
	// than the benchmark's 250 ms per stub call.
	base, svc := baselineLoadWith(t, 10*time.Second)
	if _, err := closedLoop(base, n); err != nil {
		t.Fatal(err)
	}
	st := svc.Stub.Stats()
	if st.Reserved != n || st.Released != n || st.Live != 0 || svc.Daemon.Live() != 0 {
		t.Fatalf("baseline after %d cycles: stub %+v, daemon live %d", n, st, svc.Daemon.Live())
	}
	// Without keep-alive every request would dial (2n per hop). With it,
	// about one connection per goroutine; a few more are normal, as
	// http.Transport dials while waiting for a busy connection to come back.
	if st.Conns > 2*throughputConcurrency || svc.Daemon.Conns() > 2*throughputConcurrency {
		t.Fatalf("baseline dialed %d stub and %d front-end connections for %d goroutines: keep-alive is not working",
			st.Conns, svc.Daemon.Conns(), throughputConcurrency)
	}
	if _, err := closedLoop(switchboardLoad(t), n); err != nil {
		t.Fatal(err)
	}
}

func TestBatches(t *testing.T) {
	for _, n := range []int{1, 3, 4, 7, 10, 20000} {
		got, sum := batches(n), 0
		for _, k := range got {
			sum += k
		}
		if sum != n || len(got) > throughputBatches {
			t.Fatalf("batches(%d) = %v", n, got)
		}
	}
}

func TestProcIO(t *testing.T) {
	r0, w0, ok := procIO()
	if !ok {
		t.Skip("no /proc/self/io here")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if r1, w1, ok := procIO(); !ok || w1 <= w0 || r1 < r0 {
		t.Fatalf("syscalls %d/%d -> %d/%d (ok %v): a write was not counted", r0, w0, r1, w1, ok)
	}
}
