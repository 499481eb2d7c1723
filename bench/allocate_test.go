package bench

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"switchboard/bench/fakedaemon"
	"switchboard/daemon"
	"switchboard/internal/daemontest"
	"switchboard/wire"
)

// benchSocketEnv names a running daemon's front-end socket for
// BenchmarkAllocate (for example one started with `make run`).
const benchSocketEnv = "SWITCHBOARD_BENCH_SOCKET"

// startDaemon returns the front-end socket of the daemon BenchmarkAllocate
// measures: the daemon named by $SWITCHBOARD_BENCH_SOCKET if set (for
// example one started with `make run`), else an in-process daemon on the
// embedded default (three sim:// tiers on TCP loopback), its socket and data
// in a temporary directory, stopped at cleanup.
func startDaemon(tb testing.TB, transport string) string {
	tb.Helper()
	if p := os.Getenv(benchSocketEnv); p != "" {
		return p
	}
	// Errors only, to stderr: a failure inside the daemon (a lease store
	// error, a tier lost) must show next to the benchmark that suffered it.
	log, _, err := daemon.NewLogger(daemon.LogConfig{Level: "error", Format: "json"}, os.Stderr)
	if err != nil {
		tb.Fatal(err)
	}
	return daemontest.Start(tb, "", func(cfg *daemon.Config) {
		cfg.Log.Level = "error"
		if transport != "" {
			cfg.Server.Transport = transport
		}
	}, daemon.WithLogger(log)).Socket()
}

// releaseBatch is how many allocations BenchmarkAllocate makes before it
// stops the timer and releases them, so the daemon's tiers never fill up
// and release work is not counted as allocation latency.
const releaseBatch = 1000

// allocClient allocates over one raw connection, one request at a time —
// the same ping-pong shape as the floor's echo client, so the two compare.
// It is not safe for concurrent use.
type allocClient struct {
	c    net.Conn
	r    *bufio.Reader
	req  []byte // ALLOCATE request frame; id and token counter rewritten per call
	rel  []byte // RELEASE request frame; id and key rewritten per call
	buf  []byte
	id   uint64
	tok  uint64   // token counter; starts at a per-run value so reruns never replay
	keys []uint64 // allocated, not yet released
}

func dialAlloc(tb testing.TB, socket string) *allocClient {
	tb.Helper()
	c, err := net.Dial("unix", socket)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return &allocClient{
		c:    c,
		r:    bufio.NewReaderSize(c, 64<<10),
		req:  allocateRequestFrame(tb),
		rel:  mustFrame(tb, wire.Header{Op: wire.OpRelease}, &wire.KeyRequest{}),
		buf:  make([]byte, 0, 1024),
		tok:  uint64(time.Now().UnixNano()),
		keys: make([]uint64, 0, releaseBatch),
	}
}

// call writes frame with a fresh id and reads its answer into a.buf,
// returning the answer's payload or its error.
func (a *allocClient) call(frame []byte) ([]byte, error) {
	a.id++
	setID(frame, a.id)
	if _, err := a.c.Write(frame); err != nil {
		return nil, err
	}
	var err error
	if a.buf, err = readRawFrame(a.r, a.buf); err != nil {
		return nil, err
	}
	h, _, err := wire.ParseHeader(a.buf, maxEchoFrame)
	if err != nil {
		return nil, err
	}
	if h.ID != a.id || !h.IsResponse() {
		return nil, fmt.Errorf("%w: got %d, sent %d", errIDMismatch, h.ID, a.id)
	}
	p := a.buf[wire.HeaderSize:]
	if h.Status != wire.StatusOK {
		return nil, wire.DecodeError(h.Status, p)
	}
	return p, nil
}

// allocate makes one allocation with a token never used before.
func (a *allocClient) allocate() error {
	a.tok++
	setTokenCounter(a.req, a.tok)
	p, err := a.call(a.req)
	if err != nil {
		return err
	}
	var resp wire.AllocateResponse
	if err := resp.Decode(p); err != nil {
		return err
	}
	if resp.Replayed {
		return fmt.Errorf("bench: token %d was replayed", a.tok)
	}
	a.keys = append(a.keys, resp.Key)
	return nil
}

// releaseAll releases every key allocate collected.
func (a *allocClient) releaseAll() error {
	for _, k := range a.keys {
		binary.BigEndian.PutUint64(a.rel[wire.HeaderSize:], k)
		if _, err := a.call(a.rel); err != nil {
			return fmt.Errorf("release %d: %w", k, err)
		}
	}
	a.keys = a.keys[:0]
	return nil
}

// BenchmarkAllocate is the end-to-end allocation round trip: one client,
// one connection, one ALLOCATE at a time (a fresh token each), against a
// daemon whose tiers are on TCP loopback. Besides ns/op and p50-ns/p99-ns
// it reports x-floor = allocation p50 / (UDS floor p50 + TCP floor p50),
// the floor measured right after in the same process. Budget: x-floor ≤ 1.25.
func BenchmarkAllocate(b *testing.B) {
	if os.Getenv(benchSocketEnv) != "" {
		benchAllocate(b, "")
		return
	}
	// Both front-end transports, measured in the same run (docs/libraries.md N9).
	for _, tr := range []string{"net", "netpoll"} {
		b.Run(tr, func(b *testing.B) { benchAllocate(b, tr) })
	}
}

func benchAllocate(b *testing.B, transport string) {
	a := dialAlloc(b, startDaemon(b, transport))
	for range warmupRoundTrips {
		if err := a.allocate(); err != nil {
			b.Fatal(err)
		}
	}
	if err := a.releaseAll(); err != nil {
		b.Fatal(err)
	}
	durs := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += releaseBatch {
		j := min(i+releaseBatch, b.N)
		if err := timeRoundTrips(durs[i:j], a.allocate); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := a.releaseAll(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	reportLatency(b, "", durs)
	p50 := quantile(durs, 0.5)
	uds, tcp := floor(b, min(max(b.N, 2000), 20000))
	b.ReportMetric(float64(uds.Nanoseconds()), "floor-uds-p50-ns")
	b.ReportMetric(float64(tcp.Nanoseconds()), "floor-tcp-p50-ns")
	b.ReportMetric(float64(p50)/float64(uds+tcp), "x-floor")
}

// TestAllocClient runs BenchmarkAllocate's client against the fake daemon:
// unique tokens (no replays), distinct keys, and everything released.
func TestAllocClient(t *testing.T) {
	fd := fakedaemon.StartTB(t, fakedaemon.Config{})
	a := dialAlloc(t, fd.Path())
	seen := map[uint64]bool{}
	for range 10 {
		if err := a.allocate(); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range a.keys {
		if seen[k] {
			t.Fatalf("key %d allocated twice", k)
		}
		seen[k] = true
	}
	if err := a.releaseAll(); err != nil {
		t.Fatal(err)
	}
	if st := fd.Stats(); st.Allocated != 10 || st.Replayed != 0 || st.Released != 10 || st.Live != 0 {
		t.Fatalf("fake daemon stats %+v", st)
	}
	// An error answer surfaces as a *wire.RemoteError.
	a.keys = append(a.keys, 1)
	if err := a.releaseAll(); err == nil {
		t.Fatal("releasing an unknown key succeeded")
	}
}
