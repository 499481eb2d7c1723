package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"switchboard/breaker"
	"switchboard/client"
	"switchboard/telsim"
	"switchboard/wire"
)

// reloadVariant returns a copy of base with one of two tunings. Variant 1
// differs from variant 0 in every kind of field a reload changes live: pool
// sizes (min_conns), timeouts (attempt_timeout, request_timeout,
// dial_timeout, heartbeat interval and timeout), breaker thresholds
// (failures, open_for), server limits, and the address of nextgen
// (sim://nextgen-b instead of sim://nextgen), which gives nextgen a new pool.
// Variant 0 keeps the defaults of those fields.
func reloadVariant(base *Config, variant int) *Config {
	c := *base
	c.Simulators = nil
	c.Tiers = nil
	nextgen := "sim://nextgen"
	minConns, attempt, failures, reqTimeout := 2, 250*time.Millisecond, uint32(5), 3*time.Second
	dial, hbEvery, hbTimeout := time.Second, time.Second, time.Second
	if variant == 1 {
		nextgen = "sim://nextgen-b"
		minConns, attempt, failures, reqTimeout = 3, 300*time.Millisecond, 7, 4*time.Second
		dial, hbEvery, hbTimeout = 800*time.Millisecond, 700*time.Millisecond, 900*time.Millisecond
	}
	c.Server.RequestTimeout = reqTimeout
	c.Server.MaxInFlight = 4096 + variant
	c.Pool.MinConns = minConns
	c.Pool.DialTimeout = dial
	c.Pool.HeartbeatInterval = hbEvery
	c.Pool.HeartbeatTimeout = hbTimeout
	c.Breaker.Failures = failures
	c.Breaker.OpenFor = 2*time.Second + time.Duration(variant)*time.Second
	for _, s := range []struct{ name, url string }{
		{"primary-large", "sim://primary-large"}, {"nextgen", nextgen}, {"backup2-large", "sim://backup2-large"},
	} {
		c.Tiers = append(c.Tiers, TierConfig{Name: s.name, Servers: []string{s.url}, AttemptTimeout: attempt})
	}
	c.applyDefaults()
	return &c
}

func reloadCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// nextgenPair is two telsim servers on loopback, outside the daemon, that
// nextgen alternates between across reloads: every reload retires one
// nextgen pool and warms a new one on the other server, and the servers'
// own connection counts show whether a retired pool left a connection open.
type nextgenPair struct {
	srv  [2]*telsim.Server
	addr [2]string // tcp://host:port
}

// startNextgenPair starts the two servers; they close at cleanup (after a
// daemon started later has stopped).
func startNextgenPair(t testing.TB) *nextgenPair {
	t.Helper()
	p := &nextgenPair{}
	for i := range p.srv {
		s, err := telsim.New(telsim.Config{Tier: "nextgen", ServerID: fmt.Sprintf("telsim-nextgen-%c", 'a'+i)})
		if err != nil {
			t.Fatal(err)
		}
		a, err := s.Start("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		p.srv[i], p.addr[i] = s, "tcp://"+a.String()
	}
	return p
}

// variant is reloadVariant with nextgen on server 0 (variant 0) or server
// 1 (variant 1) of the pair instead of an in-process simulator.
func (p *nextgenPair) variant(base *Config, v int) *Config {
	c := reloadVariant(base, v)
	c.Tiers[1].Servers = []string{p.addr[v]}
	return c
}

// errLoadBacklog is the outcome of a rateLoad request that was due while
// maxInFlight requests were outstanding: it was not sent.
var errLoadBacklog = errors.New("load generator: too many requests in flight, not sent")

// rateLoad is an open-loop load through the daemon's socket, as front ends
// produce it: allocation i is due at start + i/rate whatever the daemon
// does, is sent from its own goroutine (a slow answer never holds back a
// later send), and is released as soon as it is answered. Its latency runs
// from the due time, not the actual send, so a stall shows on every
// request due during it (no coordinated omission). At most maxInFlight
// requests are outstanding; a request due beyond that is not sent and
// counts as failed. It is safe for concurrent use; finish stops it.
type rateLoad struct {
	// Set by the caller of startRateLoad.
	c           *client.Client
	rate        float64   // allocations per second
	start       time.Time // allocation 0 is due then
	maxInFlight int
	keep        bool // record a rateSample per allocation
	// pin and nap, when set (before the first due time), make the
	// schedule precise: pin locks the scheduler to a thread set up for
	// short sleeps, nap sleeps that thread for the last shortWait of each
	// wait. Without them a Go timer wakes the scheduler up to about a
	// millisecond late, which every latency includes.
	pin func() (unpin func())
	nap func(d time.Duration)

	token string // idempotency token prefix, unique per load
	stop  chan struct{}
	done  chan struct{} // closed when the scheduler has returned
	sem   chan struct{} // one slot per outstanding request
	wg    sync.WaitGroup
	once  sync.Once

	ok, errs atomic.Int64
	mu       sync.Mutex
	firstErr error
	byTier   map[string]int
	samples  []rateSample
}

// rateSample is one allocation: when it was due, how late it was sent,
// how long after its due time its answer came, and whether it (or its
// release) failed.
type rateSample struct {
	due    time.Time
	lag    time.Duration
	lat    time.Duration
	failed bool
}

// shortWait is the part of a wait rateLoad.nap sleeps (a Go timer sleeps
// the rest, so that stop can interrupt it).
const shortWait = 2 * time.Millisecond

// startRateLoad starts l (its caller-set fields filled in) and returns it.
// Cleanup stops it if the test has not.
func startRateLoad(t testing.TB, l *rateLoad) *rateLoad {
	l.token = fmt.Sprintf("rate-%d-", l.start.UnixNano())
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	l.sem = make(chan struct{}, l.maxInFlight)
	l.byTier = map[string]int{}
	go l.schedule()
	t.Cleanup(l.finish)
	return l
}

// dueAt returns when request i is due.
func (l *rateLoad) dueAt(i int64) time.Time {
	return l.start.Add(time.Duration(float64(i) * float64(time.Second) / l.rate))
}

// schedule sends every request when it is due until stop; when it falls
// behind, the requests already due go out at once and keep their due time.
func (l *rateLoad) schedule() {
	defer close(l.done)
	if l.pin != nil {
		defer l.pin()()
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for i := int64(0); ; i++ {
		due := l.dueAt(i)
		for d := time.Until(due); d > 0; d = time.Until(due) {
			if l.nap != nil && d <= shortWait {
				l.nap(d)
				continue
			}
			if l.nap != nil {
				d -= shortWait / 2
			}
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-l.stop:
				return
			}
		}
		select {
		case <-l.stop:
			return
		default:
		}
		select {
		case l.sem <- struct{}{}:
		default:
			l.note(due, 0, time.Since(due), "", errLoadBacklog)
			continue
		}
		l.wg.Add(1)
		go l.one(i, due)
	}
}

// one allocates request i and releases what it got.
func (l *rateLoad) one(i int64, due time.Time) {
	defer l.wg.Done()
	defer func() { <-l.sem }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lag := time.Since(due)
	a, err := l.c.Allocate(ctx, &wire.AllocateRequest{Token: strconv.AppendInt([]byte(l.token), i, 10), Spec: spec("steady rate")})
	lat := time.Since(due)
	if err == nil {
		if rerr := l.c.Release(ctx, a.Key); rerr != nil {
			err = fmt.Errorf("release %d on %s: %w", a.Key, a.Tier, rerr)
		}
	}
	l.note(due, lag, lat, a.Tier, err)
}

func (l *rateLoad) note(due time.Time, lag, lat time.Duration, tier string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keep {
		l.samples = append(l.samples, rateSample{due: due, lag: lag, lat: lat, failed: err != nil})
	}
	if err != nil {
		l.errs.Add(1)
		if l.firstErr == nil {
			l.firstErr = err
		}
		return
	}
	l.ok.Add(1)
	l.byTier[tier]++
}

// finish stops sending and waits for every request sent (and its release).
// It is idempotent.
func (l *rateLoad) finish() {
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		l.wg.Wait()
	})
}

// TestReloadUnderLoad reloads 50 times, alternating two configurations that
// differ in pool sizes, timeouts, breaker thresholds and nextgen's server
// (two telsim servers outside the daemon), while 32 callers over 4
// connections allocate and release without pause, so requests are in
// flight at every reload. No request may fail; every server must end with
// the connections its pool keeps (min_conns; none on the retired nextgen
// server) and no reservation; goleak (TestMain) checks that every retired
// pool stopped.
//
// The load is closed (a fixed number of callers), not a fixed rate: the
// verdict must not depend on what the machine can carry. On a loaded
// machine (other builds, the race detector) an open-loop 1000/s outran the
// daemon with no reload at all, and was shed or timed out as any overload
// is (OVERLOADED on heavy connections, attempt deadlines): that says
// nothing about reloads. Reloads are paced by the load's progress, not by
// a clock, so each one meets requests in flight however slow the machine.
// The latency of reloads under an open-loop load is BenchmarkReloadP99's.
func TestReloadUnderLoad(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { testReloadUnderLoad(t, tr) })
	}
}

// steadyLoad is callers allocating and releasing in a loop over one
// client, each with one request outstanding at a time, until finish.
type steadyLoad struct {
	c        *client.Client
	deadline time.Duration // of each request and of its release
	token    string
	stop     chan struct{}
	wg       sync.WaitGroup
	once     sync.Once

	ok, errs atomic.Int64
	mu       sync.Mutex
	firstErr error
	byTier   map[string]int
}

// startSteadyLoad starts callers goroutines on c; cleanup stops them if
// the test has not.
func startSteadyLoad(t testing.TB, c *client.Client, callers int, deadline time.Duration) *steadyLoad {
	l := &steadyLoad{c: c, deadline: deadline, token: fmt.Sprintf("steady-%d-", time.Now().UnixNano()), stop: make(chan struct{}), byTier: map[string]int{}}
	for w := 0; w < callers; w++ {
		l.wg.Add(1)
		go l.call(w)
	}
	t.Cleanup(l.finish)
	return l
}

func (l *steadyLoad) call(w int) {
	defer l.wg.Done()
	tok := strconv.AppendInt([]byte(l.token), int64(w), 10)
	tok = append(tok, '-')
	for i := int64(0); ; i++ {
		select {
		case <-l.stop:
			return
		default:
		}
		// The daemon's own deadline for a request (server.request_timeout,
		// the longest of the two variants): an answer held past it, as by
		// a reload holding the request path, fails the test.
		ctx, cancel := context.WithTimeout(context.Background(), l.deadline)
		a, err := l.c.Allocate(ctx, &wire.AllocateRequest{Token: strconv.AppendInt(tok, i, 10), Spec: spec("steady load")})
		if err == nil {
			if rerr := l.c.Release(ctx, a.Key); rerr != nil {
				err = fmt.Errorf("release %d on %s: %w", a.Key, a.Tier, rerr)
			}
		}
		cancel()
		l.mu.Lock()
		if err != nil {
			l.errs.Add(1)
			if l.firstErr == nil {
				l.firstErr = err
			}
		} else {
			l.ok.Add(1)
			l.byTier[a.Tier]++
		}
		l.mu.Unlock()
	}
}

// awaitProgress waits until n more allocations than after have succeeded
// (or a request failed, or ctx ends); it returns the count then.
func (l *steadyLoad) awaitProgress(ctx context.Context, after, n int64) (int64, error) {
	for {
		ok := l.ok.Load()
		if ok >= after+n || l.errs.Load() > 0 {
			return ok, nil
		}
		select {
		case <-ctx.Done():
			return ok, fmt.Errorf("%d allocations after %d, want %d more: %w", ok, after, n, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// finish stops the callers and waits for them (and their releases). It is
// idempotent.
func (l *steadyLoad) finish() {
	l.once.Do(func() {
		close(l.stop)
		l.wg.Wait()
	})
}

func testReloadUnderLoad(t *testing.T, tr string) {
	const (
		callers = 32 // within admission's lowest limit: never shed
		reloads = 50
		between = 20 // allocations completed between two reloads, and before the first and after the last: 5 calm ones
		calm    = 5 * between
	)
	ng := startNextgenPair(t)
	var base *Config
	h := startDaemon(t, func(c *Config) {
		c.Server.Transport = tr
		// Keys for the whole run leased at start: a slow fsync on a busy
		// machine must not fail a request here.
		c.Keys.BlockSize = 8192
		base = ng.variant(c, 0)
		*c = *base
	})
	// A whole run on a starved machine may take long; a wedged reload or
	// load still ends the test.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, h.sock, client.WithConns(4))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() }) // after the load's cleanup, which runs first
	start := time.Now()
	l := startSteadyLoad(t, c, callers, max(base.Server.RequestTimeout, ng.variant(base, 1).Server.RequestTimeout))

	mark, err := l.awaitProgress(ctx, 0, calm)
	for i := 0; i < reloads && err == nil; i++ {
		if err = h.d.Reload(ctx, ng.variant(base, (i+1)%2)); err != nil {
			err = fmt.Errorf("reload %d: %w", i, err)
			break
		}
		n := int64(between)
		if i == reloads-1 {
			n = calm
		}
		mark, err = l.awaitProgress(ctx, mark, n)
	}
	l.finish()
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if n := l.errs.Load(); n != 0 {
		t.Fatalf("%d of %d requests failed during reloads; first: %v", n, n+l.ok.Load(), l.firstErr)
	}
	if v := h.d.version.Load(); v != reloads+1 {
		t.Fatalf("config version %d, want %d", v, reloads+1)
	}
	// The last reload applied variant 0: nextgen is back on server 0, every
	// tier is back to min_conns connections (no leak from 25 pool
	// replacements and 50 retunes), and no reservation is left anywhere.
	final := h.d.Config()
	if final.Tiers[1].Servers[0] != ng.addr[0] || final.Pool.MinConns != 2 || final.Tiers[0].Pool.HeartbeatInterval != time.Second {
		t.Fatalf("final config %+v", final.Tiers[1])
	}
	servers := map[string]*telsim.Server{
		"primary-large": h.d.Simulator("primary-large"), "backup2-large": h.d.Simulator("backup2-large"),
		"nextgen server 0": ng.srv[0], "nextgen server 1 (retired)": ng.srv[1],
	}
	for name, srv := range servers {
		want := int64(2)
		if srv == ng.srv[1] {
			want = 0
		}
		waitFor(t, fmt.Sprintf("%d connections on %s", want, name), 10*time.Second, func() bool { return srv.Stats().Conns == want })
		waitFor(t, "no reservation left on "+name, 10*time.Second, func() bool { return srv.Stats().Reservations == 0 })
	}
	// Server 1 got a new pool (warmed before it took over) at every other
	// reload: proof that the pools were really replaced.
	if n := ng.srv[1].Stats().ConnsTotal; n < reloads/2 {
		t.Fatalf("nextgen server 1 accepted %d connections for %d pools", n, reloads/2)
	}
	if n := h.d.rt.Stats().Orphans; n != 0 {
		t.Fatalf("%d releases still pending", n)
	}
	st, err := h.d.Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range st.Tiers {
		if ts.Live != 2 || ts.Breaker != "closed" {
			t.Fatalf("tier after reloads %+v", ts)
		}
	}
	t.Logf("%d allocations by %d callers in %v with %d reloads, by tier %v", l.ok.Load(), callers, elapsed.Round(time.Millisecond), reloads, l.byTier)
}

func TestReloadRefusesRestartFields(t *testing.T) {
	h := startDaemon(t, nil)
	ctx := reloadCtx(t)
	before := h.d.Config()
	for _, c := range []struct {
		field  string
		mutate func(*Config)
	}{
		{"socket", func(c *Config) { c.Socket += ".other" }},
		{"data_dir", func(c *Config) { c.DataDir += "-other" }},
		{"keys.digits", func(c *Config) { c.Keys.Digits = 12 }},
		{"keys.secret", func(c *Config) { c.Keys.Secret = strings.Repeat("ab", 16) }},
		{"server.transport", func(c *Config) { c.Server.Transport = "netpoll" }},
	} {
		nc := reloadVariant(before, 1) // with other, allowed changes
		c.mutate(nc)
		err := h.d.Reload(ctx, nc)
		if !errors.Is(err, ErrRequiresRestart) || !strings.Contains(err.Error(), c.field) {
			t.Fatalf("changing %s: %v, want requires restart naming it", c.field, err)
		}
		if strings.Contains(err.Error(), strings.Repeat("ab", 16)) {
			t.Fatalf("error reveals the secret: %v", err)
		}
	}
	if h.d.Config() != before || h.d.version.Load() != 1 || h.d.Simulator("nextgen-b") != nil {
		t.Fatal("a refused reload changed something")
	}
	if o := h.d.LastReload(); o == nil || o.Result != reloadRequiresRestart {
		t.Fatalf("last reload %+v", o)
	}
}

func TestReloadRejectsInvalidConfig(t *testing.T) {
	h := startDaemon(t, nil)
	nc := reloadVariant(h.d.Config(), 1)
	nc.Tiers[0].Pool.MinConns = 1000
	err := h.d.Reload(reloadCtx(t), nc)
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "min_conns") {
		t.Fatalf("reload of an invalid config: %v", err)
	}
	if h.d.version.Load() != 1 || h.d.Simulator("nextgen-b") != nil {
		t.Fatal("an invalid reload changed something")
	}
}

// A tier moved to a server that does not answer: the reload fails after
// server.ready_timeout, and the old pool keeps serving.
func TestReloadFailsWhenNewPoolIsNotWarm(t *testing.T) {
	h := startDaemon(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens there now
	nc := reloadVariant(h.d.Config(), 0)
	nc.Server.ReadyTimeout = 200 * time.Millisecond
	nc.Tiers[0].Servers = []string{"tcp://" + dead}
	nc.Tiers[0].Pool.DialTimeout = 50 * time.Millisecond
	err = h.d.Reload(reloadCtx(t), nc)
	if !errors.Is(err, ErrNotWarm) {
		t.Fatalf("reload to a dead server: %v, want ErrNotWarm", err)
	}
	if h.d.version.Load() != 1 {
		t.Fatal("failed reload changed the version")
	}
	a, err := h.c.Allocate(ctxT(t), &wire.AllocateRequest{Spec: spec("after failed reload")})
	if err != nil || a.Tier != "primary-large" {
		t.Fatalf("allocation after a failed reload: %+v %v", a, err)
	}
}

func TestOverridesSurviveReloadAndDrainStopsAllocations(t *testing.T) {
	h := startDaemon(t, nil)
	ctx := reloadCtx(t)
	if err := h.d.Drain("primary-large", true); err != nil {
		t.Fatal(err)
	}
	if err := h.d.SetBreaker("nextgen", breaker.ForceOpen); err != nil {
		t.Fatal(err)
	}
	if err := h.d.Drain("nope", true); !errors.Is(err, ErrUnknownTier) {
		t.Fatalf("drain of an unknown tier: %v", err)
	}
	// Both the kept tier (primary) and the replaced one (nextgen moves to
	// nextgen-b) keep their overrides.
	if err := h.d.Reload(ctx, reloadVariant(h.d.Config(), 1)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		a, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("drained")})
		if err != nil {
			t.Fatal(err)
		}
		if a.Tier != "backup2-large" {
			t.Fatalf("allocation served by %s with primary drained and nextgen forced open", a.Tier)
		}
	}
	st, _ := h.d.Status()
	if !st.Tiers[0].Drained || st.Tiers[1].Override != "open" || st.Tiers[0].Available || st.Tiers[1].Available {
		t.Fatalf("status after reload %+v", st.Tiers)
	}
	if err := h.d.Drain("primary-large", false); err != nil {
		t.Fatal(err)
	}
	a, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("undrained")})
	if err != nil || a.Tier != "primary-large" {
		t.Fatalf("after undrain: %+v %v", a, err)
	}
}

func TestReloadChangesLogLevelAndLimits(t *testing.T) {
	lvl := zap.NewAtomicLevelAt(zap.InfoLevel)
	h := startDaemon(t, nil, WithLogger(zaptest.NewLogger(t, zaptest.Level(lvl))), WithLogLevel(lvl))
	nc := reloadVariant(h.d.Config(), 1)
	nc.Log.Level = "warn"
	if err := h.d.Reload(reloadCtx(t), nc); err != nil {
		t.Fatal(err)
	}
	if lvl.Level() != zap.WarnLevel {
		t.Fatalf("level %v after reload, want warn", lvl.Level())
	}
	if l := h.d.srv.Limits(); l.MaxInFlight != 4097 || l.RequestTimeout != 4*time.Second {
		t.Fatalf("server limits after reload %+v", l)
	}
	if b := tierByName(h, "primary-large").Breaker.Settings(); b.Failures != 7 {
		t.Fatalf("breaker settings after reload %+v", b)
	}
}

func TestReloadFromSource(t *testing.T) {
	var calls int
	var src func() (*Config, error)
	h := startDaemon(t, nil, WithConfigSource(func() (*Config, error) { calls++; return src() }))
	src = func() (*Config, error) { return nil, fmt.Errorf("%w: line 3: bad", ErrConfig) }
	if err := h.d.ReloadFromSource(reloadCtx(t)); !errors.Is(err, ErrConfig) {
		t.Fatalf("reload from a failing source: %v", err)
	}
	if o := h.d.LastReload(); o == nil || o.Result != reloadInvalid || !strings.Contains(o.Error, "line 3") {
		t.Fatalf("last reload %+v", o)
	}
	base := h.d.Config()
	src = func() (*Config, error) { return reloadVariant(base, 1), nil }
	if err := h.d.ReloadFromSource(reloadCtx(t)); err != nil {
		t.Fatal(err)
	}
	if calls != 2 || h.d.version.Load() != 2 || h.d.LastReload().Result != reloadOK {
		t.Fatalf("calls %d version %d last %+v", calls, h.d.version.Load(), h.d.LastReload())
	}
}

func TestReloadAfterStopIsRefused(t *testing.T) {
	cfg, err := DefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, WithSimHost(testSimHost(t)))
	if err != nil {
		t.Fatal(err)
	}
	close(d.stopped) // as Run does when it returns
	if err := d.Reload(context.Background(), cfg); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("reload of a stopped daemon: %v", err)
	}
	if _, err := d.Status(); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("status of a stopped daemon: %v", err)
	}
}

// TestReloadReplacesPoolUnderLoad sends every allocation to nextgen (primary
// drained: the override must survive 50 reloads) while each reload gives
// nextgen a new pool (its server address alternates between two spellings
// of one telsim's address, so sessions stay reachable): requests that hold
// the old tier order finish on the old pool before it closes, none fails,
// and the telsim's connection count ends at min_conns.
func TestReloadReplacesPoolUnderLoad(t *testing.T) {
	ts, err := telsim.New(telsim.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	addr, err := ts.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ts.Close() })
	port := addr.(*net.TCPAddr).Port
	variant := func(base *Config, v int) *Config {
		c := reloadVariant(base, v)
		c.Tiers[1].Servers = []string{fmt.Sprintf("tcp://127.0.0.1:%d", port)}
		if v == 1 {
			c.Tiers[1].Servers = []string{fmt.Sprintf("tcp://localhost:%d", port)}
		}
		return c
	}
	var base *Config
	h := startDaemon(t, func(c *Config) {
		base = variant(c, 0)
		*c = *base
	})
	if err := h.d.Drain("primary-large", true); err != nil {
		t.Fatal(err)
	}
	ctx := reloadCtx(t)
	stop := make(chan struct{})
	r := h.load(ctx, 8, stop)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < 50; i++ {
		<-tick.C
		if err := h.d.Reload(ctx, variant(base, (i+1)%2)); err != nil {
			close(stop)
			r.wait()
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	close(stop)
	r.wait()
	if n := r.errs.Load(); n != 0 {
		t.Fatalf("%d requests failed during reloads; first: %v", n, r.firstErr)
	}
	// None failed over to backup2-large: no request met a closed pool.
	if r.byTier["nextgen"] == 0 || len(r.byTier) != 1 {
		t.Fatalf("allocations by tier %v: want all on nextgen", r.byTier)
	}
	waitFor(t, "2 connections on the nextgen telsim", 10*time.Second, func() bool { return ts.Stats().Conns == 2 })
	waitFor(t, "no reservation left on nextgen", 10*time.Second, func() bool { return ts.Stats().Reservations == 0 })
	t.Logf("%d allocations on nextgen during 50 pool replacements", r.byTier["nextgen"])
}
