// Command switchboard is the telephony bridge allocation daemon.
//
//	switchboard [-config FILE] [-socket PATH] [-data-dir DIR] [-admin-socket PATH] [-metrics-addr HOST:PORT]
//	switchboard -check-config FILE
//
// -check-config prints "ok" and exits 0 for a valid file; otherwise it
// prints every problem on standard error, one per line with its file, line
// and field and what would be valid, then a count ("FILE: 3 errors"), and
// exits 2.
//
// Without -config it runs the embedded default (three in-process simulated
// telephony tiers). SIGINT or SIGTERM stop it gracefully; SIGHUP reloads
// the -config file (flags still override it). Under systemd (Type=notify)
// it reports READY, RELOADING and STOPPING and honours WatchdogSec. Exit
// codes: 0 clean stop, 1 runtime failure, 2 bad flags or configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/bytedance/gopkg/util/gopool"
	"go.uber.org/zap"

	"switchboard/daemon"
	"switchboard/internal/strictyaml"
)

func main() { os.Exit(run()) }

func run() int {
	fs := flag.NewFlagSet("switchboard", flag.ContinueOnError)
	configPath := fs.String("config", "", "config `file` (default: the embedded configs/default.yaml)")
	check := fs.String("check-config", "", "validate config `file`, print ok or every error, and exit")
	socket := fs.String("socket", "", "front-end Unix socket `path` (default: config socket, else "+daemon.DefaultSocket+")")
	dataDir := fs.String("data-dir", "", "data `directory` for key leases and the key secret (default: config data_dir, else "+daemon.DefaultDataDir+")")
	adminSocket := fs.String("admin-socket", "", "admin Unix socket `path` for sbctl status/reload/drain/breaker and pprof, mode 0600 (default: config admin.socket, else none)")
	metricsAddr := fs.String("metrics-addr", "", "loopback `host:port` (or unix:/path) serving Prometheus /metrics (default: config metrics.addr, else none)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "switchboard: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *check != "" {
		if _, err := daemon.LoadConfig(*check); err != nil {
			strictyaml.Report(os.Stderr, *check, err)
			return 2
		}
		fmt.Println("ok")
		return 0
	}

	// load reads the configuration and applies the flags; SIGHUP and
	// sbctl reload call it again.
	load := func() (*daemon.Config, error) {
		var cfg *daemon.Config
		var err error
		if *configPath != "" {
			cfg, err = daemon.LoadConfig(*configPath)
		} else {
			cfg, err = daemon.DefaultConfig()
		}
		if err != nil {
			return nil, err
		}
		if *socket != "" {
			cfg.Socket = *socket
		}
		if *dataDir != "" {
			cfg.DataDir = *dataDir
		}
		if *adminSocket != "" {
			cfg.Admin.Socket = *adminSocket
		}
		if *metricsAddr != "" {
			cfg.Metrics.Addr = *metricsAddr
		}
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %w", daemon.ErrConfig, err)
		}
		return cfg, nil
	}
	cfg, err := load()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}

	log, level, err := daemon.NewLogger(cfg.Log, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "switchboard: logger:", err)
		return 2
	}
	defer daemon.SyncLogger(log)
	// netpoll runs callbacks on a global goroutine pool that only logs
	// panics (libraries.md P7): make them loud.
	gopool.SetPanicHandler(func(_ context.Context, r any) {
		log.Error("panic in a netpoll callback", zap.Any("panic", r), zap.Stack("stack"))
	})

	d, err := daemon.New(cfg, daemon.WithLogger(log), daemon.WithLogLevel(level), daemon.WithConfigSource(load))
	if err != nil {
		log.Error("invalid configuration", zap.Error(err))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// SIGHUP reloads, one at a time, until Run returns.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	hupCtx, hupStop := context.WithCancel(ctx)
	hupDone := make(chan struct{})
	go func() {
		defer close(hupDone)
		for {
			select {
			case <-hupCtx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading the configuration")
				// The daemon logs the outcome and counts it in
				// switchboard_reloads_total.
				d.ReloadFromSource(hupCtx)
			}
		}
	}()
	err = d.Run(ctx)
	hupStop()
	<-hupDone
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error("switchboard failed", zap.Error(err))
		return 1
	}
	return 0
}
