package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"switchboard/breaker"
	"switchboard/telsim"
	"switchboard/wire"
)

// reloadVariant returns a copy of base with one of two tunings: variant 1
// changes pool sizes, timeouts, breaker thresholds, server limits and the
// address of nextgen (sim://nextgen-b instead of sim://nextgen).
func reloadVariant(base *Config, variant int) *Config {
	c := *base
	c.Simulators = nil
	c.Tiers = nil
	nextgen := "sim://nextgen"
	minConns, attempt, failures, reqTimeout := 2, 250*time.Millisecond, uint32(5), 3*time.Second
	if variant == 1 {
		nextgen = "sim://nextgen-b"
		minConns, attempt, failures, reqTimeout = 3, 300*time.Millisecond, 7, 4*time.Second
	}
	c.Server.RequestTimeout = reqTimeout
	c.Server.MaxInFlight = 4096 + variant
	c.Pool.MinConns = minConns
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

func reloadCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestReloadUnderLoad reloads 50 times, alternating two configurations,
// while 8 clients allocate and release through the real socket: no request
// may fail, no connection or reservation may leak, and goleak (TestMain)
// checks that every retired pool and simulator stopped.
func TestReloadUnderLoad(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { testReloadUnderLoad(t, tr) })
	}
}

func testReloadUnderLoad(t *testing.T, tr string) {
	var base *Config
	h := startDaemon(t, func(c *Config) {
		c.Server.Transport = tr
		base = reloadVariant(c, 0)
		*c = *base
	})
	ctx := reloadCtx(t)
	stop := make(chan struct{})
	r := h.load(ctx, 8, stop)

	const reloads = 50
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < reloads; i++ {
		<-tick.C
		if err := h.d.Reload(ctx, reloadVariant(base, (i+1)%2)); err != nil {
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
	if r.ok.Load() == 0 {
		t.Fatal("no allocation succeeded")
	}
	if v := h.d.version.Load(); v != reloads+1 {
		t.Fatalf("config version %d, want %d", v, reloads+1)
	}
	// The last reload applied variant 0: nextgen-b is gone, every tier is
	// back to min_conns connections (no leak from 25 pool replacements).
	final := h.d.Config()
	if final.Tiers[1].Servers[0] != "sim://nextgen" || final.Pool.MinConns != 2 {
		t.Fatalf("final config %+v", final.Tiers[1])
	}
	if h.d.Simulator("nextgen-b") != nil {
		t.Fatal("simulator nextgen-b still running after the tier moved back")
	}
	for _, n := range []string{"primary-large", "nextgen", "backup2-large"} {
		sim := h.d.Simulator(n)
		waitFor(t, "2 connections on "+n, 10*time.Second, func() bool { return sim.Stats().Conns == 2 })
		waitFor(t, "no reservation left on "+n, 10*time.Second, func() bool { return sim.Stats().Reservations == 0 })
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
	t.Logf("%d allocations during %d reloads, by tier %v", r.ok.Load(), reloads, r.byTier)
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
	if l := h.d.srv.lim.Load(); l.maxInFlight != 4097 || l.requestTimeout != 4*time.Second {
		t.Fatalf("server limits after reload %+v", l)
	}
	if b := tierByName(h, "primary-large").br.Settings(); b.Failures != 7 {
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
	d, err := New(cfg)
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
