// Package daemontest runs a switchboard daemon in-process for the tests of
// the packages above the daemon (the XML front end, sbctl, the benchmarks):
// one start-up, written once, that builds the config from the embedded
// default, creates the key space as `switchboard -init-keys` does, hosts
// the simulators of its sim:// tiers, waits until it is ready and stops it
// at the test's cleanup. The daemon's own tests cannot use it (it imports
// the daemon) and have their own harness.
package daemontest

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"switchboard/daemon"
	"switchboard/internal/testsupport"
	"switchboard/keygen"
	"switchboard/telsim/simhost"
)

// Bounds of a test daemon's start and stop.
const (
	ReadyWithin = 30 * time.Second
	StopWithin  = 15 * time.Second
)

// Daemon is a daemon running in-process for a test.
type Daemon struct {
	*daemon.Daemon
	Config *daemon.Config // as the daemon was started with it
	Sims   *simhost.Host  // the simulators of its sim:// tiers

	tb     testing.TB
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// Start runs a daemon on the embedded default configuration (three sim://
// tiers) with its socket and data directory under dir (a new short
// temporary directory when dir is empty), mutate applied to the
// configuration last. The key space is created when dir has none (a restart
// on the same dir keeps it). Logs go to the test at warn level unless opts
// carry a logger. It returns once the daemon is ready and stops it at the
// test's cleanup.
func Start(tb testing.TB, dir string, mutate func(*daemon.Config), opts ...daemon.Option) *Daemon {
	tb.Helper()
	if dir == "" {
		dir = testsupport.ShortTempDir(tb)
	}
	cfg, err := daemon.DefaultConfig()
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Socket = filepath.Join(dir, "sb.sock")
	cfg.DataDir = filepath.Join(dir, "data")
	if mutate != nil {
		mutate(cfg)
	}
	if _, err := daemon.InitKeys(cfg, 0); err != nil && !errors.Is(err, keygen.ErrKeySpaceExists) {
		tb.Fatal(err)
	}
	sims := simhost.New()
	all := []daemon.Option{daemon.WithLogger(zaptest.NewLogger(tb, zaptest.Level(zap.WarnLevel)))}
	all = append(all, opts...) // a logger in opts replaces the test's
	all = append(all, daemon.WithSimHost(sims))
	d, err := daemon.New(cfg, all...)
	if err != nil {
		sims.Close()
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	td := &Daemon{Daemon: d, Config: cfg, Sims: sims, tb: tb, cancel: cancel, done: make(chan error, 1)}
	go func() { td.done <- d.Run(ctx) }()
	tb.Cleanup(td.Stop)
	select {
	case <-d.Ready():
	case err := <-td.done:
		td.done <- err // for Stop
		tb.Fatalf("daemon did not start: %v", err)
	case <-time.After(ReadyWithin):
		tb.Fatalf("daemon not ready after %v", ReadyWithin)
	}
	return td
}

// Socket is the daemon's front-end socket.
func (d *Daemon) Socket() string { return d.Config.Socket }

// Stop shuts the daemon down, waits for Run to return and stops its
// simulators; an error of Run fails the test. Idempotent; also run at the
// test's cleanup.
func (d *Daemon) Stop() {
	d.once.Do(func() {
		d.cancel()
		select {
		case err := <-d.done:
			if err != nil {
				d.tb.Errorf("daemon Run: %v", err)
			}
		case <-time.After(StopWithin):
			d.tb.Errorf("daemon did not stop within %v", StopWithin)
		}
		d.Sims.Close()
	})
}
