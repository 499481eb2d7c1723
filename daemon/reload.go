package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"switchboard/pool"
)

// reloadRequest carries one reload to Run's reloader goroutine, which
// applies reloads one at a time.
type reloadRequest struct {
	cfg   *Config
	reply chan error // 1-buffered
}

// ReloadOutcome describes the last reload attempt (a plain value).
type ReloadOutcome struct {
	At      time.Time `json:"at"`
	Result  string    `json:"result"` // ok, invalid, requires_restart, failed
	Error   string    `json:"error,omitempty"`
	Version uint64    `json:"config_version"` // in force after the attempt
}

// Reload applies cfg to the running daemon and returns once it is in force
// (or refused). In order: cfg is validated; a change to a field that cannot
// change live (tagged reload:"restart": RestartFields) is refused with
// ErrRequiresRestart; new simulators start (SimHost.Prepare); tiers whose servers
// changed get a new pool (buildTiers), and every new pool must be warm
// within server.ready_timeout (else ErrNotWarm); then,
// at one atomic swap, the new tier order is in force, kept pools and
// breakers are retuned in place, server limits, simulator settings
// (SimHost's plan: Commit) and the log level change.
// Finally the pools no longer used drain (requests already holding the old
// order finish on it) and close, and simulators no longer named stop
// (Retire).
//
// A refused or failed reload changes nothing. Operator overrides (drain,
// breaker override) are kept by tier name. Reloads are serialised by Run's
// reloader goroutine (never its watchdog loop); if ctx ends first Reload returns ctx's error and the reload still
// completes or fails on its own.
func (d *Daemon) Reload(ctx context.Context, cfg *Config) error {
	if cfg == nil {
		return fmt.Errorf("%w: nil config", ErrConfig)
	}
	req := reloadRequest{cfg: cfg, reply: make(chan error, 1)}
	select {
	case d.reloads <- req:
	case <-d.stopped:
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ReloadFromSource reads the configuration from the source given with
// WithConfigSource (SIGHUP and sbctl reload use it) and applies it with
// Reload. A source that fails to load counts as an invalid reload.
func (d *Daemon) ReloadFromSource(ctx context.Context) error {
	if d.source == nil {
		return ErrNoSource
	}
	cfg, err := d.source()
	if err != nil {
		d.recordReload(reloadInvalid, err)
		return err
	}
	return d.Reload(ctx, cfg)
}

// LastReload returns the outcome of the last reload attempt, or nil.
func (d *Daemon) LastReload() *ReloadOutcome { return d.last.Load() }

func (d *Daemon) recordReload(result string, err error) {
	d.m.reloads.WithLabelValues(result).Inc()
	o := &ReloadOutcome{At: d.now(), Result: result, Version: d.version.Load()}
	if err != nil {
		o.Error = err.Error()
		d.log.Error("reload failed; the running configuration is unchanged",
			zap.String("result", result), zap.Error(err), zap.Uint64("config_version", o.Version))
	} else {
		d.log.Info("reload done", zap.Uint64("config_version", o.Version))
	}
	d.last.Store(o)
}

// reload runs on Run's reloader goroutine: one at a time.
func (d *Daemon) reload(ctx context.Context, nc *Config) (err error) {
	result := reloadFailed
	defer func() {
		if err == nil {
			result = reloadOK
		}
		d.recordReload(result, err)
	}()
	c := *nc
	nc = &c
	old := d.cfg.Load()
	if err := nc.Validate(); err != nil {
		result = reloadInvalid
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if f := restartFields(old, nc); len(f) > 0 {
		result = reloadRequiresRestart
		return fmt.Errorf("%w: %s changed", ErrRequiresRestart, strings.Join(f, ", "))
	}
	d.notify.send(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d\nSTATUS=reloading", monotonicUsec()))
	defer d.notify.send("READY=1\nSTATUS=serving")

	sims, err := d.prepareSims(nc)
	if err != nil {
		return err
	}
	built, err := d.buildTiers(nc, d.rt.Current().Tiers)
	if err != nil {
		sims.Abort()
		return err
	}
	next, fresh := built.tiers, built.fresh
	abort := func() {
		built.abort()
		sims.Abort()
	}
	if errs := waitWarm(ctx, nc.Server.ReadyTimeout, fresh); len(errs) > 0 {
		abort()
		return fmt.Errorf("%w within server.ready_timeout %v: %w", ErrNotWarm, nc.Server.ReadyTimeout, errors.Join(errs...))
	}

	// Commit: nothing below fails.
	for _, f := range built.retunes {
		f()
	}
	d.m.wireFailovers(next)
	retired := d.rt.Swap(next)
	if err := d.srv.SetLimits(frontendConfig(nc.Server)); err != nil {
		// restartFields refused such a reload above.
		d.log.Error("server limits not set", zap.Error(err))
	}
	sims.Commit()
	if d.level != nil && d.level.String() != nc.Log.Level {
		if err := d.level.UnmarshalText([]byte(nc.Log.Level)); err == nil {
			d.log.Info("log level changed", zap.String("level", nc.Log.Level))
		}
	}
	d.cfg.Store(nc)
	d.version.Add(1)
	d.loadedAt.Store(d.now().UnixNano())
	d.log.Info("new configuration in force",
		zap.Int("tiers", len(next)), zap.Int("new_pools", len(fresh)), zap.Uint64("config_version", d.version.Load()))
	d.warnSimulated(nc) // as at start: a reload may bring sim:// tiers in

	// Drain: wait until no request holds the old order, then close the
	// pools it alone used and the simulators no longer named.
	d.drainRetired(ctx, retired, next, nc)
	sims.Retire()
	return nil
}

// warnSimulated logs a warning when cfg, just put in force (at start or by
// a reload), serves tiers from in-process simulators: allocations succeed
// and no real bridge is reserved, which must not pass unnoticed in
// production (a default copied into a config file).
func (d *Daemon) warnSimulated(cfg *Config) {
	if sim := cfg.SimulatedTiers(); len(sim) > 0 {
		d.log.Warn("tiers served by in-process simulators: no real bridge is reserved (development and tests only; production configures tcp:// servers)",
			zap.Strings("tiers", sim))
	}
}

// drainRetired closes the pools the retired tier order used and next does
// not.
// When ctx ends (the daemon is stopping) it stops waiting for requests on
// the old order and closes those pools within a second, so that a reload
// in progress never holds a graceful stop back for its whole drain.
func (d *Daemon) drainRetired(ctx context.Context, retired *tierSet, next []*tier, nc *Config) {
	keep := map[*pool.Pool]bool{}
	for _, t := range next {
		keep[t.Pool] = true
	}
	var gone []*tier
	for _, t := range retired.Tiers {
		if !keep[t.Pool] {
			gone = append(gone, t)
		}
	}
	if len(gone) > 0 {
		wait := time.NewTimer(nc.Server.RequestTimeout + time.Second)
		select {
		case <-retired.Idle():
		case <-wait.C:
			d.log.Warn("requests still hold the previous tier order; closing its pools anyway")
		case <-ctx.Done():
		}
		wait.Stop()
		bound := nc.Server.ShutdownTimeout
		if ctx.Err() != nil {
			bound = min(bound, time.Second)
		}
		sctx, cancel := context.WithTimeout(context.Background(), bound)
		for _, t := range gone {
			if err := t.Pool.Shutdown(sctx); err != nil {
				d.log.Warn("retired pool drain cut short", zap.String("tier", t.Name), zap.Error(err))
			}
		}
		cancel()
	}
}
