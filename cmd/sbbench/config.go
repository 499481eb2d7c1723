package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"switchboard/client"
	"switchboard/internal/buildinfo"
	"switchboard/wire"
)

// Socket defaults, shared with sbctl and the daemon.
const (
	// DefaultSocket is the daemon's default front-end socket.
	DefaultSocket = "/run/switchboard/switchboard.sock"
	// SocketEnv, when set, replaces DefaultSocket.
	SocketEnv = "SWITCHBOARD_SOCKET"
)

// errUsage marks a command-line error (exit status 2).
var errUsage = errors.New("usage")

// errPrinted says parseFlags printed what was asked (-h, -version) and the
// run is over: exit status 0.
var errPrinted = errors.New("printed")

// config is one run's settings, from the command line.
type config struct {
	socket      string        // front-end socket; default $SWITCHBOARD_SOCKET or DefaultSocket
	rate        float64       // open loop: allocations per second; 0 = not this mode
	concurrency int           // closed loop: workers; 0 = not this mode
	duration    time.Duration // measured period; default 10s
	warmup      time.Duration // unmeasured period before it; default 0
	requests    int64         // cap on allocations sent, warmup included; default 0 = no cap
	conns       int           // client connections; default 1
	jsonOut     bool          // one JSON object instead of text
	namePrefix  string        // conference names are "<prefix> <n>"; default "sbbench"
	metaBytes   int           // size of each request's meta; default 256
	timeout     time.Duration // per request (allocate, release) and for the dial; default 5s
	maxInFlight int           // open loop: cap on allocations in flight; default 0 = conns × client.DefaultMaxInFlight
	spin        time.Duration // open loop: spin this long before each send; default 0
	releasers   int           // release workers; default 16
	faults      faultList     // -fault, repeatable: injected into telsim control APIs; default none
	step        time.Duration // timeline row width; default 1s (widened past maxTimelineRows rows)
	reloadEvery time.Duration // POST /reload on adminSocket this often in the measured window; default 0 = never
	adminSocket string        // the daemon's admin socket, for -reload-every; default none
	hgrm        string        // write the ok allocations' latency percentiles here (.hgrm); default none
}

// mode names the load model, as printed and in JSON.
func (c *config) mode() string {
	if c.rate > 0 {
		return "rate"
	}
	return "concurrency"
}

func defaultSocket() string {
	if s := os.Getenv(SocketEnv); s != "" {
		return s
	}
	return DefaultSocket
}

const usageText = `usage: sbbench [-socket PATH] (-rate N | -concurrency N) [-duration D] [flags]
       sbbench scenario NAME -out DIR [flags]   (see sbbench scenario -h)
       sbbench -version

Drives ALLOCATE at switchboard's front-end socket, releases what it
allocated, and prints latency percentiles, errors by code and allocations
per tier, then a timeline of the same numbers per second. -rate is an open
loop with latency measured from each request's intended send time (no
coordinated omission); -concurrency is a closed loop.

-fault ADDR=MODE[:K=V,...]@SECONDS (repeatable) injects a telsim fault
through the control API at ADDR, SECONDS after the end of warmup, e.g.
  -fault 127.0.0.1:7201=down@3 -fault 127.0.0.1:7201=none@6
  -fault 127.0.0.1:7201=slow:latency=5ms,jitter=1ms@2
  -fault 127.0.0.1:7201=errors:fraction=0.1@2   -fault 127.0.0.1:7201=flap:period=500ms@2
Each injection (time, address, mode, result) is in the output and in the
timeline row it fell in; a failed one is reported and the run goes on.

-reload-every D -admin-socket PATH reloads the daemon (POST /reload on its
admin socket: it re-reads its -config file) every D of the measured
window, and compares the p99 of the timeline rows during a reload with the
p99 of the other rows, e.g.
  -rate 2000 -duration 20s -timeline-step 250ms -reload-every 1s -admin-socket run/admin.sock

The default socket is $` + SocketEnv + ` if set, else ` + DefaultSocket + `.

Flags:
`

// parseFlags parses args (without the program name). -h prints the usage
// and -version the build to stdout and return errPrinted; any other problem
// returns an error wrapping errUsage.
func parseFlags(args []string, stdout io.Writer) (config, error) {
	c := config{}
	fs := flag.NewFlagSet("sbbench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.socket, "socket", defaultSocket(), "daemon front-end socket `path`")
	fs.Float64Var(&c.rate, "rate", 0, "open loop: `N` allocations per second")
	fs.IntVar(&c.concurrency, "concurrency", 0, "closed loop: `N` workers")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured `period`")
	fs.DurationVar(&c.warmup, "warmup", 0, "unmeasured `period` before the measured one")
	fs.Int64Var(&c.requests, "requests", 0, "stop after `N` allocations, warmup included (0: no cap)")
	fs.IntVar(&c.conns, "conns", 1, "client `connections` (requests are pipelined on each)")
	fs.BoolVar(&c.jsonOut, "json", false, "print one JSON object")
	fs.StringVar(&c.namePrefix, "name-prefix", "sbbench", "conference names are \"`prefix` N\"")
	fs.IntVar(&c.metaBytes, "meta-bytes", 256, "`size` of each request's opaque meta")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "per-request `deadline` (allocate, release, dial)")
	fs.IntVar(&c.maxInFlight, "max-inflight", 0, "open loop: cap on allocations in flight; beyond it: client_backlog (0: 1024 per connection, the client's own cap)")
	fs.DurationVar(&c.spin, "spin", 0, "open loop: spin (yielding) for the last `D` before each send instead of sleeping")
	fs.IntVar(&c.releasers, "release-workers", 16, "`N` goroutines releasing allocated keys")
	fs.Var(&c.faults, "fault", "inject a telsim fault: `ADDR=MODE[:K=V,...]@SECONDS` after the end of warmup (repeatable)")
	fs.DurationVar(&c.step, "timeline-step", defaultTimelineStep, "timeline row `width` (widened to keep at most 600 rows)")
	fs.DurationVar(&c.reloadEvery, "reload-every", 0, "reload the daemon (POST /reload on -admin-socket) every `D` of the measured window (0: never)")
	fs.StringVar(&c.adminSocket, "admin-socket", "", "the daemon's admin socket `path`, for -reload-every")
	fs.StringVar(&c.hgrm, "hgrm", "", "also write the ok allocations' latency distribution to `file` (wrk2-style .hgrm, milliseconds)")
	version := fs.Bool("version", false, "print the build (version, revision, Go version) and exit")
	if err := parseFlagSet(fs, args, stdout, usageText); err != nil {
		return c, err
	}
	if *version {
		buildinfo.Print(stdout, "sbbench")
		return c, errPrinted
	}
	if fs.NArg() != 0 {
		return c, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if err := c.validate(); err != nil {
		return c, err
	}
	if c.maxInFlight == 0 {
		// Beyond the client's per-connection cap requests would fail as
		// client_busy; stop at it and count client_backlog instead.
		c.maxInFlight = c.conns * client.DefaultMaxInFlight
	}
	return c, nil
}

// parseFlagSet parses args with fs: -h prints usage and fs's flags to
// stdout and returns errPrinted; a bad flag returns an error wrapping
// errUsage.
func parseFlagSet(fs *flag.FlagSet, args []string, stdout io.Writer, usage string) error {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return errPrinted
	}
	return fmt.Errorf("%w: %v", errUsage, err)
}

// validate reports the first setting that cannot work.
func (c *config) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
	}
	switch {
	case c.socket == "":
		return bad("-socket is empty")
	case (c.rate > 0) == (c.concurrency > 0):
		return bad("give exactly one of -rate N and -concurrency N, with N > 0")
	case c.rate < 0 || c.concurrency < 0:
		return bad("-rate and -concurrency must not be negative")
	case c.rate > 1e7:
		return bad("-rate %g is above 10,000,000/s", c.rate)
	case c.duration <= 0:
		return bad("-duration must be positive")
	case c.warmup < 0:
		return bad("-warmup must not be negative")
	case c.requests < 0:
		return bad("-requests must not be negative")
	case c.conns < 1:
		return bad("-conns must be at least 1")
	case c.metaBytes < 0 || c.metaBytes > wire.MaxMeta:
		return bad("-meta-bytes must be within 0..%d", wire.MaxMeta)
	case len(c.namePrefix)+21 > wire.MaxName:
		return bad("-name-prefix is longer than %d bytes", wire.MaxName-21)
	case c.timeout <= 0:
		return bad("-timeout must be positive")
	case c.maxInFlight < 0:
		return bad("-max-inflight must not be negative")
	case c.spin < 0:
		return bad("-spin must not be negative")
	case c.releasers < 1:
		return bad("-release-workers must be at least 1")
	case c.step < minTimelineStep:
		return bad("-timeline-step must be at least %v", minTimelineStep)
	case c.reloadEvery < 0:
		return bad("-reload-every must not be negative")
	case c.reloadEvery > 0 && c.adminSocket == "":
		return bad("-reload-every needs -admin-socket PATH (the daemon's admin socket)")
	case c.reloadEvery == 0 && c.adminSocket != "":
		return bad("-admin-socket is only used with -reload-every D")
	case c.reloadEvery > 0 && c.reloadEvery >= c.duration:
		return bad("-reload-every %v: the first reload is due at +%v, not within the measured -duration %v", c.reloadEvery, c.reloadEvery, c.duration)
	}
	for _, f := range c.faults {
		if f.at >= c.duration {
			return bad("-fault %s: due at %v, not within the measured -duration %v", f.text, f.at, c.duration)
		}
	}
	return nil
}
