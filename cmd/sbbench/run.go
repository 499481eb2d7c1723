package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// run is the whole command, minus the process: main gives it a context
// that ends on SIGINT/SIGTERM and exits with what it returns. Errors are
// one line on stderr; the summary goes to stdout.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "scenario" {
		return runScenario(ctx, args[1:], stdout, stderr)
	}
	cfg, err := parseFlags(args, stdout)
	if code, done := parseExit(err, stderr, "sbbench -h"); done {
		return code
	}

	dctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	tgt, err := dialTarget(dctx, cfg.socket, cfg.conns)
	cancel()
	if err != nil {
		fail(stderr, fmt.Sprintf("dial %s: %v", cfg.socket, err))
		return exitFail
	}
	defer tgt.Close()

	s, lat := runLoad(ctx, &cfg, tgt, newProgress(stdout, ""))
	if cfg.hgrm != "" {
		if err := writeHgrmFile(cfg.hgrm, lat); err != nil {
			fail(stderr, "write -hgrm: "+err.Error())
			return exitFail
		}
	}
	if cfg.jsonOut {
		err = writeJSON(stdout, &s)
	} else {
		err = writeText(stdout, &s)
	}
	if err != nil {
		fail(stderr, "write summary: "+err.Error())
		return exitFail
	}
	return exitOK
}

// parseExit says whether a command line's parse ended the run, and with
// which status: 0 after -h or -version (errPrinted), 2 after a usage error
// (printed on stderr with a pointer to help), else not done.
func parseExit(err error, stderr io.Writer, help string) (code int, done bool) {
	switch {
	case errors.Is(err, errPrinted):
		return exitOK, true
	case err != nil:
		fail(stderr, strings.TrimPrefix(err.Error(), errUsage.Error()+": ")+" (see "+help+")")
		return exitUsage, true
	}
	return 0, false
}

// fail prints msg as exactly one line on w.
func fail(w io.Writer, msg string) {
	fmt.Fprintln(w, "sbbench: "+strings.ReplaceAll(msg, "\n", " "))
}

// runLoad is one run against tgt: the load, its faults and reloads, and
// the summary of it. It returns the summary and the histogram of the ok
// allocations' latencies (for -hgrm). prog, when not nil, sees every
// outcome too and draws the progress line on the terminal.
func runLoad(ctx context.Context, cfg *config, tgt target, prog *progress) (summary, *hdrhistogram.Histogram) {
	clk := realClock{spin: cfg.spin}
	start := clk.Now()
	from := start.Add(cfg.warmup) // the measured window, the timeline and the fault times start here
	rec := newRecorder(from)
	step := effectiveStep(cfg.step, cfg.duration)
	tl := newTimeline(from, step, cfg.duration)
	hc := newControlHTTPClient(cfg.timeout)
	defer hc.CloseIdleConnections()
	sched := newFaultScheduler(cfg.faults, timerClock{}, hc, cfg.timeout, from, tl)
	sched.start(ctx)
	var reloads *reloadScheduler
	if cfg.reloadEvery > 0 {
		ahc := newAdminHTTPClient(cfg.adminSocket, cfg.timeout)
		defer ahc.CloseIdleConnections()
		reloads = newReloadScheduler(cfg.adminSocket, cfg.reloadEvery, timerClock{}, ahc, cfg.timeout, from, from.Add(cfg.duration), tl)
		reloads.start(ctx)
	}
	r := &runner{
		spec: loadSpec{
			rate:        cfg.rate,
			concurrency: cfg.concurrency,
			warmup:      cfg.warmup,
			duration:    cfg.duration,
			requests:    cfg.requests,
			timeout:     cfg.timeout,
			maxInFlight: cfg.maxInFlight,
			releasers:   cfg.releasers,
		},
		tgt:   tgt,
		clk:   clk,
		obs:   fanout{rec, tl},
		build: newRequestBuilder(newRunID(), cfg.namePrefix, cfg.metaBytes, start),
	}
	if prog != nil {
		r.obs = append(r.obs.(fanout), prog)
		prog.start(from, cfg.duration)
	}
	stopped := r.run(ctx, start)
	prog.stop() // nil-safe: clears the line before the summary is printed
	injections := sched.stop()
	var rs *reloadSummary
	if reloads != nil {
		sum := reloads.stop()
		tl.reloadSplit(&sum)
		rs = &sum
	}

	s := rec.summary(stopped)
	s.Faults = injections
	s.Reloads = rs
	s.TimelineStepS = step.Seconds()
	s.Timeline = tl.snapshot(stopped)
	s.Mode = cfg.mode()
	s.TargetRate = cfg.rate
	s.Concurrency = cfg.concurrency
	s.Conns = cfg.conns
	s.Socket = cfg.socket
	s.WarmupS = cfg.warmup.Seconds()
	s.Interrupted = ctx.Err() != nil
	return s, rec.latency()
}
