package daemon

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"switchboard/breaker"
	"switchboard/keygen"
	"switchboard/pool"
	"switchboard/telsim"
)

// Daemon is one switchboard daemon. Create it with New and run it with Run;
// Run returns when its context ends and the shutdown is complete. Its methods
// are safe for concurrent use.
type Daemon struct {
	cfg   atomic.Pointer[Config]
	log   *zap.Logger
	now   func() time.Time
	ready chan struct{}

	sims map[string]*telsim.Server
	keys *keygen.Generator
	// keysOverride, when set by a test, replaces keys on the request path.
	keysOverride keySource
	store        keygen.LeaseStore
	svc          *service
	srv          *server

	started time.Time
}

// Option configures a Daemon.
type Option func(*Daemon)

// WithLogger sets the logger (default: no logging).
func WithLogger(l *zap.Logger) Option { return func(d *Daemon) { d.log = l } }

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(d *Daemon) { d.now = now } }

// New checks cfg and returns a daemon ready to Run. It starts nothing.
func New(cfg *Config, opts ...Option) (*Daemon, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: nil config", ErrConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	d := &Daemon{log: zap.NewNop(), now: time.Now, ready: make(chan struct{})}
	for _, o := range opts {
		o(d)
	}
	c := *cfg
	d.cfg.Store(&c)
	return d, nil
}

// Ready is closed once the pools are warm and the socket accepts requests.
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

// Config returns the configuration in force.
func (d *Daemon) Config() *Config { return d.cfg.Load() }

// Run starts every part, serves until ctx ends, then shuts down gracefully:
// it stops accepting, answers the requests in flight (bounded by
// server.shutdown_timeout), closes the pools, the key generator and the
// simulators. It returns nil after a clean shutdown.
func (d *Daemon) Run(ctx context.Context) (err error) {
	cfg := d.cfg.Load()
	d.started = d.now()
	var cleanup []func()
	defer func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}()

	if err := d.startSims(cfg); err != nil {
		return err
	}
	cleanup = append(cleanup, d.closeSims)

	if err := d.openKeys(cfg); err != nil {
		return err
	}
	cleanup = append(cleanup, func() {
		d.keys.Close()
		d.store.Close()
	})

	tiers, err := d.buildTiers(cfg)
	if err != nil {
		return err
	}
	cleanup = append(cleanup, func() { closeTiers(tiers, cfg.Server.ShutdownTimeout) })
	d.warm(ctx, cfg, tiers)

	idx := newIndex(cfg.Cache.SizeMB, cfg.Cache.TokenTTL, d.now)
	cleanup = append(cleanup, idx.close)
	var keys keySource = d.keys
	if d.keysOverride != nil {
		keys = d.keysOverride
	}
	svc := &service{log: d.log, keys: keys, idx: idx}
	svc.tiers.Store(&tiers)
	svc.orphans = newOrphans(d.log.Named("orphans"), func() []*tier { return *svc.tiers.Load() }, 500*time.Millisecond)
	go svc.orphans.run()
	cleanup = append(cleanup, svc.orphans.close)
	d.svc = svc

	srv, err := newServer(d.log.Named("server"), svc, cfg.Server, cfg.Socket)
	if err != nil {
		return fmt.Errorf("front-end socket %s: %w", cfg.Socket, err)
	}
	d.srv = srv
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.serve() }()
	close(d.ready)
	d.log.Info("switchboard ready",
		zap.String("socket", cfg.Socket),
		zap.Int("tiers", len(tiers)),
		zap.Duration("startup", d.now().Sub(d.started)))

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		srv.shutdown(context.Background())
		return fmt.Errorf("front-end server stopped: %w", err)
	}
	d.log.Info("shutting down: draining in-flight requests", zap.Duration("timeout", cfg.Server.ShutdownTimeout))
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
	defer cancel()
	if err := srv.shutdown(sctx); err != nil {
		d.log.Warn("shutdown drain incomplete", zap.Error(err))
	}
	<-serveErr
	d.log.Info("switchboard stopped")
	return nil
}

// startSims starts an in-process telephony simulator for every sim:// name.
func (d *Daemon) startSims(cfg *Config) error {
	d.sims = map[string]*telsim.Server{}
	simCfg := map[string]SimConfig{}
	for _, s := range cfg.Simulators {
		simCfg[s.Name] = s
	}
	for _, t := range cfg.Tiers {
		for _, u := range t.Servers {
			srv, _ := ParseServer(u)
			if srv.Sim == "" || d.sims[srv.Sim] != nil {
				continue
			}
			sc := telsim.DefaultConfig()
			sc.Tier = t.Name
			sc.ServerID = "sim-" + srv.Sim
			if c, ok := simCfg[srv.Sim]; ok {
				sc.Capacity = c.Capacity
				sc.Latency = c.Latency
			}
			ts, err := telsim.New(sc, telsim.WithLogger(d.log.Named("telsim").With(zap.String("sim", srv.Sim))))
			if err != nil {
				return fmt.Errorf("simulator %s: %w", srv.Sim, err)
			}
			if _, err := ts.Start("127.0.0.1:0"); err != nil {
				return fmt.Errorf("simulator %s: %w", srv.Sim, err)
			}
			d.sims[srv.Sim] = ts
		}
	}
	return nil
}

func (d *Daemon) closeSims() {
	for _, s := range d.sims {
		s.Close()
	}
}

// Simulator returns the in-process simulator behind sim://name, or nil.
// Tests and drills use it to inject faults.
func (d *Daemon) Simulator(name string) *telsim.Server { return d.sims[name] }

func (d *Daemon) openKeys(cfg *Config) error {
	kc := keygen.DefaultConfig()
	kc.Digits = cfg.Keys.Digits
	kc.BlockSize = cfg.Keys.BlockSize
	kc.Dir = cfg.DataDir
	kc.Node = keygen.NodeConfig{ID: cfg.Keys.Node.ID, Count: cfg.Keys.Node.Count}
	if cfg.Keys.Secret != "" {
		kc.Secret, _ = hex.DecodeString(cfg.Keys.Secret) // validated
	}
	store, err := keygen.NewFileStore(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("key lease store: %w", err)
	}
	g, err := keygen.New(kc, store, keygen.WithLogger(d.log.Named("keygen")))
	if err != nil {
		store.Close()
		return fmt.Errorf("session keys: %w", err)
	}
	d.store, d.keys = store, g
	return nil
}

// resolve turns a tier's server URLs into dialable addresses.
func (d *Daemon) resolve(urls []string) ([]string, error) {
	var addrs []string
	for _, u := range urls {
		s, err := ParseServer(u)
		if err != nil {
			return nil, err
		}
		if s.Sim != "" {
			ts := d.sims[s.Sim]
			if ts == nil {
				return nil, fmt.Errorf("%s: simulator not started", u)
			}
			s.Addr = ts.Addr().String()
		}
		addrs = append(addrs, s.Addr)
	}
	return addrs, nil
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

func (d *Daemon) buildTiers(cfg *Config) ([]*tier, error) {
	var tiers []*tier
	for i, tc := range cfg.Tiers {
		addrs, err := d.resolve(tc.Servers)
		if err != nil {
			closeTiers(tiers, time.Second)
			return nil, fmt.Errorf("tier %s: %w", tc.Name, err)
		}
		log := d.log.Named("pool")
		p, err := pool.New(poolConfig(tc.Name, cfg.Instance, addrs, tc.Pool), pool.WithLogger(log))
		if err != nil {
			closeTiers(tiers, time.Second)
			return nil, fmt.Errorf("tier %s: %w", tc.Name, err)
		}
		blog := d.log.Named("breaker")
		br := breaker.New(tc.Name, tc.Breaker.settings(), breaker.WithOnStateChange(func(name string, from, to breaker.State) {
			// Runs under gobreaker's lock: log only (zap does not call back).
			blog.Warn("breaker state change", zap.String("tier", name), zap.Stringer("from", from), zap.Stringer("to", to))
		}))
		tiers = append(tiers, &tier{name: tc.Name, nameB: []byte(tc.Name), pos: i, pool: p, br: br, attempt: tc.AttemptTimeout})
	}
	return tiers, nil
}

// warm waits, bounded by server.ready_timeout, for every pool to be warm. A
// tier that is not warm in time is logged and served as it comes up: the
// daemon serves as long as any tier can.
func (d *Daemon) warm(ctx context.Context, cfg *Config, tiers []*tier) {
	wctx, cancel := context.WithTimeout(ctx, cfg.Server.ReadyTimeout)
	defer cancel()
	errs := make(chan error, len(tiers))
	for _, t := range tiers {
		go func(t *tier) {
			if err := t.pool.WaitReady(wctx); err != nil {
				errs <- fmt.Errorf("tier %s: %w", t.name, err)
				return
			}
			errs <- nil
		}(t)
	}
	for range tiers {
		if err := <-errs; err != nil {
			d.log.Warn("tier not warm at start; serving without it until it comes up", zap.Error(err))
		}
	}
}

func closeTiers(tiers []*tier, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, t := range tiers {
		t.pool.Shutdown(ctx) // bounded by ctx; in-flight calls fail with ErrClosed
	}
}

// SocketAddr returns the front-end socket's address once Ready.
func (d *Daemon) SocketAddr() net.Addr { return d.srv.tr.addr() }
