package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"switchboard/breaker"
	"switchboard/frontend"
	"switchboard/keygen"
	"switchboard/pool"
	"switchboard/route"
)

// Daemon is one switchboard daemon. Create it with New and run it with Run;
// Run returns when its context ends and the shutdown is complete. Its methods
// are safe for concurrent use.
type Daemon struct {
	cfg    atomic.Pointer[Config]
	log    *zap.Logger
	level  *zap.AtomicLevel // set by WithLogLevel; reload changes it
	source func() (*Config, error)
	now    func() time.Time
	ready  chan struct{}
	env    func(string) string // os.Getenv; systemd's variables

	simHost  SimHost  // WithSimHost; nil: no simulators are hosted
	resolver Resolver // WithResolver; nil: the SimHost resolves

	keys *keygen.Generator
	// keysOverride, when set by a test, replaces keys on the request path.
	keysOverride route.KeySource
	store        *keyStore
	rt           *route.Router
	srv          *frontend.Server
	m            *metrics
	admin        *adminServer
	msrv         *metricsServer
	notify       *notifier

	up       atomic.Bool        // rt and srv are set: Run is serving
	reloads  chan reloadRequest // served by Run's reloader goroutine
	stopped  chan struct{}      // closed when Run returns
	version  atomic.Uint64      // config generation: 1 at start, +1 per reload
	loadedAt atomic.Int64       // Unix ns of the config in force
	last     atomic.Pointer[ReloadOutcome]

	started time.Time
}

// Option configures a Daemon.
type Option func(*Daemon)

// WithLogger sets the logger (default: no logging).
func WithLogger(l *zap.Logger) Option { return func(d *Daemon) { d.log = l } }

// WithLogLevel hands the daemon the level of its logger (the AtomicLevel
// NewLogger returns): a reload sets it from log.level, and the admin socket
// serves it at /log/level. Default: none, log.level changes are ignored.
func WithLogLevel(l zap.AtomicLevel) Option { return func(d *Daemon) { d.level = &l } }

// WithConfigSource sets where ReloadFromSource (SIGHUP, sbctl reload) reads
// the new configuration: cmd/switchboard re-reads its -config file and
// applies its flag overrides. Default: none, ReloadFromSource fails with
// ErrNoSource.
func WithConfigSource(load func() (*Config, error)) Option {
	return func(d *Daemon) { d.source = load }
}

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(d *Daemon) { d.now = now } }

// withEnv replaces os.Getenv for systemd's variables (tests).
func withEnv(getenv func(string) string) Option { return func(d *Daemon) { d.env = getenv } }

// New checks cfg and returns a daemon ready to Run. It starts nothing.
func New(cfg *Config, opts ...Option) (*Daemon, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: nil config", ErrConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	d := &Daemon{log: zap.NewNop(), now: time.Now, ready: make(chan struct{}), env: os.Getenv,
		reloads: make(chan reloadRequest), stopped: make(chan struct{})}
	for _, o := range opts {
		o(d)
	}
	c := *cfg
	d.cfg.Store(&c)
	d.m = newMetrics(d)
	return d, nil
}

// Ready is closed once the pools are warm and the socket accepts requests.
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

// Config returns the configuration in force.
func (d *Daemon) Config() *Config { return d.cfg.Load() }

// Registry returns the daemon's Prometheus registry (what -metrics-addr
// serves), for embedding its metrics elsewhere.
func (d *Daemon) Registry() *prometheus.Registry { return d.m.reg }

// running reports whether Run is serving (rt and srv usable).
func (d *Daemon) running() (*Daemon, bool) { return d, d.up.Load() }

// Run starts every part, serves until ctx ends, then shuts down gracefully:
// it stops accepting, answers the requests in flight (bounded by
// server.shutdown_timeout), closes the pools and the key generator. It
// returns nil after a clean shutdown. Run may be called once. The
// simulators of a SimHost are the host's: its creator closes it after Run
// returns.
func (d *Daemon) Run(ctx context.Context) (err error) {
	defer close(d.stopped)
	cfg := d.cfg.Load()
	d.started = d.now()
	d.notify = newNotifier(d.log.Named("systemd"), d.env)
	var c closers
	defer func() {
		c.run()
		d.notify.close()
	}()
	tiers, err := d.build(ctx, cfg, &c)
	if err != nil {
		return err
	}
	if err := d.open(cfg, &c); err != nil {
		return err
	}
	return d.serve(ctx, cfg, len(tiers))
}

// closers are what Run undoes on return, last opened first.
type closers []func()

func (c *closers) add(f func()) { *c = append(*c, f) }

func (c closers) run() {
	for i := len(c) - 1; i >= 0; i-- {
		c[i]()
	}
}

// build starts everything the request path needs, in dependency order: the
// simulators of sim:// tiers (a plan of the SimHost, committed when build
// succeeds and aborted when it fails), the key generator, the tiers
// (warmed), and the router with its orphan journal and in-flight table
// (allocations in flight when the previous run ended are settled before
// serving: route/inflight.go). What it opened is added to c.
func (d *Daemon) build(ctx context.Context, cfg *Config, c *closers) (_ []*tier, err error) {
	sims, err := d.prepareSims(cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			sims.Abort()
			return
		}
		sims.Commit()
	}()
	d.warnSimulated(cfg)

	if err := d.openKeys(cfg); err != nil {
		return nil, err
	}
	c.add(func() {
		d.keys.Close()
		d.store.Close()
	})

	built, err := d.buildTiers(cfg, nil)
	if err != nil {
		return nil, err
	}
	tiers := built.tiers
	d.m.wireFailovers(tiers)
	d.warm(ctx, cfg, tiers)

	var keys route.KeySource = d.keys
	if d.keysOverride != nil {
		keys = d.keysOverride
	}
	rt := route.New(d.log, keys, cfg.Cache.SizeMB, cfg.Cache.TokenTTL, d.now)
	c.add(rt.Close)
	rt.Swap(tiers)
	// The pools of the tier order in force at shutdown (a reload replaces
	// them).
	c.add(func() { closeTiers(rt.Current().Tiers, d.cfg.Load().Server.ShutdownTimeout) })
	closeOrphans, err := rt.OpenOrphans(cfg.DataDir, 500*time.Millisecond)
	if err != nil {
		return nil, err
	}
	c.add(closeOrphans)
	closeIntents, err := rt.OpenInflight(filepath.Join(cfg.DataDir, inflightName), inflightSlots(cfg), cfg.Cache.TokenTTL)
	if err != nil {
		return nil, err
	}
	c.add(closeIntents)
	d.rt = rt
	return tiers, nil
}

// open opens the sockets: the front end (not yet serving), the admin
// socket and the metrics listener. On an error the front end is shut down;
// the rest is in c.
func (d *Daemon) open(cfg *Config, c *closers) error {
	srv, err := frontend.New(d.log.Named("server"), handler{d.rt}, d.rt, d.m, frontendConfig(cfg.Server), cfg.Socket, d.now)
	if err != nil {
		return fmt.Errorf("front-end socket %s: %w", cfg.Socket, err)
	}
	d.srv = srv
	d.version.Store(1)
	d.loadedAt.Store(d.now().UnixNano())
	d.up.Store(true)

	if cfg.Admin.Socket != "" {
		a, err := startAdmin(d.log.Named("admin"), d, cfg.Admin.Socket)
		if err != nil {
			srv.Shutdown(context.Background())
			return fmt.Errorf("admin socket %s: %w", cfg.Admin.Socket, err)
		}
		d.admin = a
		c.add(a.shutdown)
	}
	if cfg.Metrics.Addr != "" {
		ms, err := startMetricsServer(d.log.Named("metrics"), cfg.Metrics.Addr, d.m.reg)
		if err != nil {
			srv.Shutdown(context.Background())
			return err
		}
		d.msrv = ms
		c.add(ms.shutdown)
	}
	return nil
}

// serve serves until ctx ends (then drains, within
// server.shutdown_timeout) or the front-end server fails, and owns the
// loop's goroutines: the server's, the reloader and the watchdog's ticker.
func (d *Daemon) serve(ctx context.Context, cfg *Config, tiers int) error {
	srv := d.srv
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve() }()
	close(d.ready)
	d.notify.send("READY=1\nSTATUS=serving")
	d.log.Info("switchboard ready",
		zap.String("socket", cfg.Socket),
		zap.String("admin_socket", cfg.Admin.Socket),
		zap.String("metrics_addr", cfg.Metrics.Addr),
		zap.Int("tiers", tiers),
		zap.Duration("startup", d.now().Sub(d.started)))

	var watchdog <-chan time.Time
	if every := d.notify.watchdogInterval(); every > 0 {
		tk := time.NewTicker(every)
		defer tk.Stop()
		watchdog = tk.C
		d.notify.send("WATCHDOG=1")
	}
	stopReloader := d.startReloader(ctx)
	for {
		select {
		case <-ctx.Done():
			stopReloader()
			d.drain(srv)
			<-serveErr
			d.log.Info("switchboard stopped")
			return nil
		case err := <-serveErr:
			stopReloader()
			srv.Shutdown(context.Background())
			return fmt.Errorf("front-end server stopped: %w", err)
		case <-watchdog:
			d.notify.send("WATCHDOG=1")
		}
	}
}

// startReloader runs reloads one at a time on a goroutine of its own, so
// that a reload waiting for new pools to warm or old ones to drain
// (seconds, bounded by the server timeouts) never holds back the watchdog
// pings of serve's loop. The returned func stops it and waits for it; it
// ends with Run, before anything is closed.
func (d *Daemon) startReloader(ctx context.Context) (stop func()) {
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-rctx.Done():
				return
			case req := <-d.reloads:
				req.reply <- d.reload(rctx, req.cfg)
			}
		}
	}()
	return func() {
		rcancel()
		<-done
	}
}

// drain shuts the front end down, letting in-flight requests finish within
// server.shutdown_timeout.
func (d *Daemon) drain(srv *frontend.Server) {
	timeout := d.cfg.Load().Server.ShutdownTimeout
	d.notify.send("STOPPING=1\nSTATUS=draining in-flight requests")
	d.log.Info("shutting down: draining in-flight requests", zap.Duration("timeout", timeout))
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		d.log.Warn("shutdown drain incomplete", zap.Error(err))
	}
}

// openKeys attaches to the key space in its store (keys.store). It never creates one
// (InitKeys does): where there is none it fails with an error wrapping
// keygen.ErrStateMissing.
func (d *Daemon) openKeys(cfg *Config) error {
	g, store, err := openKeys(cfg, d.log.Named("keygen"))
	if err != nil {
		return err
	}
	d.store, d.keys = store, g
	return nil
}

func poolConfig(tierName, instance string, addrs []string, p PoolConfig) pool.Config {
	pc := pool.DefaultConfig()
	pc.Tier = tierName
	pc.Client = instance
	pc.Servers = addrs
	pc.MinConns = p.MinConns
	pc.MaxInFlight = p.MaxInFlight
	pc.DialTimeout = p.DialTimeout
	pc.HeartbeatInterval = p.HeartbeatInterval
	pc.HeartbeatTimeout = p.HeartbeatTimeout
	pc.BackoffBase = p.BackoffBase
	pc.BackoffMax = p.BackoffMax
	pc.MaxAge = p.MaxAge
	pc.MaxAgeJitter = p.MaxAge / 10
	return pc
}

// tierBuild is a tier order built for a configuration by buildTiers.
type tierBuild struct {
	tiers   []*tier  // in the configuration's order
	fresh   []*tier  // those with a new pool: to warm; abort closes them
	retunes []func() // to run at commit: kept pools and breakers take the new settings
}

// abort closes the pools the build opened.
func (b *tierBuild) abort() { closeTiers(b.fresh, time.Second) }

// buildTiers builds cfg's tier order: at start (cur nil) and at each reload
// (cur is the order in force). A tier of cur with the same name keeps its
// breaker (and operator override), drain switch and metric children; it also
// keeps its pool when its servers resolve to the same addresses (retuned at
// commit), else it gets a fresh pool, not yet warm. On error every fresh pool
// is closed and nothing of cur changed.
func (d *Daemon) buildTiers(cfg *Config, cur []*tier) (*tierBuild, error) {
	byName := make(map[string]*tier, len(cur))
	for _, t := range cur {
		byName[t.Name] = t
	}
	b := &tierBuild{tiers: make([]*tier, 0, len(cfg.Tiers))}
	for i, tc := range cfg.Tiers {
		t, err := d.buildTier(cfg, i, byName[tc.Name], b)
		if err != nil {
			b.abort()
			return nil, err
		}
		b.tiers = append(b.tiers, t)
	}
	return b, nil
}

// buildTier builds the tier cfg.Tiers[i] for buildTiers, from o (the tier of
// that name in force, or nil), adding to b's fresh pools and retunes.
func (d *Daemon) buildTier(cfg *Config, i int, o *tier, b *tierBuild) (*tier, error) {
	tc := cfg.Tiers[i]
	addrs, err := d.resolve(tc.Servers)
	if err != nil {
		return nil, fmt.Errorf("tier %s: %w", tc.Name, err)
	}
	pc := poolConfig(tc.Name, cfg.Instance, addrs, tc.Pool)
	if err := pc.Validate(); err != nil {
		return nil, fmt.Errorf("%w: tier %s: %w", ErrConfig, tc.Name, err)
	}
	t := &tier{Name: tc.Name, NameB: []byte(tc.Name), Pos: i, Addrs: addrs, Attempt: tc.AttemptTimeout}
	if o != nil && slices.Equal(o.Addrs, addrs) {
		t.Pool = o.Pool
		b.retunes = append(b.retunes, func() {
			if err := t.Pool.Retune(pc); err != nil {
				d.log.Error("pool retune refused", zap.String("tier", t.Name), zap.Error(err))
			}
		})
	} else {
		p, err := pool.New(pc, pool.WithLogger(d.log.Named("pool")))
		if err != nil {
			return nil, fmt.Errorf("tier %s: %w", tc.Name, err)
		}
		t.Pool = p
		b.fresh = append(b.fresh, t)
	}
	if o == nil {
		t.Breaker, t.Ctl, t.Obs = d.newBreaker(tc), &route.TierCtl{}, d.m.tier(tc.Name)
		return t, nil
	}
	// The breaker (with its override), the drain switch and the metric
	// children belong to the tier name.
	t.Breaker, t.Ctl, t.Obs = o.Breaker, o.Ctl, o.Obs
	if s := tc.Breaker.settings(); t.Pool != o.Pool || o.Breaker.Settings() != s {
		br := t.Breaker
		b.retunes = append(b.retunes, func() { br.Retune(s) })
	}
	return t, nil
}

func (d *Daemon) newBreaker(tc TierConfig) *breaker.Breaker {
	blog := d.log.Named("breaker")
	return breaker.New(tc.Name, tc.Breaker.settings(), breaker.WithOnStateChange(func(name string, from, to breaker.State) {
		// Runs under gobreaker's lock: log only (zap does not call back).
		blog.Warn("breaker state change", zap.String("tier", name), zap.Stringer("from", from), zap.Stringer("to", to))
	}))
}

// warm waits, bounded by server.ready_timeout, for every pool to be warm. A
// tier that is not warm in time is logged and served as it comes up: the
// daemon serves as long as any tier can.
func (d *Daemon) warm(ctx context.Context, cfg *Config, tiers []*tier) {
	for _, err := range waitWarm(ctx, cfg.Server.ReadyTimeout, tiers) {
		d.log.Warn("tier not warm at start; serving without it until it comes up", zap.Error(err))
	}
}

// waitWarm waits, bounded by timeout, for the pools of tiers to be warm and
// returns an error per tier that is not.
func waitWarm(ctx context.Context, timeout time.Duration, tiers []*tier) []error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	errs := make(chan error, len(tiers))
	for _, t := range tiers {
		go func(t *tier) {
			if err := t.Pool.WaitReady(wctx); err != nil {
				errs <- fmt.Errorf("tier %s: %w", t.Name, err)
				return
			}
			errs <- nil
		}(t)
	}
	var out []error
	for range tiers {
		if err := <-errs; err != nil {
			out = append(out, err)
		}
	}
	return out
}

func closeTiers(tiers []*tier, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, t := range tiers {
		t.Pool.Shutdown(ctx) // bounded by ctx; in-flight calls fail with ErrClosed
	}
}

// SocketAddr returns the front-end socket's address once Ready (the
// configured path: the listener was bound under a temporary name).
func (d *Daemon) SocketAddr() net.Addr { return &net.UnixAddr{Name: d.srv.Path(), Net: "unix"} }
