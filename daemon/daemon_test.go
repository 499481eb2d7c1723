package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"switchboard/client"
	"switchboard/internal/etcdtest"
	"switchboard/internal/testsupport"
	"switchboard/keygen"
	"switchboard/telsim/simhost"
	"switchboard/wire"
)

// netpoll's pollers and gopool's workers are process-wide and outlive any one
// daemon by design (docs/architecture.md, "Goroutines and their owners"), as
// do etcd's own (etcd store tests); everything else must stop.
func TestMain(m *testing.M) { testsupport.VerifyTestMainNetpoll(m, etcdtest.IgnoreLeaks()...) }

type harness struct {
	d    *Daemon
	c    *client.Client
	sock string
}

// testConfig returns the embedded default configuration with its socket and
// data directory in a new short temporary directory.
func testConfig(t testing.TB) *Config {
	t.Helper()
	cfg, err := DefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	dir := testsupport.ShortTempDir(t)
	cfg.Socket = filepath.Join(dir, "sb.sock")
	cfg.DataDir = filepath.Join(dir, "data")
	return cfg
}

// startDaemon runs a daemon on the embedded default (three sim:// tiers) in a
// temporary directory, with a client connected; both stop at cleanup.
func startDaemon(t testing.TB, mutate func(*Config), opts ...Option) *harness {
	t.Helper()
	cfg := testConfig(t)
	cfg.Keys.BlockSize = 1024
	cfg.Cache.SizeMB = 32
	cfg.Server.ShutdownTimeout = 5 * time.Second
	if mutate != nil {
		mutate(cfg)
	}
	if tt, ok := t.(*testing.T); ok {
		opts = append([]Option{WithLogger(zaptest.NewLogger(tt))}, opts...)
	}
	// Tests that restart a daemon on one data directory keep its key space.
	ensureKeys(t, cfg)
	d, err := New(cfg, append([]Option{WithSimHost(testSimHost(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	stop := runUntilReady(t, d)
	c, err := client.Dial(context.Background(), cfg.Socket, client.WithConns(2))
	if err != nil {
		stop()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return &harness{d: d, c: c, sock: cfg.Socket}
}

// testSimHost returns a simulator host for a test's daemon, closed at the
// test's cleanup: after the daemon's stop, registered later (the host's
// creator closes it, not the daemon).
func testSimHost(t testing.TB) *simhost.Host {
	h := simhost.New()
	t.Cleanup(h.Close)
	return h
}

// runUntilReady runs d until it is Ready (failing t if it does not get
// there within 10s); stop cancels Run and returns its error, failing t if
// Run does not return within 15s.
func runUntilReady(t testing.TB, d *Daemon) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(ctx) }()
	stop = func() error {
		cancel()
		select {
		case err := <-runErr:
			runErr <- err // stop may be called again
			return err
		case <-time.After(15 * time.Second):
			t.Error("daemon did not stop within 15s")
			return nil
		}
	}
	select {
	case <-d.Ready():
	case err := <-runErr:
		cancel()
		t.Fatalf("daemon did not start: %v", err)
	case <-time.After(10 * time.Second):
		stop()
		t.Fatal("daemon not ready after 10s")
	}
	return stop
}

// serveWithClient runs d until it is Ready and returns a client of its
// socket; at cleanup the client closes, then Run is stopped (failing t if
// it returned an error).
func serveWithClient(t *testing.T, d *Daemon, socket string) *client.Client {
	t.Helper()
	stop := runUntilReady(t, d)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	c, err := client.Dial(context.Background(), socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func spec(name string) wire.Spec {
	return wire.Spec{Name: []byte(name), Start: 1113836931, TimeZone: 45, Duration: 60,
		Tone: wire.ToneAnnounceName, Repeat: wire.Recurrence{Kind: wire.RepeatDaily, Interval: 1},
		FullAttendees: 1, LimitedAttendees: 1}
}

// transports are the front-end transports every socket-level test runs on.
var transports = []string{"net", "netpoll"}

func withTransport(tr string) func(*Config) {
	return func(c *Config) { c.Server.Transport = tr }
}

func TestLifecycleAllocateLookupUpdateRelease(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { testLifecycle(t, tr) })
	}
}

func testLifecycle(t *testing.T, tr string) {
	h := startDaemon(t, withTransport(tr))
	ctx := ctxT(t)
	if err := h.c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	s := spec("Sample Teleconference-only meeting")
	meta := []byte("opaque meeting record")
	a, err := h.c.Allocate(ctx, &wire.AllocateRequest{Token: []byte("tok-1"), Spec: s, Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	if a.Key < 100_000_000 || a.Key > 999_999_999 {
		t.Fatalf("key %d is not 9 digits", a.Key)
	}
	if a.Tier != "primary-large" || a.Bridge.ID == "" || a.Bridge.Toll == "" || a.Bridge.TollFree == "" ||
		a.Bridge.HostCode == "" || a.Bridge.AttendeeCode == "" || a.Replayed {
		t.Fatalf("allocation %+v", a)
	}

	// The same token returns the first result.
	again, err := h.c.Allocate(ctx, &wire.AllocateRequest{Token: []byte("tok-1"), Spec: s, Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	if again.Key != a.Key || !again.Replayed || again.Bridge != a.Bridge {
		t.Fatalf("replay %+v, first %+v", again, a)
	}

	r, err := h.c.Lookup(ctx, a.Key)
	if err != nil {
		t.Fatal(err)
	}
	if r.Key != a.Key || r.Tier != a.Tier || r.Bridge != a.Bridge || string(r.Meta) != string(meta) || r.Spec.Name != string(s.Name) {
		t.Fatalf("lookup %+v", r)
	}

	s2 := spec("Renamed meeting")
	u, err := h.c.Update(ctx, a.Key, &s2, []byte("v2"))
	if err != nil {
		t.Fatal(err)
	}
	if u.Spec.Name != "Renamed meeting" || string(u.Meta) != "v2" || u.Bridge != a.Bridge {
		t.Fatalf("update %+v", u)
	}

	// LOOKUP falls back to the telephony server when the index has lost it.
	h.d.rt.ForgetSession(a.Key)
	r, err = h.c.Lookup(ctx, a.Key)
	if err != nil {
		t.Fatal(err)
	}
	if r.Spec.Name != "Renamed meeting" || r.Tier != "primary-large" || string(r.Meta) != "v2" {
		t.Fatalf("lookup from the tier %+v", r)
	}

	if err := h.c.Release(ctx, a.Key); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.Lookup(ctx, a.Key); !errors.Is(err, wire.StatusNotFound) {
		t.Fatalf("lookup after release: %v, want NOT_FOUND", err)
	}
	if err := h.c.Release(ctx, a.Key); !errors.Is(err, wire.StatusNotFound) {
		t.Fatalf("second release: %v, want NOT_FOUND", err)
	}
	if st := h.d.Simulator("primary-large").Stats(); st.Reservations != 0 {
		t.Fatalf("primary still holds %d reservations", st.Reservations)
	}
}

func TestFailoverWhenPrimaryStops(t *testing.T) {
	h := startDaemon(t, nil)
	ctx := ctxT(t)
	a, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("before")})
	if err != nil || a.Tier != "primary-large" {
		t.Fatalf("first allocation %+v %v", a, err)
	}
	h.d.Simulator("primary-large").Close()
	for i := 0; i < 50; i++ {
		a, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec(fmt.Sprint("after ", i))})
		if err != nil {
			t.Fatalf("allocation %d after primary stopped: %v", i, err)
		}
		if a.Tier != "nextgen" {
			t.Fatalf("allocation %d served by %s, want nextgen", i, a.Tier)
		}
	}
}

func TestAllTiersDownIsUnavailableAtOnce(t *testing.T) {
	h := startDaemon(t, nil)
	ctx := ctxT(t)
	for _, n := range []string{"primary-large", "nextgen", "backup2-large"} {
		h.d.Simulator(n).Close()
	}
	// Wait until the pools have seen it (event-driven: immediate, but the
	// close is asynchronous).
	deadline := time.Now().Add(5 * time.Second)
	for _, t2 := range h.d.rt.Tiers() {
		for t2.Pool.Live() > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("tier %s still live", t2.Name)
			}
			time.Sleep(time.Millisecond)
		}
	}
	start := time.Now()
	_, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("nowhere")})
	if !errors.Is(err, wire.StatusUnavailable) {
		t.Fatalf("allocate with every tier down: %v, want UNAVAILABLE", err)
	}
	// Not after an attempt timeout per tier (3 × 250ms): a generous bound.
	if el := time.Since(start); el > 200*time.Millisecond {
		t.Fatalf("UNAVAILABLE took %v", el)
	}
}

func TestCapacityMovesToNextTier(t *testing.T) {
	h := startDaemon(t, func(c *Config) {
		c.Simulators = []SimConfig{{Name: "primary-large", Capacity: 2}, {Name: "nextgen", Capacity: 1}, {Name: "backup2-large", Capacity: 1}}
		c.applyDefaults()
	})
	ctx := ctxT(t)
	var tiers []string
	for i := 0; i < 4; i++ {
		a, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("cap")})
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		tiers = append(tiers, a.Tier)
	}
	want := "[primary-large primary-large nextgen backup2-large]"
	if fmt.Sprint(tiers) != want {
		t.Fatalf("tiers %v, want %s", tiers, want)
	}
	if _, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("cap")}); !errors.Is(err, wire.StatusCapacity) {
		t.Fatalf("allocation with every tier full: %v, want CAPACITY", err)
	}
	// CAPACITY is a healthy answer: no breaker opened.
	for _, tr := range h.d.rt.Tiers() {
		if tr.Breaker.Skip() {
			t.Fatalf("breaker of %s opened on CAPACITY", tr.Name)
		}
	}
}

// dupKeys hands out a key a telephony server already holds, then fresh ones.
type dupKeys struct {
	mu   sync.Mutex
	keys []uint64
}

func (k *dupKeys) Next() (uint64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v := k.keys[0]
	k.keys = k.keys[1:]
	return v, nil
}

func TestKeyExistsTakesTheNextKey(t *testing.T) {
	keys := &dupKeys{keys: []uint64{123456789, 123456789, 223456789}}
	h := startDaemon(t, nil, withKeySource(keys))
	ctx := ctxT(t)
	a, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("one")})
	if err != nil || a.Key != 123456789 {
		t.Fatalf("first: %+v %v", a, err)
	}
	b, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("two")})
	if err != nil {
		t.Fatal(err)
	}
	if b.Key != 223456789 || b.Tier != "primary-large" {
		t.Fatalf("second allocation %+v: want the next key on primary", b)
	}
	if h.d.rt.Stats().KeyExists != 1 {
		t.Fatalf("keyExists = %d", h.d.rt.Stats().KeyExists)
	}
}

func TestTenThousandConcurrentAllocationsAreDistinct(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { testTenThousand(t, tr) })
	}
}

func testTenThousand(t *testing.T, tr string) {
	h := startDaemon(t, withTransport(tr))
	ctx := ctxT(t)
	const n, workers = 10000, 64
	keys := make(chan uint64, n)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				a, err := h.c.Allocate(ctx, &wire.AllocateRequest{Token: []byte(fmt.Sprint("t-", i)), Spec: spec("load")})
				if err != nil {
					errs <- fmt.Errorf("allocation %d: %w", i, err)
					return
				}
				keys <- a.Key
			}
		}(w)
	}
	wg.Wait()
	close(keys)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := make(map[uint64]bool, n)
	for k := range keys {
		if seen[k] {
			t.Fatalf("key %d issued twice", k)
		}
		seen[k] = true
	}
	if len(seen) != n {
		t.Fatalf("%d keys, want %d", len(seen), n)
	}
}

func TestConcurrentSameTokenAllocatesOnce(t *testing.T) {
	h := startDaemon(t, nil)
	ctx := ctxT(t)
	const n = 32
	var wg sync.WaitGroup
	res := make([]client.Allocation, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			res[i], errs[i] = h.c.Allocate(ctx, &wire.AllocateRequest{Token: []byte("same"), Spec: spec("dup")})
		}(i)
	}
	wg.Wait()
	fresh := 0
	for i := range res {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if res[i].Key != res[0].Key {
			t.Fatalf("token gave keys %d and %d", res[0].Key, res[i].Key)
		}
		if !res[i].Replayed {
			fresh++
		}
	}
	if fresh != 1 {
		t.Fatalf("%d first results, want 1", fresh)
	}
	if st := h.d.Simulator("primary-large").Stats(); st.Reservations != 1 {
		t.Fatalf("%d reservations for one token", st.Reservations)
	}
}

// rawConn opens a raw connection to the daemon socket.
func rawConn(t *testing.T, sock string) net.Conn {
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

func TestBadFrames(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { testBadFrames(t, tr) })
	}
}

func testBadFrames(t *testing.T, tr string) {
	h := startDaemon(t, withTransport(tr))

	t.Run("oversize length is refused before the payload", func(t *testing.T) {
		c := rawConn(t, h.sock)
		hdr, _ := wire.BeginFrame(nil, wire.Header{Op: wire.OpAllocate, ID: 9})
		hdr[0], hdr[1], hdr[2], hdr[3] = 0x7f, 0xff, 0xff, 0xff
		c.Write(hdr)
		h2, p, _, err := wire.ReadFrame(c, nil, wire.DefaultMaxFrame)
		if err != nil || h2.Status != wire.StatusBadRequest || h2.ID != 9 {
			t.Fatalf("got %+v %q %v, want BAD_REQUEST for id 9", h2, p, err)
		}
		if _, _, _, err := wire.ReadFrame(c, nil, wire.DefaultMaxFrame); err == nil {
			t.Fatal("connection still open after an oversize frame")
		}
	})
	t.Run("unknown op", func(t *testing.T) {
		c := rawConn(t, h.sock)
		f, _ := wire.AppendFrame(nil, wire.Header{Op: wire.OpReserve, ID: 3}, nil, wire.DefaultMaxFrame)
		c.Write(f)
		h2, _, _, err := wire.ReadFrame(c, nil, wire.DefaultMaxFrame)
		if err != nil || h2.Status != wire.StatusUnsupported || h2.ID != 3 {
			t.Fatalf("got %+v %v, want UNSUPPORTED", h2, err)
		}
		// The connection stays usable.
		f, _ = wire.AppendFrame(nil, wire.Header{Op: wire.OpPing, ID: 4}, nil, wire.DefaultMaxFrame)
		c.Write(f)
		if h2, _, _, err = wire.ReadFrame(c, nil, wire.DefaultMaxFrame); err != nil || h2.Status != wire.StatusOK || h2.ID != 4 {
			t.Fatalf("ping after unknown op: %+v %v", h2, err)
		}
	})
	t.Run("undecodable payload", func(t *testing.T) {
		c := rawConn(t, h.sock)
		f, _ := wire.AppendFrame(nil, wire.Header{Op: wire.OpAllocate, ID: 5}, wire.Empty{}, wire.DefaultMaxFrame)
		f = append(f, 0xff)
		f[3]++
		c.Write(f)
		h2, _, _, err := wire.ReadFrame(c, nil, wire.DefaultMaxFrame)
		if err != nil || h2.Status != wire.StatusBadRequest || h2.ID != 5 {
			t.Fatalf("got %+v %v, want BAD_REQUEST", h2, err)
		}
	})
	// Other clients were not disturbed.
	if err := h.c.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

func TestShutdownFinishesInFlight(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { testShutdown(t, tr) })
	}
}

func testShutdown(t *testing.T, tr string) {
	cfg := func(c *Config) {
		c.Server.Transport = tr
		for i := range c.Simulators {
			c.Simulators[i].Latency = 200 * time.Millisecond
		}
	}
	dir := testsupport.ShortTempDir(t)
	_ = dir
	c0, err := DefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg(c0)
	c0.Socket = filepath.Join(dir, "sb.sock")
	c0.DataDir = filepath.Join(dir, "data")
	c0.Tiers[0].AttemptTimeout = time.Second
	mustInitKeys(t, c0)
	d, err := New(c0, WithLogger(zaptest.NewLogger(t)), WithSimHost(testSimHost(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(ctx) }()
	<-d.Ready()
	c, err := client.Dial(context.Background(), c0.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Allocate(ctxT(t), &wire.AllocateRequest{Spec: spec("drain")})
			errs <- err
		}()
	}
	// Let the requests reach the daemon, then stop it.
	deadline := time.Now().Add(5 * time.Second)
	for d.srv.Stats().InFlight < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("in-flight request failed during shutdown: %v", err)
		}
	}
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c0.Socket); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}

// mustInitKeys creates the key space of cfg's new data directory, as the
// operator's switchboard -init-keys does before a daemon's first start.
func mustInitKeys(t testing.TB, cfg *Config) {
	t.Helper()
	if _, err := InitKeys(cfg, 0); err != nil {
		t.Fatalf("InitKeys: %v", err)
	}
}

// ensureKeys creates the key space of cfg's data directory unless it has
// one: for harnesses that restart a daemon on the same directory.
func ensureKeys(t testing.TB, cfg *Config) {
	t.Helper()
	if _, err := InitKeys(cfg, 0); err != nil && !errors.Is(err, keygen.ErrKeySpaceExists) {
		t.Fatalf("InitKeys: %v", err)
	}
}
