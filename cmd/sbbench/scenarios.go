package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// openLoop starts the telsims and the daemon and returns the settings of
// an open loop at -rate against them.
func (sr *scenarioRun) openLoop(ctx context.Context) (*telsims, *daemon, config, error) {
	ts, d, err := sr.startStack(ctx, daemonOptions{})
	if err != nil {
		return nil, nil, config{}, err
	}
	cfg := sr.loadConfig(d)
	cfg.rate = sr.cfg.rate
	return ts, d, cfg, nil
}

// runSteady: an open loop at -rate on a healthy stack.
func runSteady(ctx context.Context, sr *scenarioRun) error {
	_, _, cfg, err := sr.openLoop(ctx)
	if err != nil {
		return err
	}
	p, err := sr.phase(ctx, "", cfg, nil)
	if err != nil {
		return err
	}
	sr.rep.check("front-end-visible errors while every tier can serve", float64(sum(p.Summary.Errors)), "= 0", sum(p.Summary.Errors) == 0)
	return nil
}

// runFailover: the open loop, with primary-large's telsim down from 1/3
// to 2/3 of the measured window.
func runFailover(ctx context.Context, sr *scenarioRun) error {
	ts, _, cfg, err := sr.openLoop(ctx)
	if err != nil {
		return err
	}
	third := sr.cfg.duration / 3
	for _, f := range []string{
		fmt.Sprintf("%s=%s@%s", ts.control[0], sr.cfg.fault, third),
		fmt.Sprintf("%s=none@%s", ts.control[0], 2*third),
	} {
		if err := cfg.faults.Set(f); err != nil {
			return err
		}
	}
	p, err := sr.phase(ctx, "", cfg, nil)
	if err != nil {
		return err
	}
	// OVERLOADED reaches the front end too: counted here with the errors.
	n := sum(p.Summary.Errors) + p.Summary.Overloaded
	sr.rep.check("front-end-visible errors (OVERLOADED included) while any tier can serve", float64(n), "= 0", n == 0)
	failed := 0
	for _, f := range p.Summary.Faults {
		if f.Result != resultOK {
			failed++
		}
	}
	sr.rep.check("fault injections that did not take effect", float64(failed), "= 0", failed == 0)
	if sr.cfg.fault == "blackhole" {
		// A silent tier costs a request at most its attempt deadline
		// before the next tier serves it; the bound leaves 100 ms for
		// that and for a loaded machine.
		ms := p.Summary.Max / 1000
		sr.rep.check("silent tier: slowest allocation, ms", ms, fmt.Sprintf("≤ %d (attempt timeout %d ms + 100)", attemptTimeoutMS+100, attemptTimeoutMS), ms <= attemptTimeoutMS+100)
	}
	return nil
}

// runReload: the open loop while the daemon reloads its configuration four
// times (an unchanged file: the whole reload path runs; the reload demo
// script alternates two files).
func runReload(ctx context.Context, sr *scenarioRun) error {
	_, d, cfg, err := sr.openLoop(ctx)
	if err != nil {
		return err
	}
	cfg.reloadEvery = sr.cfg.duration / 5
	cfg.adminSocket = d.admin
	cfg.step = max(minTimelineStep, min(cfg.step, cfg.reloadEvery/4).Truncate(time.Millisecond))
	p, err := sr.phase(ctx, "", cfg, nil)
	if err != nil {
		return err
	}
	n := sum(p.Summary.Errors)
	sr.rep.check("failed requests during reloads", float64(n), "= 0", n == 0)
	if r := p.Summary.Reloads; r != nil {
		sr.rep.check("failed reloads", float64(r.Failed), "= 0", r.Failed == 0)
		sr.rep.check("p99 of rows during a reload / p99 of the other rows", r.P99Ratio, "≤ 1.5", r.P99Ratio > 0 && r.P99Ratio <= 1.5)
	}
	return nil
}

// runOverload: a closed loop of -concurrency callers on 4 connections, far
// above what the pools carry; afterwards the breakers' states.
func runOverload(ctx context.Context, sr *scenarioRun) error {
	_, d, err := sr.startStack(ctx, daemonOptions{})
	if err != nil {
		return err
	}
	cfg := sr.loadConfig(d)
	cfg.concurrency = sr.cfg.concurrency
	cfg.conns = 4
	p, err := sr.phase(ctx, "", cfg, func(p *phaseReport) {
		p.Breakers = breakerStates(ctx, d.admin)
	})
	if err != nil {
		return err
	}
	n := p.Summary.Errors["UNAVAILABLE"]
	sr.rep.check("UNAVAILABLE answers under a burst", float64(n), "= 0", n == 0)
	open := 0
	for _, st := range p.Breakers {
		if st != "closed" {
			open++
		}
	}
	sr.rep.check("breakers not closed after the burst", float64(open), "= 0", open == 0 && len(p.Breakers) == len(tierNames))
	return nil
}

// breakerStates reads the daemon's tiers' breaker states (GET /status on
// its admin socket); nil when it does not answer.
func breakerStates(ctx context.Context, admin string) map[string]string {
	hc := newAdminHTTPClient(admin, 5*time.Second)
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://switchboard/status", nil)
	if err != nil {
		return nil
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var st struct {
		Tiers []struct {
			Name    string `json:"name"`
			Breaker string `json:"breaker"`
		} `json:"tiers"`
	}
	if json.NewDecoder(resp.Body).Decode(&st) != nil {
		return nil
	}
	m := map[string]string{}
	for _, t := range st.Tiers {
		m[t.Name] = t.Breaker
	}
	return m
}

// connsActive is how many front-end connections carry the load in the
// conns scenario; the others are open and idle.
const connsActive = 64

// runConns: for each -conns-list N, N front-end connections open (at most
// 64 of them busy with 64 closed-loop callers, the rest idle) while the
// load runs; the daemon's RSS with them open, the p99 and the throughput.
// Once each phase's load has ended, while its connections are still open,
// it reads the daemon's RSS and, from its /metrics, the connections it
// has open and those it cut or refused: a phase whose connections were
// not all open at the daemon measured something else, and its check says
// NOT met. The open-file limit is raised for the connections (the daemon
// inherits it) and server.max_conns set above the most it opens.
func runConns(ctx context.Context, sr *scenarioRun) error {
	most := slices.Max(sr.cfg.connsList)
	if err := raiseFileLimit(most + 256); err != nil { // the daemon inherits it
		return err
	}
	_, d, err := sr.startStack(ctx, daemonOptions{maxConns: most + 64, metrics: true})
	if err != nil {
		return err
	}
	var base *phaseReport
	for _, n := range sr.cfg.connsList {
		active := min(n, connsActive)
		idle, err := openIdle(ctx, d.socket, n-active)
		if err != nil {
			closeAll(idle)
			return fmt.Errorf("%d connections: %w", n, err)
		}
		cfg := sr.loadConfig(d)
		cfg.concurrency = connsActive
		cfg.conns = active
		var fc frontConns
		var ferr error
		p, err := sr.phase(ctx, fmt.Sprintf("%d-conns", n), cfg, func(p *phaseReport) {
			p.Conns = n
			p.DaemonRSSKB = d.proc.rssKB()
			fc, ferr = readFrontConns(ctx, d.metrics)
			p.DaemonConns = fc.open
		})
		closeAll(idle)
		if err != nil {
			return err
		}
		if ferr != nil {
			return fmt.Errorf("%d connections: the daemon's metrics: %w", n, ferr)
		}
		sr.rep.check(fmt.Sprintf("%d connections: open at the daemon at the end of the phase", n), float64(fc.open), fmt.Sprintf("= %d", n), fc.open == n)
		sr.rep.check(fmt.Sprintf("%d connections: cut or refused by the daemon so far", n), float64(fc.cutOrRefused), "= 0", fc.cutOrRefused == 0)
		if base == nil {
			base = p
		} else if n > base.Conns {
			p.RSSPerConnKB = float64(p.DaemonRSSKB-base.DaemonRSSKB) / float64(n-base.Conns)
		}
		fmt.Fprintf(sr.stdout, "%-20s daemon RSS %d KiB%s, %d connections open at the daemon, %d cut or refused\n",
			"", p.DaemonRSSKB, perConn(p), fc.open, fc.cutOrRefused)
	}
	for _, p := range sr.rep.Phases {
		sr.rep.check(fmt.Sprintf("%d connections: p99 µs", p.Conns), p.Summary.P99, "", true)
		sr.rep.check(fmt.Sprintf("%d connections: allocations/s", p.Conns), p.Summary.Rate, "", true)
		if p.RSSPerConnKB != 0 {
			sr.rep.check(fmt.Sprintf("%d connections: daemon RSS KiB per connection", p.Conns), p.RSSPerConnKB, "", true)
		}
	}
	return nil
}

// frontConns is what the daemon's /metrics says of its front-end
// connections: open now (switchboard_connections), and cut or refused
// since it started (switchboard_connections_cut_total, every reason, and
// switchboard_connections_refused_total).
type frontConns struct {
	open, cutOrRefused int
}

// readFrontConns scrapes frontConns from the daemon's /metrics on the
// Unix socket path.
func readFrontConns(ctx context.Context, path string) (frontConns, error) {
	var fc frontConns
	hc := newAdminHTTPClient(path, 5*time.Second) // any Unix socket: dials path for every URL
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://switchboard/metrics", nil)
	if err != nil {
		return fc, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fc, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fc, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fc, err
	}
	return parseFrontConns(string(body))
}

// parseFrontConns reads frontConns from the Prometheus text exposition.
func parseFrontConns(text string) (frontConns, error) {
	var fc frontConns
	seen := false
	for _, l := range strings.Split(text, "\n") {
		name, value, ok := strings.Cut(l, " ")
		if !ok || strings.HasPrefix(l, "#") {
			continue
		}
		family, _, _ := strings.Cut(name, "{")
		switch family {
		case "switchboard_connections", "switchboard_connections_cut_total", "switchboard_connections_refused_total":
		default:
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return fc, fmt.Errorf("metrics line %q: %w", l, err)
		}
		if family == "switchboard_connections" {
			fc.open, seen = int(v), true
		} else {
			fc.cutOrRefused += int(v)
		}
	}
	if !seen {
		return fc, errors.New("no switchboard_connections gauge in /metrics")
	}
	return fc, nil
}

// perConn renders a phase's RSS per extra connection, if it has one.
func perConn(p *phaseReport) string {
	if p.RSSPerConnKB == 0 {
		return ""
	}
	return fmt.Sprintf(", %.1f KiB per connection beyond the first phase's", p.RSSPerConnKB)
}

// openIdle opens n connections to socket that send nothing.
func openIdle(ctx context.Context, socket string, n int) ([]net.Conn, error) {
	var d net.Dialer
	conns := make([]net.Conn, 0, n)
	for range n {
		var c net.Conn
		err := retryBacklog(ctx, func() (err error) {
			c, err = d.DialContext(ctx, "unix", socket)
			return err
		})
		if err != nil {
			return conns, err
		}
		conns = append(conns, c)
	}
	return conns, nil
}

// retryBacklog calls dial until it does not fail with EAGAIN, which a Unix
// socket's connect returns while the listen backlog is full (the daemon
// has not accepted thousands of connections opened just before yet):
// after a millisecond, for up to readyTimeout.
func retryBacklog(ctx context.Context, dial func() error) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		err := dial()
		if err == nil || !errors.Is(err, syscall.EAGAIN) {
			return err
		}
		t := time.NewTimer(time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// raiseFileLimit raises this process's open-file soft limit to at least n
// (within the hard limit), so thousands of connections fit; the processes
// it starts inherit the limit. It fails when the hard limit is below n
// (raise it: ulimit -Hn, or the service manager's LimitNOFILE).
func raiseFileLimit(n int) error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("open-file limit: %w", err)
	}
	if rl.Cur >= uint64(n) {
		return nil
	}
	if rl.Max < uint64(n) {
		return fmt.Errorf("open-file hard limit %d is below the %d descriptors this needs: raise it (ulimit -Hn)", rl.Max, n)
	}
	rl.Cur = uint64(n)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("raising the open-file limit to %d: %w", n, err)
	}
	return nil
}

// peerTargets are the services of the throughput scenario, measured in
// this order in every round.
var peerTargets = []string{"switchboard", "http", "grpc-tuned"}

// peerLoads are the throughput scenario's loads: saturation and one caller.
var peerLoads = []struct {
	label          string
	callers, conns int
}{{"saturation", 64, 2}, {"one-caller", 1, 1}}

// runThroughput: switchboard (three telsims and the daemon), the net/http
// baseline (stub and front) and the tuned gRPC peer (three stubs and the
// front), all from bin/peerbench, measured by bin/peerbench load (the same
// client, request and cycle for each) in alternated rounds; the ratios are
// medians of the per-round ratios (bench/peers.sh has the full design).
func runThroughput(ctx context.Context, sr *scenarioRun) error {
	pb := filepath.Join(sr.cfg.bin, "peerbench")
	_, d, err := sr.startStack(ctx, daemonOptions{})
	if err != nil {
		return err
	}
	pids := map[string][]int{"switchboard": {d.proc.cmd.Process.Pid}}
	for _, c := range sr.procs.procs[:len(tierNames)] {
		pids["switchboard"] = append(pids["switchboard"], c.cmd.Process.Pid)
	}
	sockets := map[string]string{"switchboard": d.socket}

	stub, err := sr.readyPeer(ctx, "http-stub", "listen ", pb, "http-stub", "-listen", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sockets["http"] = filepath.Join(sr.dir, "http.sock")
	front, err := sr.readyPeer(ctx, "http-front", "ready ", pb, "http-front", "-socket", sockets["http"], "-stub", stub.addr)
	if err != nil {
		return err
	}
	pids["http"] = []int{stub.pid, front.pid}

	var tiers []string
	for _, tier := range tierNames {
		s, err := sr.readyPeer(ctx, "grpc-stub-"+tier, "listen ", pb, "grpc-stub", "-listen", "127.0.0.1:0", "-tier", tier, "-tuned")
		if err != nil {
			return err
		}
		tiers = append(tiers, tier+"="+s.addr)
		pids["grpc-tuned"] = append(pids["grpc-tuned"], s.pid)
	}
	sockets["grpc-tuned"] = filepath.Join(sr.dir, "grpc.sock")
	g, err := sr.readyPeer(ctx, "grpc-front", "ready ", pb, "grpc-front", "-socket", sockets["grpc-tuned"], "-tiers", strings.Join(tiers, ","), "-tuned")
	if err != nil {
		return err
	}
	pids["grpc-tuned"] = append(pids["grpc-tuned"], g.pid)

	start := time.Now()
	for _, load := range peerLoads {
		for round := 1; round <= sr.cfg.rounds; round++ {
			for _, t := range peerTargets {
				r, err := sr.peerLoad(ctx, pb, load.label, t, sockets[t], load.callers, load.conns, pids[t])
				if err != nil {
					return err
				}
				r.Round = round
				r.AtS = time.Since(start).Seconds()
				sr.rep.Peers = append(sr.rep.Peers, r)
				fmt.Fprintf(sr.stdout, "%-12s round %d %-12s %9.0f cycles/s  alloc p50 %.1f µs  p99 %.1f µs  %.1f µs CPU/cycle  errors %d\n",
					load.label, round, t, r.CyclesPerS, r.AllocP50, r.AllocP99, r.CPUPerCycle, r.AllocErrors+r.ReleaseErrors)
			}
		}
	}
	for _, load := range peerLoads {
		for _, peer := range peerTargets[1:] {
			x := peerRatio(sr.rep.Peers, load.label, peer)
			name := fmt.Sprintf("%s: switchboard cycles/s ÷ %s", load.label, peer)
			switch {
			case peer == "http" && load.label == "saturation":
				sr.rep.check(name, x, "≥ 10", x >= 10)
			case peer == "grpc-tuned" && load.label == "saturation":
				sr.rep.check(name, x, "≥ 6", x >= 6)
			case peer == "grpc-tuned":
				sr.rep.check(name, x, "≥ 3", x >= 3)
			default:
				sr.rep.check(name, x, "", true) // measured, no budget
			}
		}
	}
	return nil
}

// peerProc is a started peer server: its pid and the address it printed.
type peerProc struct {
	pid  int
	addr string
}

func (sr *scenarioRun) readyPeer(ctx context.Context, name, prefix, bin string, args ...string) (peerProc, error) {
	c, err := sr.procs.start(name, bin, args...)
	if err != nil {
		return peerProc{}, err
	}
	addr, err := c.line(ctx, prefix)
	if err != nil {
		return peerProc{}, err
	}
	sr.ready(c)
	return peerProc{pid: c.cmd.Process.Pid, addr: addr}, nil
}

// peerRun is one peerbench load run, as it prints it (the fields used
// here), with its round and when it began in the scenario.
type peerRun struct {
	Label         string  `json:"label"`
	Target        string  `json:"target"`
	Callers       int     `json:"callers"`
	Conns         int     `json:"conns"`
	Cycles        int     `json:"cycles"`
	CyclesPerS    float64 `json:"cycles_per_s"`
	AllocP50      float64 `json:"alloc_p50_us"`
	AllocP99      float64 `json:"alloc_p99_us"`
	CPUPerCycle   float64 `json:"cpu_us_per_cycle"`
	AllocErrors   int64   `json:"alloc_errors"`
	ReleaseErrors int64   `json:"release_errors"`
	FirstError    string  `json:"first_error,omitempty"`
	Round         int     `json:"round"`
	AtS           float64 `json:"at_s"`
}

// peerLoad runs bin/peerbench load once (a child process, bounded) and
// parses its JSON line.
func (sr *scenarioRun) peerLoad(ctx context.Context, bin, label, target, socket string, callers, conns int, pids []int) (peerRun, error) {
	ps := make([]string, len(pids))
	for i, p := range pids {
		ps[i] = fmt.Sprint(p)
	}
	lctx, cancel := context.WithTimeout(ctx, sr.cfg.warmup+sr.cfg.duration+60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(lctx, bin, "load", "-label", label, "-target", target, "-socket", socket,
		"-callers", fmt.Sprint(callers), "-conns", fmt.Sprint(conns), "-warmup", sr.cfg.warmup.String(),
		"-duration", sr.cfg.duration.String(), "-pids", strings.Join(ps, ","))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = childAttr()
	if err := cmd.Run(); err != nil {
		return peerRun{}, fmt.Errorf("peerbench load -target %s: %v: %s", target, err, strings.TrimSpace(errb.String()))
	}
	var r peerRun
	if err := json.NewDecoder(io.LimitReader(&out, 1<<20)).Decode(&r); err != nil {
		return peerRun{}, fmt.Errorf("peerbench load -target %s: %v", target, err)
	}
	return r, nil
}

// peerRatio is the median over rounds of switchboard's cycles/s divided by
// peer's in the same round, for load label; 0 without a complete round.
func peerRatio(runs []peerRun, label, peer string) float64 {
	byRound := map[int]map[string]float64{}
	for _, r := range runs {
		if r.Label != label {
			continue
		}
		if byRound[r.Round] == nil {
			byRound[r.Round] = map[string]float64{}
		}
		byRound[r.Round][r.Target] = r.CyclesPerS
	}
	var xs []float64
	for _, m := range byRound {
		if m["switchboard"] > 0 && m[peer] > 0 {
			xs = append(xs, m["switchboard"]/m[peer])
		}
	}
	return median(xs)
}

// median of xs (the mean of the middle two for an even count); 0 if empty.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}
