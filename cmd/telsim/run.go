package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"switchboard/internal/buildinfo"
	"switchboard/internal/logging"
	"switchboard/telsim"
	"switchboard/wire"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// shutdownTimeout bounds the control listener's graceful shutdown.
const shutdownTimeout = 5 * time.Second

// errUsage marks errors in the command line.
var errUsage = errors.New("usage")

// run executes one command line and returns the exit code; it never exits.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var err error
	switch {
	case len(args) > 0 && args[0] == "fault":
		err = runFault(ctx, args[1:], stdout, stderr)
	case len(args) > 0 && args[0] == "stats":
		err = runStats(ctx, args[1:], stdout, stderr)
	default:
		err = runServe(ctx, args, stdout, stderr)
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "telsim: %v (telsim -h for help)\n", err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "telsim: %v\n", err)
		return exitFail
	}
}

// parseFlags parses args, allowing flags after positional arguments (as in
// `telsim fault -control A slow -latency 5ms`), and returns the positional
// arguments. Help goes to stdout (exit 0); errors come back wrapped in
// errUsage.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(stdout)
				fs.Usage()
				return nil, err
			}
			return nil, fmt.Errorf("%w: %w", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func usagef(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
}

// runServe serves until ctx is done.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("telsim", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: telsim [flags]\n       telsim fault -control ADDR MODE [-latency D] [-jitter D] [-fraction F] [-period D]\n       telsim stats -control ADDR\n       telsim -version\n\nThe simulated telephony server: it speaks the telephony protocol on -listen\nand, with -control, serves an HTTP API for fault injection and statistics\n(telsim fault, telsim stats). For tests, demos and load runs only.\n\nExit status: 0 clean stop, 1 runtime failure, 2 usage error.\n\nflags:")
		fs.PrintDefaults()
	}
	listen := fs.String("listen", "127.0.0.1:0", "telephony `address` to listen on (port 0: any; the bound address is printed)")
	tier := fs.String("tier", telsim.DefaultTier, "tier `name` reported in HELLO")
	capacity := fs.Int("capacity", telsim.DefaultCapacity, "maximum live reservations")
	latency := fs.Duration("latency", 0, "service latency of RESERVE, UPDATE, RELEASE and LOOKUP replies")
	jitter := fs.Duration("jitter", 0, "uniform extra latency in [0, jitter)")
	id := fs.String("id", "", "server `id` reported in HELLO (default telsim-TIER)")
	control := fs.String("control", "", "serve the HTTP control API on this `address` (e.g. 127.0.0.1:7071; loopback only)")
	maxFrame := fs.Int("max-frame", wire.DefaultMaxFrame, "largest request frame accepted, in bytes")
	seed := fs.Uint64("seed", 0, "seed of the random choices, for reproducible runs (0: random)")
	level := fs.String("log-level", "info", "log `level` (debug, info, warn, error)")
	tombTTL := fs.Duration("tombstone-ttl", telsim.DefaultTombstoneTTL, "how long a key RELEASEd while unknown refuses a RESERVE (longer than any RESERVE can be queued)")
	version := fs.Bool("version", false, "print the build (version, revision, Go version) and exit")
	pos, err := parseFlags(fs, args, stdout)
	if err != nil {
		return err
	}
	if *version {
		buildinfo.Print(stdout, "telsim")
		return nil
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if _, err := zapcore.ParseLevel(*level); err != nil {
		return usagef("-log-level: %v", err)
	}
	if *capacity <= 0 {
		return usagef("-capacity %d: must be positive", *capacity)
	}
	cfg := telsim.Config{
		Tier: *tier, ServerID: *id, Capacity: *capacity,
		Latency: *latency, Jitter: *jitter, MaxFrame: *maxFrame,
		TombstoneTTL: *tombTTL,
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	log, _, err := logging.New(logging.Config{Service: "telsim", Level: *level, Format: "auto"}, stderr)
	if err != nil {
		return usagef("-log-level: %v", err)
	}
	defer func() { _ = logging.Sync(log) }()
	opts := []telsim.Option{telsim.WithLogger(log)}
	if *seed != 0 {
		opts = append(opts, telsim.WithSeed(*seed))
	}
	srv, err := telsim.New(cfg, opts...)
	if err != nil {
		return err
	}
	defer srv.Close()
	addr, err := srv.Start(*listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "listen %s\n", addr)

	var hs *http.Server
	served := make(chan error, 1) // the control server's Serve result
	if *control != "" {
		ln, err := net.Listen("tcp", *control)
		if err != nil {
			return fmt.Errorf("control listener: %w", err)
		}
		hs = &http.Server{
			Handler:           srv.ControlHandler(),
			ReadHeaderTimeout: 5 * time.Second,
			ErrorLog:          zap.NewStdLog(log.Named("control")),
		}
		go func() { served <- hs.Serve(ln) }()
		fmt.Fprintf(stdout, "control %s\n", ln.Addr())
		log.Info("control API serving", zap.Stringer("addr", ln.Addr()))
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", zap.NamedError("reason", context.Cause(ctx)))
	case err := <-served:
		runErr = fmt.Errorf("control server: %w", err)
		hs = nil
	}
	if hs != nil {
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		err := hs.Shutdown(sctx)
		cancel()
		if err != nil {
			_ = hs.Close()
		}
		<-served // http.ErrServerClosed
	}
	return runErr
}

// runFault implements `telsim fault -control ADDR MODE [flags]`.
func runFault(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("telsim fault", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: telsim fault -control ADDR MODE [-latency D] [-jitter D] [-fraction F] [-period D]\nMODE: none down refuse reset blackhole slow errors garbage cut full flap queue\nflags:")
		fs.PrintDefaults()
	}
	control := fs.String("control", "", "control API `address` of the telsim to drive (host:port)")
	latency := fs.Duration("latency", 0, "slow: delay of every reply (0: 100ms)")
	jitter := fs.Duration("jitter", 0, "slow: uniform extra delay in [0, jitter)")
	fraction := fs.Float64("fraction", 0, "errors: fraction of requests answered INTERNAL (0: all)")
	period := fs.Duration("period", 0, "flap: length of each down and up phase (0: 1s)")
	pos, err := parseFlags(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("fault takes exactly one MODE, got %d arguments", len(pos))
	}
	if *control == "" {
		return usagef("fault: -control is required")
	}
	mode, err := telsim.ParseMode(pos[0])
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	f := telsim.Fault{Mode: mode, Latency: *latency, Jitter: *jitter, Fraction: *fraction, Period: *period}
	got, err := telsim.NewControlClient(*control, nil).SetFault(ctx, f)
	if err != nil {
		return err
	}
	return printJSON(stdout, got)
}

// runStats implements `telsim stats -control ADDR`.
func runStats(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("telsim stats", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: telsim stats -control ADDR\nflags:")
		fs.PrintDefaults()
	}
	control := fs.String("control", "", "control API `address` of the telsim to query (host:port)")
	pos, err := parseFlags(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("stats takes no arguments, got %q", pos[0])
	}
	if *control == "" {
		return usagef("stats: -control is required")
	}
	st, err := telsim.NewControlClient(*control, nil).Stats(ctx)
	if err != nil {
		return err
	}
	return printJSON(stdout, st)
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
