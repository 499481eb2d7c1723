// Command switchboard is the telephony bridge allocation daemon.
//
//	switchboard [-config FILE] [-socket PATH] [-data-dir DIR] [-admin-socket PATH] [-metrics-addr HOST:PORT]
//	switchboard -init-keys [-skip-keys N] [-config FILE] [-data-dir DIR]
//	switchboard -skip-keys N [-config FILE] [-data-dir DIR]
//	switchboard -migrate-keys -from-dir DIR -config FILE
//	switchboard -check-config FILE
//	switchboard -version
//	switchboard -h
//
// -check-config prints "ok" and exits 0 for a valid file; otherwise it
// prints every problem on standard error, one per line with its file, line
// and field and what would be valid, then a count ("FILE: 3 errors"), and
// exits 2.
//
// The daemon never creates its key space (the session keys' secret and
// high-water mark in the data directory): started where there is none, it
// exits 2 and names the command that creates it. -init-keys is that
// command, run once by an operator, with the same -config and -data-dir as
// the daemon: it creates the key space where none exists, refuses (exit 2)
// where one does, and exits 0 without serving. -skip-keys N alone durably
// moves an existing key space's high-water mark forward by N counters (never
// backwards), the required step after putting a data directory back from a
// backup; with -init-keys it creates the key space with its mark N counters
// in, for a node whose data directory was lost. Neither belongs in a unit
// file. docs/operations.md ("Key space lifecycle") says when to run which.
// With keys.store: etcd both act on the fleet's key space in etcd (one
// -init-keys for the whole fleet). -migrate-keys carries a single-node file
// store's key space (-from-dir, its data directory) into the etcd store
// the -config names, and retires the file store's lease state.
//
// Without -config it runs the embedded default (three in-process simulated
// telephony tiers), the developer setup, which alone creates its key space
// on first start. SIGINT or SIGTERM stop it gracefully; SIGHUP reloads
// the -config file (flags still override it). Under systemd (Type=notify)
// it reports READY, RELOADING and STOPPING and honours WatchdogSec. Exit
// codes: 0 clean stop, 1 runtime failure, 2 bad flags or configuration, or
// a key space that is missing, lost or refused. -version prints the build
// (module version, VCS revision, Go version) and -h the usage, on standard
// output, and exit 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/bytedance/gopkg/util/gopool"
	"go.uber.org/zap"

	"switchboard/daemon"
	"switchboard/internal/buildinfo"
	"switchboard/internal/logging"
	"switchboard/internal/strictyaml"
	"switchboard/keygen"
	"switchboard/telsim/simhost"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usageText = `usage: switchboard [-config FILE] [-socket PATH] [-data-dir DIR] [-admin-socket PATH] [-metrics-addr HOST:PORT]
       switchboard -init-keys [-skip-keys N] [-config FILE] [-data-dir DIR]
       switchboard -skip-keys N [-config FILE] [-data-dir DIR]
       switchboard -check-config FILE
       switchboard -version

The telephony bridge allocation daemon: it issues session keys and reserves
bridges on the first telephony tier that can take one, for the clients of
its Unix socket (xmlapi, sbctl). Without -config it runs the embedded
default: three in-process simulated tiers, for development only.

The key space is created once by an operator with -init-keys (see
docs/operations.md, "Key space lifecycle"). SIGHUP, systemctl reload or
sbctl reload re-read -config; SIGINT and SIGTERM stop gracefully.

Exit status: 0 clean stop, 1 runtime failure, 2 bad flags or configuration,
or a key space that is missing, lost or refused.

Flags:
`

// run is the whole program but for the process: args without the program
// name; the usage, -version and -check-config go to stdout and stderr, the
// daemon's log to the process's standard error.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("switchboard", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configPath := fs.String("config", "", "config `file` (default: the embedded configs/default.yaml)")
	check := fs.String("check-config", "", "validate config `file`, print ok or every error, and exit")
	socket := fs.String("socket", "", "front-end Unix socket `path` (default: config socket, else "+daemon.DefaultSocket+")")
	dataDir := fs.String("data-dir", "", "data `directory` for key leases and the key secret (default: config data_dir, else "+daemon.DefaultDataDir+")")
	adminSocket := fs.String("admin-socket", "", "admin Unix socket `path` for sbctl status/reload/drain/breaker and pprof, mode 0600 (default: config admin.socket, else none)")
	metricsAddr := fs.String("metrics-addr", "", "loopback `host:port` (or unix:/path) serving Prometheus /metrics (default: config metrics.addr, else none)")
	initKeys := fs.Bool("init-keys", false, "create the session key space in the data directory (once, by an operator; refuses an existing one) and exit")
	migrateKeys := fs.Bool("migrate-keys", false, "carry the file-store key space of -from-dir into the etcd store of -config (keys.store: etcd) and exit")
	fromDir := fs.String("from-dir", "", "with -migrate-keys: the file store's data `directory`")
	skipKeys := fs.Uint64("skip-keys", 0, "durably move the key space's high-water mark forward by `N` counters and exit (after restoring a data directory from a backup; with -init-keys: create it N counters in)")
	version := fs.Bool("version", false, "print the build (version, revision, Go version) and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usageText)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "switchboard: %v (see switchboard -h)\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "switchboard: unexpected arguments %q (see switchboard -h)\n", fs.Args())
		return 2
	}
	if *version {
		buildinfo.Print(stdout, "switchboard")
		return 0
	}
	if *check != "" {
		cfg, err := daemon.LoadConfig(*check)
		if err == nil {
			err = cfg.CheckFiles() // the files it names, as the start would read them
		}
		if err != nil {
			strictyaml.Report(stderr, *check, err)
			return 2
		}
		fmt.Fprintln(stdout, "ok")
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
		fmt.Fprintln(stderr, err)
		return 2
	}
	// fix names the command that creates or repairs this key space.
	fix := func(cmd string) string {
		c := "switchboard " + cmd
		if *configPath != "" {
			c += " -config " + *configPath
		}
		return c + " -data-dir " + cfg.DataDir
	}
	skipSet := false
	fs.Visit(func(f *flag.Flag) { skipSet = skipSet || f.Name == "skip-keys" })
	if *migrateKeys {
		return migrateCommand(cfg, *fromDir)
	}
	if *initKeys || skipSet {
		return keysCommand(stdout, stderr, cfg, *initKeys, *skipKeys, fix)
	}
	if *configPath == "" {
		// The embedded default is the developer setup (make run): it
		// alone creates its key space implicitly, once. A lost lease
		// state next to the secret it generated is still refused.
		// A data directory in use is reported by the daemon's own start.
		if _, err := daemon.InitKeys(cfg, 0); err != nil && !errors.Is(err, keygen.ErrKeySpaceExists) && !errors.Is(err, keygen.ErrLocked) {
			fmt.Fprintln(stderr, "switchboard:", keysHint(err, fix))
			return 2
		}
	}

	log, level, err := daemon.NewLogger(cfg.Log, os.Stderr)
	if err != nil {
		fmt.Fprintln(stderr, "switchboard: logger:", err)
		return 2
	}
	defer logging.Sync(log)
	// netpoll runs callbacks on a global goroutine pool that only logs
	// panics (docs/libraries.md N7): make them loud.
	gopool.SetPanicHandler(func(_ context.Context, r any) {
		log.Error("panic in a netpoll callback", zap.Any("panic", r), zap.Stack("stack"))
	})

	// sim://NAME tiers (the embedded default's) are served by in-process
	// simulators, hosted outside the daemon package; the host is ours to
	// close once Run has returned.
	sims := simhost.New(simhost.WithLogger(log))
	defer sims.Close()
	d, err := daemon.New(cfg, daemon.WithLogger(log), daemon.WithLogLevel(level), daemon.WithConfigSource(load),
		daemon.WithSimHost(sims))
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
	if keySpaceRefused(err) {
		log.Error("switchboard cannot start: session key space refused", zap.Error(err))
		fmt.Fprintln(stderr, "switchboard:", keysHint(err, fix))
		return 2
	}
	if errors.Is(err, keygen.ErrInvalidConfig) || errors.Is(err, daemon.ErrConfig) {
		// A file the configuration names (keys.etcd.password_file,
		// ca_file, ...) is missing or unsafe: found only when the store
		// opens, but a configuration error all the same.
		log.Error("invalid configuration", zap.Error(err))
		return 2
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error("switchboard failed", zap.Error(err))
		return 1
	}
	return 0
}

// keysCommand runs -init-keys and/or -skip-keys and returns the exit code.
func keysCommand(stdout, stderr io.Writer, cfg *daemon.Config, create bool, skip uint64, fix func(string) string) int {
	var part keygen.Partition
	var err error
	if create {
		part, err = daemon.InitKeys(cfg, skip)
	} else {
		part, err = daemon.SkipKeys(cfg, skip)
	}
	if err != nil {
		fmt.Fprintln(stderr, "switchboard:", keysHint(err, fix))
		if keySpaceRefused(err) || errors.Is(err, keygen.ErrKeySpaceExists) || errors.Is(err, keygen.ErrInvalidConfig) || errors.Is(err, keygen.ErrLocked) {
			return 2
		}
		return 1
	}
	what := "moved forward"
	if create {
		what = "created"
	}
	where := cfg.DataDir
	if cfg.Keys.Store == daemon.KeyStoreEtcd {
		where = fmt.Sprintf("etcd %v under %s", cfg.Keys.Etcd.Endpoints, cfg.Keys.Etcd.Prefix)
	}
	fmt.Fprintf(stdout, "key space %s in %s: node %d of %d, counters [%d, %d), next %d\n",
		what, where, cfg.Keys.Node.ID, cfg.Keys.Node.Count, part.Lo, part.Hi, part.Next)
	if create && cfg.Keys.Secret == "" {
		fmt.Fprintf(stdout, "back up %s/%s now (it never changes): without it a lost data directory cannot be recreated safely\n",
			cfg.DataDir, keygen.SecretFile)
	}
	return 0
}

// keySpaceRefused reports whether err is the daemon refusing its key space
// (missing, lost, changed, corrupt or without its secret): an operator must
// act, and restarting cannot help, so the exit code is 2.
func keySpaceRefused(err error) bool {
	for _, s := range []error{keygen.ErrStateMissing, keygen.ErrStateStale, keygen.ErrSecret, keygen.ErrBindingChanged, keygen.ErrStateCorrupt} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// keysHint returns err's message followed by the command that fixes it.
func keysHint(err error, fix func(string) string) string {
	switch {
	case errors.Is(err, keygen.ErrStateMissing):
		return fmt.Sprintf("%v\nfix: if this node never issued keys from this data directory, create its key space once: %s\n"+
			"     if it did (the directory was lost, emptied or its lease deleted), create it past every key it issued: %s\n"+
			"     (see docs/operations.md, \"Key space lifecycle\")", err, fix("-init-keys"), fix("-init-keys -skip-keys N"))
	case errors.Is(err, keygen.ErrKeySpaceExists) && errors.Is(err, keygen.ErrBindingChanged):
		return err.Error() // another key space: the message says what differs and what to do
	case errors.Is(err, keygen.ErrKeySpaceExists):
		return fmt.Sprintf("%v\nthe key space is left as it is; it needs no -init-keys. If it was put back from a backup, move its high-water mark past every key issued since: %s",
			err, fix("-skip-keys N"))
	case errors.Is(err, keygen.ErrStateStale):
		return fmt.Sprintf("%v\nfix: %s (N: see docs/operations.md, \"Key space lifecycle\")", err, fix("-skip-keys N"))
	case errors.Is(err, keygen.ErrStateCorrupt):
		return fmt.Sprintf("%v\nfix: move the damaged %s aside and recreate the key space past every key it issued: %s (N: see docs/operations.md, \"Key space lifecycle\")",
			err, keygen.StateFile, fix("-init-keys -skip-keys N"))
	}
	return err.Error()
}
