package pool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/internal/testsupport"
	"switchboard/mux"
	"switchboard/wire"
)

func TestConfigValidate(t *testing.T) {
	good := testConfig("127.0.0.1:1", "127.0.0.1:2")
	if err := good.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	bad := map[string]func(c *Config){
		"no tier":          func(c *Config) { c.Tier = "" },
		"no servers":       func(c *Config) { c.Servers = nil },
		"not host:port":    func(c *Config) { c.Servers = []string{"localhost"} },
		"duplicate":        func(c *Config) { c.Servers = []string{"a:1", "a:1"} },
		"negative min":     func(c *Config) { c.MinConns = -1 },
		"min above bound":  func(c *Config) { c.MinConns = MaxMinConns + 1 },
		"negative timeout": func(c *Config) { c.HeartbeatTimeout = -time.Second },
		"small frame":      func(c *Config) { c.MaxFrame = 100 },
		"long client":      func(c *Config) { c.Client = strings.Repeat("x", wire.MaxShort+1) },
		"max below base":   func(c *Config) { c.BackoffBase, c.BackoffMax = time.Second, time.Millisecond },
	}
	for name, mutate := range bad {
		c := good
		mutate(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	d := Config{Tier: "t", Servers: []string{"a:1"}}.withDefaults()
	want := DefaultConfig()
	want.Tier, want.Servers = "t", []string{"a:1"}
	if fmt.Sprint(d) != fmt.Sprint(want) {
		t.Errorf("withDefaults = %+v\nwant %+v", d, want)
	}
	// A lone BackoffBase above the default max lifts the max with it.
	if c := (Config{Tier: "t", Servers: []string{"a:1"}, BackoffBase: 10 * time.Second}); c.Validate() != nil || c.withDefaults().BackoffMax != 10*time.Second {
		t.Errorf("BackoffBase 10s alone: %v, max %v", c.Validate(), c.withDefaults().BackoffMax)
	}
}

func TestBackoff(t *testing.T) {
	top := func(n int64) int64 { return n - 1 } // the largest draw
	base, maxD := 50*time.Millisecond, 5*time.Second
	want := []time.Duration{0, 50, 100, 200, 400, 800, 1600, 3200, 5000, 5000}
	for f, w := range want {
		if got := backoff(base, maxD, f, top); got != w*time.Millisecond {
			t.Errorf("backoff(%d) = %v, want %v", f, got, w*time.Millisecond)
		}
	}
	if got := backoff(base, maxD, 500, top); got != maxD {
		t.Errorf("backoff(500) = %v, want the cap (no overflow)", got)
	}
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[time.Duration]bool{}
	for range 100 {
		d := backoff(base, maxD, 3, r.Int64N)
		if d < 0 || d > 200*time.Millisecond {
			t.Fatalf("backoff(3) = %v outside [0, 200ms]", d)
		}
		seen[d] = true
	}
	if len(seen) < 50 {
		t.Errorf("only %d distinct delays in 100 draws: not jittered", len(seen))
	}
}

func TestWarmUpAndPipelinedRoundTrip(t *testing.T) {
	s1, s2 := startTel(t, "127.0.0.1:0"), startTel(t, "127.0.0.1:0")
	p := newPool(t, testConfig(s1.addr, s2.addr))
	waitReady(t, p)
	if p.Live() != 4 {
		t.Fatalf("Live = %d, want 4", p.Live())
	}
	const workers, calls = 32, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				if err := reserve(context.Background(), p, uint64(w*calls+i+1)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := s1.reserves.Load() + s2.reserves.Load(); got != workers*calls {
		t.Errorf("servers saw %d reserves, want %d", got, workers*calls)
	}
	if s1.reserves.Load() == 0 || s2.reserves.Load() == 0 {
		t.Errorf("load not spread: %d / %d", s1.reserves.Load(), s2.reserves.Load())
	}
	st := p.Stats()
	if st.Live != 4 || st.InFlight != 0 || len(st.Servers) != 2 {
		t.Fatalf("stats %+v", st)
	}
	for i, ss := range st.Servers {
		if ss.Live != 2 || ss.Dials != 2 || ss.DialFailures != 0 || ss.InFlight != 0 || ss.Load.Capacity != 100 || !strings.HasPrefix(ss.ServerID, "tel-") {
			t.Errorf("server %d stats %+v", i, ss)
		}
	}
	// An error response is returned as a RemoteError and does not hurt the conn.
	_, err := p.RoundTrip(context.Background(), wire.OpTelLookup, &wire.KeyRequest{Key: 1})
	if !errors.Is(err, wire.StatusUnsupported) || p.Live() != 4 {
		t.Errorf("lookup: %v, Live %d", err, p.Live())
	}
}

// TestServerKilledAndBack: a dead server leaves the live set on the event
// itself (heartbeats are an hour apart here, so only the close can tell),
// in-flight calls fail at once, RoundTrip says ErrNoConn at once, and the
// pool recovers when the server returns.
func TestServerKilledAndBack(t *testing.T) {
	s := startTel(t, "127.0.0.1:0")
	s.hold = make(chan struct{})
	cfg := testConfig(s.addr)
	cfg.HeartbeatInterval = time.Hour
	p := newPool(t, cfg)
	waitReady(t, p)

	errc := make(chan error, 8)
	for i := range 8 {
		go func() { errc <- reserve(context.Background(), p, uint64(i+1)) }()
	}
	testsupport.WaitFor(t, "8 reserves at the server", func() bool { return s.reserves.Load() == 8 })

	start := time.Now()
	s.kill()
	for range 8 {
		if err := <-errc; !errors.Is(err, mux.ErrConnLost) {
			t.Fatalf("in-flight reserve: %v, want mux.ErrConnLost", err)
		}
	}
	testsupport.WaitFor(t, "Live() == 0", func() bool { return p.Live() == 0 })
	t.Logf("in-flight failed and Live()==0 %v after the kill", time.Since(start))

	t0 := time.Now()
	_, err := p.RoundTrip(context.Background(), wire.OpReserve, &wire.UpdateRequest{Key: 9})
	if !errors.Is(err, ErrNoConn) || mux.Sent(err) {
		t.Fatalf("RoundTrip on a dead tier: %v, want ErrNoConn", err)
	}
	t.Logf("ErrNoConn after %v", time.Since(t0))
	testsupport.WaitFor(t, "a failed redial", func() bool { return p.Stats().Servers[0].DialFailures > 0 })

	s2 := startTel(t, s.addr)
	waitReady(t, p)
	if err := reserve(context.Background(), p, 10); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	if st := p.Stats().Servers[0]; st.ConsecutiveFailures != 0 || st.Live != 2 || st.LastError == "" {
		t.Errorf("stats after recovery %+v", st)
	}
	_ = s2
}

// TestBackoffGrowsWithJitter drives the reconnect backoff with a fake clock
// and a recording random source: each failed dial arms the next one at the
// jittered delay, the ceiling doubles up to BackoffMax, and no dial happens
// before its time.
func TestBackoffGrowsWithJitter(t *testing.T) {
	clk := newFakeClock()
	var (
		mu    sync.Mutex
		ceils []int64 // the n of every rand call
		r     = rand.New(rand.NewPCG(7, 7))
	)
	randN := func(n int64) int64 {
		mu.Lock()
		defer mu.Unlock()
		ceils = append(ceils, n)
		return r.Int64N(n)
	}
	lastCeil := func() (int64, int) {
		mu.Lock()
		defer mu.Unlock()
		return ceils[len(ceils)-1], len(ceils)
	}
	refuse := errors.New("connection refused")
	var up atomic.Pointer[telServer]
	var attempts atomic.Int32
	dialer := func(ctx context.Context, network, addr string) (net.Conn, error) {
		attempts.Add(1)
		if s := up.Load(); s != nil {
			return NetDialer(ctx, network, s.addr)
		}
		return nil, refuse
	}
	cfg := Config{Tier: "nextgen", Servers: []string{"tel.invalid:7000"}, MinConns: 1,
		BackoffBase: 50 * time.Millisecond, BackoffMax: 400 * time.Millisecond, HeartbeatInterval: time.Hour}
	p := newPool(t, cfg, WithClock(clk), WithRand(randN), WithDialer(dialer))

	wantCeil := []time.Duration{50, 100, 200, 400, 400, 400}
	for i, c := range wantCeil {
		c *= time.Millisecond
		testsupport.WaitFor(t, "a failed dial", func() bool { return p.Stats().Servers[0].DialFailures == uint64(i+1) })
		st := p.Stats().Servers[0]
		delay := st.NextDial.Sub(clk.Now())
		n, calls := lastCeil()
		if calls != i+1 || n != int64(c)+1 {
			t.Fatalf("failure %d: rand called %d times, last with %d, want ceiling %v", i+1, calls, n, c)
		}
		if delay < 0 || delay > c {
			t.Fatalf("failure %d: delay %v outside [0, %v]", i+1, delay, c)
		}
		if st.ConsecutiveFailures != i+1 || !strings.Contains(st.LastError, "connection refused") {
			t.Fatalf("failure %d: stats %+v", i+1, st)
		}
		waitArmed(t, clk, delay, false)
		if delay > 0 {
			clk.Advance(delay - 1)
			if a := attempts.Load(); a != int32(i+1) {
				t.Fatalf("dialed %d times before the backoff expired, want %d", a, i+1)
			}
		}
		clk.Advance(1)
		testsupport.WaitFor(t, "the next dial", func() bool { return attempts.Load() == int32(i+2) })
	}
	// The server comes up: the next probe succeeds and resets the backoff.
	s := startTel(t, "127.0.0.1:0")
	up.Store(s)
	testsupport.WaitFor(t, "the last failure", func() bool { return p.Stats().Servers[0].DialFailures == uint64(len(wantCeil)+1) })
	delay := p.Stats().Servers[0].NextDial.Sub(clk.Now())
	waitArmed(t, clk, delay, false)
	clk.Advance(delay)
	waitReady(t, p)
	if st := p.Stats().Servers[0]; st.ConsecutiveFailures != 0 || st.Live != 1 {
		t.Errorf("after success: %+v", st)
	}
}

// TestHeartbeatTimeoutKillsSilentConn: a server that stops answering TPING
// loses its connection after HeartbeatTimeout (fake clock), and the pool
// redials it.
func TestHeartbeatTimeoutKillsSilentConn(t *testing.T) {
	clk := newFakeClock()
	s := startTel(t, "127.0.0.1:0")
	cfg := testConfig(s.addr)
	cfg.MinConns = 1
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = time.Second, 300*time.Millisecond
	p := newPool(t, cfg, WithClock(clk))
	waitReady(t, p)

	// A healthy heartbeat updates the load from the PONG.
	waitArmed(t, clk, time.Second, false)
	clk.Advance(time.Second)
	testsupport.WaitFor(t, "a PONG", func() bool { return p.Stats().Servers[0].Load.InUse == 1 })
	if p.Live() != 1 {
		t.Fatal("a healthy heartbeat dropped the conn")
	}

	s.silent.Store(true)
	waitArmed(t, clk, time.Second, false)
	clk.Advance(time.Second)
	waitArmed(t, clk, 300*time.Millisecond, true) // the TPING is out, its timeout armed
	clk.Advance(299 * time.Millisecond)
	if p.Live() != 1 {
		t.Fatal("conn killed before the heartbeat timeout")
	}
	clk.Advance(time.Millisecond)
	testsupport.WaitFor(t, "heartbeat-timeout death", func() bool {
		return strings.Contains(p.Stats().Servers[0].LastError, ErrHeartbeatTimeout.Error())
	})
	s.silent.Store(false)
	testsupport.WaitFor(t, "redial", func() bool { return s.accepted.Load() == 2 && p.Live() == 1 })
	testsupport.WaitFor(t, "the silent conn closed at the server", func() bool { return s.open() == 1 })
}

func TestRetune(t *testing.T) {
	s := startTel(t, "127.0.0.1:0")
	cfg := testConfig(s.addr)
	p := newPool(t, cfg)
	waitReady(t, p)

	cfg.MinConns = 4
	if err := p.Retune(cfg); err != nil {
		t.Fatal(err)
	}
	waitReady(t, p)
	if p.Live() != 4 {
		t.Fatalf("Live = %d after MinConns 4", p.Live())
	}
	cfg.MinConns = 1
	if err := p.Retune(cfg); err != nil {
		t.Fatal(err)
	}
	testsupport.WaitFor(t, "extras drained and closed", func() bool { return p.Live() == 1 && s.open() == 1 })

	// MaxInFlight applies to live connections.
	cfg.MaxInFlight = 1
	if err := p.Retune(cfg); err != nil {
		t.Fatal(err)
	}
	s.hold = make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- reserve(context.Background(), p, 1) }()
	testsupport.WaitFor(t, "one reserve held", func() bool { return s.reserves.Load() == 1 })
	if err := reserve(context.Background(), p, 2); !errors.Is(err, mux.ErrBusy) {
		t.Errorf("second reserve over MaxInFlight 1: %v, want mux.ErrBusy", err)
	}
	close(s.hold)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}

	fixed := cfg
	fixed.Servers = []string{s.addr, "127.0.0.1:1"}
	if err := p.Retune(fixed); !errors.Is(err, ErrRequiresNewPool) {
		t.Errorf("Retune of Servers: %v, want ErrRequiresNewPool", err)
	}
	invalid := cfg
	invalid.MinConns = -1
	if err := p.Retune(invalid); err == nil {
		t.Error("Retune accepted an invalid config")
	}
}

func TestRetuneHeartbeatInterval(t *testing.T) {
	clk := newFakeClock()
	s := startTel(t, "127.0.0.1:0")
	cfg := testConfig(s.addr)
	cfg.MinConns = 1
	p := newPool(t, cfg, WithClock(clk))
	waitReady(t, p)
	waitArmed(t, clk, time.Second, false)
	cfg.HeartbeatInterval = 7 * time.Second
	if err := p.Retune(cfg); err != nil {
		t.Fatal(err)
	}
	waitArmed(t, clk, 7*time.Second, false) // re-armed with the new interval
}

// TestMaxAgeRecycle: aged connections are replaced, the replacement dialed
// before the old one leaves, so Live never drops below MinConns.
func TestMaxAgeRecycle(t *testing.T) {
	clk := newFakeClock()
	s := startTel(t, "127.0.0.1:0")
	cfg := testConfig(s.addr)
	cfg.MaxAge, cfg.MaxAgeJitter = 10*time.Second, 4*time.Second
	// Heartbeats still go out every second of the fake clock, but their
	// timeout lies beyond the 12 s it advances: a PONG still on its way
	// in real time (a loaded machine) when the clock jumped past a 1 s
	// timeout killed a connection the test counts.
	cfg.HeartbeatTimeout = time.Minute
	half := func(n int64) int64 { return n / 2 } // jitter = 2s
	p := newPool(t, cfg, WithClock(clk), WithRand(half))
	waitReady(t, p)

	var minLive atomic.Int32
	minLive.Store(2)
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if n := int32(p.Live()); n < minLive.Load() {
				minLive.Store(n)
			}
		}
	}()

	waitArmed(t, clk, 12*time.Second, false)
	clk.Advance(11 * time.Second)
	if s.accepted.Load() != 2 {
		t.Fatal("recycled before MaxAge + jitter")
	}
	clk.Advance(time.Second)
	testsupport.WaitFor(t, "replacements up and old conns closed", func() bool {
		return s.accepted.Load() == 4 && s.open() == 2 && p.Live() == 2
	})
	close(stop)
	<-watched
	if minLive.Load() < 2 {
		t.Errorf("Live dropped to %d during recycling", minLive.Load())
	}
	if st := p.Stats().Servers[0]; st.Dials != 4 || st.LastError != "" {
		t.Errorf("stats %+v", st)
	}
}

func TestShutdownDrainsInFlight(t *testing.T) {
	s := startTel(t, "127.0.0.1:0")
	s.hold = make(chan struct{})
	p, err := New(testConfig(s.addr))
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, p)
	const n = 5
	errc := make(chan error, n)
	for i := range n {
		go func() { errc <- reserve(context.Background(), p, uint64(i+1)) }()
	}
	testsupport.WaitFor(t, "reserves held", func() bool { return s.reserves.Load() == n })

	done := make(chan error, 1)
	go func() { done <- p.Shutdown(context.Background()) }()
	testsupport.WaitFor(t, "closed", func() bool {
		_, err := p.RoundTrip(context.Background(), wire.OpTelPing, nil)
		return errors.Is(err, ErrClosed)
	})
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with calls in flight", err)
	default:
	}
	close(s.hold)
	for range n {
		if err := <-errc; err != nil {
			t.Errorf("in-flight reserve during shutdown: %v", err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if p.Live() != 0 {
		t.Errorf("Live = %d after Shutdown", p.Live())
	}
	testsupport.WaitFor(t, "server sees every conn closed", func() bool { return s.open() == 0 })
	if err := p.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if err := p.WaitReady(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("WaitReady after Shutdown: %v", err)
	}
	if err := p.Retune(testConfig(s.addr)); !errors.Is(err, ErrClosed) {
		t.Errorf("Retune after Shutdown: %v", err)
	}
}

func TestShutdownDeadlineFailsInFlight(t *testing.T) {
	s := startTel(t, "127.0.0.1:0")
	s.hold = make(chan struct{})
	defer close(s.hold)
	p, err := New(testConfig(s.addr))
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, p)
	errc := make(chan error, 1)
	go func() { errc <- reserve(context.Background(), p, 1) }()
	testsupport.WaitFor(t, "reserve held", func() bool { return s.reserves.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want DeadlineExceeded", err)
	}
	if err := <-errc; !errors.Is(err, mux.ErrConnLost) {
		t.Errorf("cut-off call: %v, want mux.ErrConnLost", err)
	}
}

func TestWaitReadyNamesMissingServers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens there now
	s := startTel(t, "127.0.0.1:0")
	p := newPool(t, testConfig(s.addr, dead))
	testsupport.WaitFor(t, "a failed dial", func() bool { return p.Stats().Servers[1].DialFailures > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err = p.WaitReady(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), dead) || strings.Contains(err.Error(), s.addr) {
		t.Fatalf("WaitReady: %v", err)
	}
	if p.Live() != 2 {
		t.Errorf("the healthy server's conns: Live = %d", p.Live())
	}
}

// TestNetpollDialer: the netpoll transport carries calls and reports a dead
// peer (docs/libraries.md N3: we read through net.Conn and close on EOF).
func TestNetpollDialer(t *testing.T) {
	s := startTel(t, "127.0.0.1:0")
	cfg := testConfig(s.addr)
	cfg.HeartbeatInterval = time.Hour
	p := newPool(t, cfg, WithDialer(NetpollDialer))
	waitReady(t, p)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if err := reserve(context.Background(), p, uint64(w*1000+i+1)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	s.kill()
	testsupport.WaitFor(t, "Live() == 0 over netpoll", func() bool { return p.Live() == 0 })
}

// TestFlappingServerBacksOff: a connection that dies right after its
// handshake counts as a failure, so a server that accepts and drops is not
// redialed in a tight loop.
func TestFlappingServerBacksOff(t *testing.T) {
	clk := newFakeClock()
	s := startTel(t, "127.0.0.1:0")
	s.flap.Store(true)
	cfg := testConfig(s.addr)
	cfg.MinConns = 1
	cfg.BackoffBase, cfg.BackoffMax = 50*time.Millisecond, time.Second
	top := func(n int64) int64 { return n - 1 }
	p := newPool(t, cfg, WithClock(clk), WithRand(top))

	for i, want := range []time.Duration{50, 100, 200} {
		want *= time.Millisecond
		waitArmed(t, clk, want, false) // backing off, not redialing
		if got := s.accepted.Load(); got != int32(i+1) {
			t.Fatalf("round %d: %d connections accepted, want %d", i, got, i+1)
		}
		st := p.Stats().Servers[0]
		if st.ConsecutiveFailures != i+1 || st.LastError == "" {
			t.Fatalf("round %d: stats %+v", i, st)
		}
		clk.Advance(want)
		testsupport.WaitFor(t, "the next dial", func() bool { return s.accepted.Load() == int32(i+2) })
	}
	// The last connection may or may not have flapped (the server reads the
	// flag after our check): either it stays, or the next backoff expires.
	s.flap.Store(false)
	testsupport.WaitFor(t, "a stable connection", func() bool {
		if tm, _ := clk.Armed(); len(tm) == 1 && tm[0] == 400*time.Millisecond {
			clk.Advance(400 * time.Millisecond)
		}
		return p.Live() == 1
	})
}
