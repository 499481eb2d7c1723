// Command switchboard is the telephony bridge allocation daemon.
//
//	switchboard [-config FILE] [-socket PATH] [-data-dir DIR]
//	switchboard -check-config FILE
//
// Without -config it runs the embedded default (three in-process simulated
// telephony tiers). SIGINT or SIGTERM stop it gracefully. Exit codes: 0 clean
// stop, 1 runtime failure, 2 bad flags or configuration.
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
)

func main() { os.Exit(run()) }

func run() int {
	fs := flag.NewFlagSet("switchboard", flag.ContinueOnError)
	configPath := fs.String("config", "", "config `file` (default: the embedded configs/default.yaml)")
	check := fs.String("check-config", "", "validate config `file`, print ok or every error, and exit")
	socket := fs.String("socket", "", "front-end Unix socket `path` (default: config socket, else "+daemon.DefaultSocket+")")
	dataDir := fs.String("data-dir", "", "data `directory` for key leases and the key secret (default: config data_dir, else "+daemon.DefaultDataDir+")")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "switchboard: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *check != "" {
		if _, err := daemon.LoadConfig(*check); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fmt.Println("ok")
		return 0
	}

	var cfg *daemon.Config
	var err error
	if *configPath != "" {
		cfg, err = daemon.LoadConfig(*configPath)
	} else {
		cfg, err = daemon.DefaultConfig()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if *socket != "" {
		cfg.Socket = *socket
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}

	log, _, err := daemon.NewLogger(cfg.Log, os.Stderr)
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

	d, err := daemon.New(cfg, daemon.WithLogger(log))
	if err != nil {
		log.Error("invalid configuration", zap.Error(err))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := d.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("switchboard failed", zap.Error(err))
		return 1
	}
	return 0
}
