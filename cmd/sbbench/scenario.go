package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"switchboard/client"
)

// scenarioUsage is sbbench scenario -h.
const scenarioUsage = `usage: sbbench scenario NAME -out DIR [-bin DIR] [-duration D] [flags]

Starts what scenario NAME needs as real processes from -bin (the daemon
bin/switchboard, bin/telsim, for throughput bin/peerbench: make build) in a
temporary directory, runs it, stops every process, and writes into DIR:
NAME.json (the report), NAME.svg (one self-contained picture: latency and
throughput over time, per-tier share, fault and reload moments) and one
NAME[-PHASE].hgrm per load phase (wrk2-style percentile distribution);
-as BASE names them BASE.json and so on instead.

Scenarios:
  steady      open loop at -rate against three telsims
  failover    the same; primary-large's telsim goes down (-fault MODE) at 1/3
              of the window and recovers at 2/3
  reload      the same; the daemon reloads its configuration 4 times
  overload    closed loop, -concurrency 3000 on 4 connections (far above
              pool capacity): successes and OVERLOADED only, breakers closed
  conns       64 busy callers with -conns-list front-end connections open
              (the rest idle): daemon RSS per connection, p99, throughput;
              checks the daemon holds them all open (its /metrics). The
              open-file hard limit must exceed the largest count + 256
  throughput  switchboard, the net/http baseline and the tuned gRPC peer
              (bin/peerbench) at 64 callers on 2 connections and at one
              caller, -rounds rounds alternated: cycles/s and ratios

Flags:
`

// scenarioConfig is sbbench scenario's command line.
type scenarioConfig struct {
	name        string
	out         string        // report directory; created
	as          string        // base name of the files written; default the scenario's name
	bin         string        // binaries; default "bin"
	duration    time.Duration // measured window of each phase; default per scenario
	warmup      time.Duration // before each phase; default 500ms
	rate        float64       // open-loop scenarios; default 2000
	concurrency int           // overload: callers; default 3000
	connsList   []int         // conns: front-end connections per phase; default 1,64,1024
	transport   string        // daemon server.transport; default: the daemon's
	rounds      int           // throughput: rounds; default 1
	fault       string        // failover: the telsim fault mode on primary-large; default down
	keep        bool          // keep the temporary directory (logs) instead of removing it
}

// scenario is one named scenario: its default measured window and what it
// runs once its directory exists.
type scenario struct {
	duration time.Duration
	run      func(ctx context.Context, sc *scenarioRun) error
}

var scenarios = map[string]scenario{
	"steady":     {5 * time.Second, runSteady},
	"failover":   {6 * time.Second, runFailover},
	"reload":     {5 * time.Second, runReload},
	"overload":   {4 * time.Second, runOverload},
	"conns":      {3 * time.Second, runConns},
	"throughput": {3 * time.Second, runThroughput},
}

func scenarioNames() []string {
	names := make([]string, 0, len(scenarios))
	for n := range scenarios {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func parseScenario(args []string, stdout io.Writer) (scenarioConfig, error) {
	c := scenarioConfig{}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			fmt.Fprint(stdout, scenarioUsage)
			return c, errPrinted
		}
		return c, fmt.Errorf("%w: give a scenario: %s", errUsage, strings.Join(scenarioNames(), ", "))
	}
	c.name = args[0]
	sc, ok := scenarios[c.name]
	if !ok {
		return c, fmt.Errorf("%w: unknown scenario %q (want %s)", errUsage, c.name, strings.Join(scenarioNames(), ", "))
	}
	fs := flag.NewFlagSet("sbbench scenario", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.out, "out", "", "write the report, the picture and the .hgrm files into `dir` (created)")
	fs.StringVar(&c.as, "as", c.name, "base `name` of the files written (name.json, name.svg, name[-phase].hgrm)")
	fs.StringVar(&c.bin, "bin", "bin", "`dir` of the switchboard, telsim (and peerbench) binaries")
	fs.DurationVar(&c.duration, "duration", sc.duration, "measured `period` of each phase")
	fs.DurationVar(&c.warmup, "warmup", 500*time.Millisecond, "unmeasured `period` before each phase")
	fs.Float64Var(&c.rate, "rate", 2000, "steady, failover, reload: `N` allocations per second (open loop)")
	fs.IntVar(&c.concurrency, "concurrency", 3000, "overload: `N` closed-loop callers")
	conns := fs.String("conns-list", "1,64,1024", "conns: front-end `connections` of each phase, comma-separated")
	fs.StringVar(&c.transport, "transport", "", "the daemon's server.transport (`net` or netpoll; default: the daemon's)")
	fs.StringVar(&c.fault, "fault", "down", "failover: the telsim fault `mode` primary-large gets (down, reset, blackhole, …)")
	fs.IntVar(&c.rounds, "rounds", 1, "throughput: `N` rounds of every target, alternated")
	fs.BoolVar(&c.keep, "keep", false, "keep the temporary directory (configs, logs) and print its path")
	if err := parseFlagSet(fs, args[1:], stdout, scenarioUsage); err != nil {
		return c, err
	}
	if fs.NArg() != 0 {
		return c, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	for _, f := range strings.Split(*conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return c, fmt.Errorf("%w: -conns-list %q: want positive integers, comma-separated", errUsage, *conns)
		}
		c.connsList = append(c.connsList, n)
	}
	switch {
	case c.out == "":
		return c, fmt.Errorf("%w: -out DIR is required", errUsage)
	case c.as == "" || strings.ContainsAny(c.as, `/\`):
		return c, fmt.Errorf("%w: -as %q: want a file name without a directory", errUsage, c.as)
	case c.duration < 500*time.Millisecond:
		return c, fmt.Errorf("%w: -duration must be at least 500ms", errUsage)
	case c.warmup < 0:
		return c, fmt.Errorf("%w: -warmup must not be negative", errUsage)
	case c.rate <= 0 || c.rate > 1e6:
		return c, fmt.Errorf("%w: -rate must be within (0, 1000000]", errUsage)
	case c.concurrency < 1:
		return c, fmt.Errorf("%w: -concurrency must be at least 1", errUsage)
	case c.rounds < 1:
		return c, fmt.Errorf("%w: -rounds must be at least 1", errUsage)
	case !validFault(c.fault):
		return c, fmt.Errorf("%w: -fault %q: want a telsim fault mode without arguments (down, refuse, reset, blackhole, garbage, cut, full)", errUsage, c.fault)
	case c.transport != "" && c.transport != "net" && c.transport != "netpoll":
		return c, fmt.Errorf("%w: -transport %q: want net or netpoll", errUsage, c.transport)
	}
	return c, nil
}

// validFault reports whether mode is a fault the failover scenario can
// inject as MODE@SECONDS (a mode that needs no argument).
func validFault(mode string) bool {
	f, err := parseFaultSpec("127.0.0.1:1=" + mode + "@0")
	return err == nil && f.fault.Mode.String() != "none"
}

// scenarioDirName stands for the scenario's temporary directory in its
// report (sockets, configuration), which must not name a path of the
// machine it ran on.
const scenarioDirName = "SCENARIO_DIR"

// scenarioRun is one scenario in progress: its settings, its temporary
// directory and processes, and the report it fills.
type scenarioRun struct {
	cfg    scenarioConfig
	dir    string
	procs  procSet
	stdout io.Writer
	rep    *scenarioReport
	// started, when not nil, is called with each process once it is
	// ready: a test seam (a test stops the run from it, as Ctrl-C would).
	started func(c *child)
}

// runScenario is sbbench scenario: exit status as run's.
func runScenario(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseScenario(args, stdout)
	if code, done := parseExit(err, stderr, "sbbench scenario -h"); done {
		return code
	}
	sr := &scenarioRun{cfg: cfg, stdout: stdout}
	if err := sr.execute(ctx); err != nil {
		fail(stderr, "scenario "+cfg.name+": "+err.Error())
		return exitFail
	}
	return exitOK
}

// execute runs the scenario and writes its files. Every process it started
// is stopped and reaped before it returns, whatever happened.
func (sr *scenarioRun) execute(ctx context.Context) (err error) {
	given := sr.cfg.bin
	bin, err := filepath.Abs(given)
	if err != nil {
		return err
	}
	sr.cfg.bin = bin
	if err := os.MkdirAll(sr.cfg.out, 0o755); err != nil {
		return err
	}
	// A short path: Unix socket paths must fit in 108 bytes.
	sr.dir, err = os.MkdirTemp("", "sbscen")
	if err != nil {
		return err
	}
	sr.procs.dir = sr.dir
	sr.rep = newScenarioReport(&sr.cfg)
	defer func() {
		sr.rep.Processes = sr.procs.stop()
		if err != nil && sr.cfg.keep {
			err = fmt.Errorf("%w (logs in %s)", err, sr.dir)
		} else if err != nil {
			err = fmt.Errorf("%w%s", err, sr.logTails())
		}
		if sr.cfg.keep {
			fmt.Fprintf(sr.stdout, "kept %s\n", sr.dir)
		} else {
			os.RemoveAll(sr.dir)
		}
	}()
	if err := scenarios[sr.cfg.name].run(ctx, sr); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	sr.rep.Processes = sr.procs.stop()
	sr.rep.finish()
	return sr.rep.write(sr.cfg.out, sr.cfg.as, map[string]string{sr.dir: scenarioDirName, bin: given}, sr.stdout)
}

// logTails is the last lines of every process's stderr that wrote any,
// for the error message of a failed scenario.
func (sr *scenarioRun) logTails() string {
	var b strings.Builder
	for _, c := range sr.procs.procs {
		if t := c.tail(); t != "" {
			fmt.Fprintf(&b, "; %s: %s", c.name, t)
		}
	}
	return b.String()
}

// attemptTimeoutMS is each tier's attempt_timeout in the scenarios'
// daemon configuration: one RESERVE's deadline before the next tier.
const attemptTimeoutMS = 250

// tierNames are the telephony tiers, in the daemon's order.
var tierNames = []string{"primary-large", "nextgen", "backup2-large"}

// telsims are the three telephony processes of a scenario.
type telsims struct {
	listen, control []string // by tier
}

// startTelsims starts one bin/telsim per tier on loopback ports chosen by
// the kernel, each with its control API.
func (sr *scenarioRun) startTelsims(ctx context.Context) (*telsims, error) {
	ts := &telsims{}
	var kids []*child
	for _, tier := range tierNames {
		c, err := sr.procs.start("telsim-"+tier, filepath.Join(sr.cfg.bin, "telsim"),
			"-listen", "127.0.0.1:0", "-tier", tier, "-control", "127.0.0.1:0", "-log-level", "warn")
		if err != nil {
			return nil, err
		}
		kids = append(kids, c)
	}
	for _, c := range kids {
		l, err := c.line(ctx, "listen ")
		if err != nil {
			return nil, err
		}
		ctl, err := c.line(ctx, "control ")
		if err != nil {
			return nil, err
		}
		ts.listen, ts.control = append(ts.listen, l), append(ts.control, ctl)
		sr.ready(c)
	}
	return ts, nil
}

func (sr *scenarioRun) ready(c *child) {
	if sr.started != nil {
		sr.started(c)
	}
}

// daemon is the switchboard process of a scenario.
type daemon struct {
	proc    *child
	socket  string
	admin   string
	config  string
	metrics string // its metrics Unix socket, if daemonOptions.metrics; else ""
}

// daemonOptions are the few server settings a scenario changes.
type daemonOptions struct {
	maxConns int  // server.max_conns; 0: the daemon's default
	metrics  bool // serve /metrics on a Unix socket in the scenario's directory
}

// daemonConfig is the daemon's configuration file for telsims ts: the
// settings of configs/local-telsim.yaml (two warm connections per server,
// heartbeats, fast redials, breakers after 5 failures, 250 ms attempts)
// with log level warn.
func daemonConfig(ts *telsims, transport string, o daemonOptions) string {
	var b strings.Builder
	b.WriteString("# written by sbbench scenario\nlog:\n  level: warn\nserver:\n  max_in_flight: 4096\n  request_timeout: 2s\n")
	if transport != "" {
		fmt.Fprintf(&b, "  transport: %s\n", transport)
	}
	if o.maxConns > 0 {
		fmt.Fprintf(&b, "  max_conns: %d\n", o.maxConns)
	}
	b.WriteString("keys:\n  digits: 9\n  block_size: 4096\n" +
		"pool:\n  min_conns: 2\n  dial_timeout: 1s\n  heartbeat_interval: 1s\n  heartbeat_timeout: 1s\n  backoff_base: 50ms\n  backoff_max: 1s\n" +
		"breaker:\n  failures: 5\n  open_for: 2s\ntiers:\n")
	for i, tier := range tierNames {
		fmt.Fprintf(&b, "  - name: %s\n    servers: [tcp://%s]\n    attempt_timeout: %dms\n", tier, ts.listen[i], attemptTimeoutMS)
	}
	return b.String()
}

// startDaemon writes the daemon's configuration, creates its key space
// (switchboard -init-keys) and starts bin/switchboard with a front-end and
// an admin socket in the scenario's directory, then waits until it answers
// PING.
func (sr *scenarioRun) startDaemon(ctx context.Context, ts *telsims, o daemonOptions) (*daemon, error) {
	d := &daemon{
		socket: filepath.Join(sr.dir, "sb.sock"),
		admin:  filepath.Join(sr.dir, "admin.sock"),
		config: filepath.Join(sr.dir, "switchboard.yaml"),
	}
	if err := os.WriteFile(d.config, []byte(daemonConfig(ts, sr.cfg.transport, o)), 0o644); err != nil {
		return nil, err
	}
	data := filepath.Join(sr.dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	sb := filepath.Join(sr.cfg.bin, "switchboard")
	ictx, cancel := context.WithTimeout(ctx, readyTimeout)
	out, err := exec.CommandContext(ictx, sb, "-init-keys", "-config", d.config, "-data-dir", data).CombinedOutput()
	cancel()
	if err != nil {
		return nil, fmt.Errorf("switchboard -init-keys: %v: %s", err, strings.TrimSpace(string(out)))
	}
	args := []string{"-config", d.config, "-socket", d.socket, "-data-dir", data, "-admin-socket", d.admin}
	if o.metrics {
		d.metrics = filepath.Join(sr.dir, "metrics.sock")
		args = append(args, "-metrics-addr", "unix:"+d.metrics)
	}
	d.proc, err = sr.procs.start("switchboard", sb, args...)
	if err != nil {
		return nil, err
	}
	_, err = d.proc.until(ctx, func() (string, bool) {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		c, err := client.Dial(pctx, d.socket)
		if err != nil {
			return "", false
		}
		defer c.Close()
		return "", c.Ping(pctx) == nil
	})
	if err != nil {
		return nil, err
	}
	sr.ready(d.proc)
	return d, nil
}

// startStack starts the telsims and the daemon on them.
func (sr *scenarioRun) startStack(ctx context.Context, o daemonOptions) (*telsims, *daemon, error) {
	ts, err := sr.startTelsims(ctx)
	if err != nil {
		return nil, nil, err
	}
	d, err := sr.startDaemon(ctx, ts, o)
	return ts, d, err
}

// loadConfig is sbbench's run settings for a phase of this scenario
// against d: every default of sbbench's own flags, the scenario's warmup
// and duration.
func (sr *scenarioRun) loadConfig(d *daemon) config {
	c := config{
		socket:     d.socket,
		duration:   sr.cfg.duration,
		warmup:     sr.cfg.warmup,
		conns:      1,
		namePrefix: "sbbench " + sr.cfg.name,
		metaBytes:  256,
		timeout:    5 * time.Second,
		releasers:  16,
		step:       defaultTimelineStep,
	}
	if sr.cfg.duration <= 10*time.Second {
		c.step = 250 * time.Millisecond
	}
	return c
}

// phase runs one load phase against d with cfg (completed with its
// defaults), files its summary and latency distribution in the report,
// and prints its one-line result. extra, if not nil, runs once the load
// has ended, while the load's connections are still open.
func (sr *scenarioRun) phase(ctx context.Context, name string, cfg config, extra func(p *phaseReport)) (*phaseReport, error) {
	if cfg.rate > 0 && cfg.maxInFlight == 0 {
		cfg.maxInFlight = cfg.conns * client.DefaultMaxInFlight // as parseFlags does
	}
	var tgt *clientTarget
	err := retryBacklog(ctx, func() (err error) {
		dctx, cancel := context.WithTimeout(ctx, cfg.timeout)
		defer cancel()
		tgt, err = dialTarget(dctx, cfg.socket, cfg.conns)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("phase %s: dial %s: %w", name, cfg.socket, err)
	}
	label := sr.cfg.name
	if name != "" {
		label += " " + name
	}
	s, lat := runLoad(ctx, &cfg, tgt, newProgress(sr.stdout, label))
	p := &phaseReport{Name: name, Summary: s, lat: lat}
	if extra != nil {
		extra(p)
	}
	tgt.Close()
	sr.rep.Phases = append(sr.rep.Phases, p)
	fmt.Fprintf(sr.stdout, "%-20s ok %d  overloaded %d  errors %d%s  %.0f/s  p50 %.1f µs  p99 %.1f µs  by tier: %s\n",
		label, s.OK, s.Overloaded, sum(s.Errors), paren(counts(s.Errors)), s.Rate, s.P50, s.P99, counts(s.ByTier))
	return p, nil
}
