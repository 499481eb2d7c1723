package main

import (
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/bench/fakedaemon"
	"switchboard/telsim"
	"switchboard/wire"
)

func TestParseFaultSpec(t *testing.T) {
	for _, c := range []struct {
		in   string
		addr string
		f    telsim.Fault
		at   time.Duration
	}{
		{"127.0.0.1:7201=down@3", "127.0.0.1:7201", telsim.Fault{Mode: telsim.ModeDown}, 3 * time.Second},
		{"127.0.0.1:7201=none@6", "127.0.0.1:7201", telsim.Fault{Mode: telsim.ModeNone}, 6 * time.Second},
		{"127.0.0.1:7101=slow:latency=5ms,jitter=1ms@3", "127.0.0.1:7101",
			telsim.Fault{Mode: telsim.ModeSlow, Latency: 5 * time.Millisecond, Jitter: time.Millisecond}, 3 * time.Second},
		{"127.0.0.1:1=errors:fraction=0.25@2.5", "127.0.0.1:1", telsim.Fault{Mode: telsim.ModeErrors, Fraction: 0.25}, 2500 * time.Millisecond},
		{"127.0.0.1:1=flap:period=200ms@1500ms", "127.0.0.1:1", telsim.Fault{Mode: telsim.ModeFlap, Period: 200 * time.Millisecond}, 1500 * time.Millisecond},
		{"http://127.0.0.1:9=blackhole@0", "http://127.0.0.1:9", telsim.Fault{Mode: telsim.ModeBlackhole}, 0},
		{"[::1]:7201=slow@1", "[::1]:7201", telsim.Fault{Mode: telsim.ModeSlow}, time.Second},
	} {
		got, err := parseFaultSpec(c.in)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if got.addr != c.addr || got.fault != c.f || got.at != c.at || got.text != c.in {
			t.Errorf("%s: got %+v", c.in, got)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"127.0.0.1:7201=down", "want ADDR=MODE@SECONDS"},
		{"down@3", "want ADDR=MODE@SECONDS"},
		{"=down@3", "empty control address"},
		{"localhost=down@3", "want host:port"},
		{"127.0.0.1:7201=sideways@3", `unknown mode "sideways"`},
		{"127.0.0.1:7201=down:latency=5ms@3", "mode down takes no arguments"},
		{"127.0.0.1:7201=slow:period=5ms@3", `mode slow takes latency and jitter, not "period"`},
		{"127.0.0.1:7201=slow:latency@3", `argument "latency": want K=V`},
		{"127.0.0.1:7201=slow:latency=-5ms@3", "non-negative duration"},
		{"127.0.0.1:7201=slow:latency=1ms,latency=2ms@3", "given twice"},
		{"127.0.0.1:7201=errors:fraction=1.5@3", "want a number in [0, 1]"},
		{"127.0.0.1:7201=down@-1", "not negative"},
		{"127.0.0.1:7201=down@soon", "want seconds"},
		{"127.0.0.1:7201=down@NaN", "want seconds"},
	} {
		_, err := parseFaultSpec(c.in)
		if !errors.Is(err, errBadFaultSpec) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.in, err, c.want)
		}
	}
}

func TestFaultFlags(t *testing.T) {
	c, err := parseFlags([]string{"-rate", "10", "-duration", "10s",
		"-fault", "127.0.0.1:7201=down@3", "-fault", "127.0.0.1:7201=none@6"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.faults) != 2 || c.faults[1].at != 6*time.Second || c.step != time.Second {
		t.Fatalf("faults %+v step %v", c.faults, c.step)
	}
	for _, args := range [][]string{
		{"-rate", "10", "-duration", "5s", "-fault", "127.0.0.1:7201=down@5"},
		{"-rate", "10", "-fault", "127.0.0.1:7201=down"},
		{"-rate", "10", "-timeline-step", "10us"},
	} {
		if _, err := parseFlags(args, nil); !errors.Is(err, errUsage) {
			t.Errorf("%q: error %v, want a usage error", args, err)
		}
	}
}

func TestEffectiveStep(t *testing.T) {
	for _, c := range []struct{ step, dur, want time.Duration }{
		{time.Second, 10 * time.Second, time.Second},
		{time.Second, 600 * time.Second, time.Second},
		{time.Second, time.Hour, 6 * time.Second},
		{10 * time.Millisecond, 10 * time.Second, 17 * time.Millisecond},
		{100 * time.Millisecond, 300 * time.Millisecond, 100 * time.Millisecond},
	} {
		got := effectiveStep(c.step, c.dur)
		if got != c.want || (c.dur+got-1)/got > maxTimelineRows {
			t.Errorf("effectiveStep(%v, %v) = %v, want %v", c.step, c.dur, got, c.want)
		}
	}
}

// TestTimelineBuckets feeds outcomes straight to a timeline.
func TestTimelineBuckets(t *testing.T) {
	from := time.Unix(1_800_000_000, 0)
	tl := newTimeline(from, time.Second, 4*time.Second)
	at := func(d time.Duration) time.Time { return from.Add(d) }
	for _, o := range []outcome{
		{intended: at(-time.Millisecond), done: at(0), tier: "primary-large"}, // warmup: ignored
		{intended: at(0), done: at(100 * time.Microsecond), tier: "primary-large"},
		{intended: at(999 * time.Millisecond), done: at(1500 * time.Millisecond), tier: "primary-large"}, // due in row 0, answered in row 1
		{intended: at(1 * time.Second), done: at(1*time.Second + 300*time.Microsecond), tier: "nextgen"},
		{intended: at(1500 * time.Millisecond), done: at(2 * time.Second), err: &wire.RemoteError{Status: wire.StatusUnavailable}},
		{intended: at(1600 * time.Millisecond), done: at(1600 * time.Millisecond), err: errClientBacklog},
		{intended: at(9 * time.Second), done: at(9 * time.Second), tier: "backup2-large"}, // past the window: last row
	} {
		tl.allocation(&o)
	}
	tl.injected(&injection{Addr: "a", Fault: "down", IssuedS: 1.25, Result: resultOK})
	tl.injected(&injection{Addr: "b", Fault: "none", IssuedS: 1.0, Result: resultFailed})

	rows := tl.snapshot(at(4 * time.Second))
	if len(rows) != 4 {
		t.Fatalf("%d rows, want 4", len(rows))
	}
	r0, r1, r2, r3 := rows[0], rows[1], rows[2], rows[3]
	if r0.T != 0 || r0.Sent != 2 || r0.OK != 2 || r0.ByTier["primary-large"] != 2 || len(r0.Errors) != 0 {
		t.Errorf("row 0: %+v", r0)
	}
	if math.Abs(r0.P50-100) > 1 || math.Abs(r0.P99-501_000) > 5010 {
		t.Errorf("row 0: p50 %.1f p99 %.1f, want ≈100 and ≈501000 µs", r0.P50, r0.P99)
	}
	if r1.T != 1 || r1.Sent != 3 || r1.OK != 1 || r1.ByTier["nextgen"] != 1 || r1.Errors["UNAVAILABLE"] != 1 || r1.Errors[codeBacklog] != 1 {
		t.Errorf("row 1: %+v", r1)
	}
	if len(r1.Faults) != 2 || r1.Faults[0].Addr != "b" || r1.Faults[1].Addr != "a" {
		t.Errorf("row 1 faults %+v, want b then a (by issue time)", r1.Faults)
	}
	if r2.Sent != 0 || r2.P50 != 0 || r2.Errors == nil || r2.ByTier == nil || r2.Faults == nil {
		t.Errorf("row 2 (empty) %+v: zeros and empty, non-nil maps", r2)
	}
	if r3.T != 3 || r3.ByTier["backup2-large"] != 1 {
		t.Errorf("row 3: %+v (a late outcome belongs to the last row)", r3)
	}
	// A run that ended early has rows only up to its end.
	tl = newTimeline(from, time.Second, 10*time.Second)
	if rows := tl.snapshot(at(2500 * time.Millisecond)); len(rows) != 3 {
		t.Fatalf("%d rows for a run stopped at 2.5 s, want 3", len(rows))
	}
}

// simTier is an in-process telsim with its control API on an httptest
// server. applied receives each fault the control API set.
type simTier struct {
	srv     *telsim.Server
	ctl     *httptest.Server
	applied chan telsim.Fault
}

func startSimTier(t *testing.T) *simTier {
	t.Helper()
	srv, err := telsim.New(telsim.Config{Tier: "primary-large"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	if _, err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	st := &simTier{srv: srv, applied: make(chan telsim.Fault, 16)}
	h := srv.ControlHandler()
	st.ctl = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if r.Method == http.MethodPost {
			st.applied <- srv.Fault()
		}
	}))
	t.Cleanup(st.ctl.Close)
	return st
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	_ = ln.Close()
	return a
}

func mustFaults(t *testing.T, specs ...string) []faultSpec {
	t.Helper()
	var l faultList
	for _, s := range specs {
		if err := l.Set(s); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// injectionLog forwards injections to a timeline and to a channel, so a
// test can wait for each one.
type injectionLog struct {
	tl *timeline
	ch chan injection
}

func (l *injectionLog) injected(inj *injection) {
	l.tl.injected(inj)
	l.ch <- *inj
}

// failoverTarget stands in for a daemon in front of the telsim tier: every
// allocation is a real round trip to the fake daemon, served by
// primary-large while the telsim is healthy and by nextgen (2 ms later,
// 5 ms for one request in 50) while it is not; the first allocation after
// the telsim goes down fails UNAVAILABLE. Before each allocation it waits
// until every fault due by then has been reported, so a run on a fake clock
// is deterministic.
type failoverTarget struct {
	t        *testing.T
	inner    *clientTarget
	clk      *fakeClock
	sim      *simTier
	from     time.Time
	due      []time.Duration // fault times, sorted
	log      chan injection
	reported int
	failNext *atomic.Bool
	wasDown  bool
	n        int
}

func (f *failoverTarget) Allocate(ctx context.Context, req *wire.AllocateRequest) (uint64, string, error) {
	now := f.clk.Now()
	for f.reported < len(f.due) && !f.from.Add(f.due[f.reported]).After(now) {
		select {
		case <-f.log:
			f.reported++
		case <-time.After(10 * time.Second):
			f.t.Errorf("fault %d, due at +%v, not reported by fake time +%v", f.reported, f.due[f.reported], now.Sub(f.from))
			return 0, "", errors.New("test: fault not injected")
		}
	}
	down := f.sim.srv.Fault().Mode != telsim.ModeNone
	if down && !f.wasDown {
		f.failNext.Store(true)
	}
	f.wasDown = down
	key, tier, err := f.inner.Allocate(ctx, req)
	f.n++
	if err != nil || !down {
		return key, tier, err
	}
	d := 2 * time.Millisecond
	if f.n%50 == 0 {
		d = 5 * time.Millisecond
	}
	f.clk.advance(d)
	return key, "nextgen", nil
}

func (f *failoverTarget) Release(ctx context.Context, key uint64) error {
	return f.inner.Release(ctx, key)
}

// TestFaultScheduleDrivesTimeline runs 100 allocations/s for 8 s after a
// 1 s warmup on a fake clock, with the telsim taken down at +3 s and back
// at +6 s, a fault on an address nobody listens on at +2 s, and one due
// after the run. Each fault must be issued exactly at its second, the
// telsim must be in the fault from then on, and the timeline must show
// the failover row by row.
func TestFaultScheduleDrivesTimeline(t *testing.T) {
	sim := startSimTier(t)
	ctl := sim.ctl.Listener.Addr().String()
	dead := deadAddr(t)
	var failNext atomic.Bool
	fd := fakedaemon.StartTB(t, fakedaemon.Config{Fail: func(op wire.Op, _ uint64) wire.Status {
		if op == wire.OpAllocate && failNext.CompareAndSwap(true, false) {
			return wire.StatusUnavailable
		}
		return wire.StatusOK
	}})
	inner, err := dialTarget(bounded(t), fd.Path(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()

	clk := newFakeClock()
	start := clk.Now()
	from := start.Add(time.Second)
	const duration = 8 * time.Second
	tl := newTimeline(from, time.Second, duration)
	rec := newRecorder(from)
	log := &injectionLog{tl: tl, ch: make(chan injection, 8)}
	specs := mustFaults(t, ctl+"=down@3", dead+"=down@2", ctl+"=none@6", ctl+"=slow:latency=5ms@9")
	hc := newControlHTTPClient(5 * time.Second)
	defer hc.CloseIdleConnections()
	sched := newFaultScheduler(specs, follower{clk}, hc, 5*time.Second, from, log)

	tgt := &failoverTarget{t: t, inner: inner, clk: clk, sim: sim, from: from, log: log.ch, failNext: &failNext,
		due: []time.Duration{2 * time.Second, 3 * time.Second, 6 * time.Second}}
	r := testRunner(clk, tgt, fanout{rec, tl}, loadSpec{rate: 100, warmup: time.Second, duration: duration})
	r.inline = true
	ctx := bounded(t)
	sched.start(ctx)
	stopped := r.run(ctx, start)
	faults := sched.stop()
	if t.Failed() {
		t.FailNow()
	}

	// The injections: at their second exactly, in time order.
	want := []struct {
		addr, mode, result string
		at                 float64
	}{
		{dead, "down", resultFailed, 2},
		{ctl, "down", resultOK, 3},
		{ctl, "none", resultOK, 6},
		{ctl, "slow", resultSkipped, 9},
	}
	if len(faults) != len(want) {
		t.Fatalf("%d injections: %+v", len(faults), faults)
	}
	for i, w := range want {
		f := faults[i]
		if f.Addr != w.addr || f.Mode != w.mode || f.Result != w.result || f.AtS != w.at {
			t.Errorf("injection %d: %+v, want %+v", i, f, w)
		}
		if w.result != resultSkipped && f.IssuedS != w.at {
			t.Errorf("injection %d issued at +%gs, want +%gs", i, f.IssuedS, w.at)
		}
	}
	if faults[0].Error == "" || faults[1].InForce != "down" || faults[2].InForce != "none" || faults[3].Error == "" {
		t.Errorf("injection details: %+v", faults)
	}
	if m := sim.srv.Fault().Mode; m != telsim.ModeNone {
		t.Errorf("telsim left in %v; the fault due after the run must not be injected", m)
	}
	if len(sim.applied) != 2 {
		t.Errorf("%d control calls reached the telsim, want 2", len(sim.applied))
	}

	// The timeline, row by row.
	rows := tl.snapshot(stopped)
	if len(rows) != 8 {
		t.Fatalf("%d rows, want 8", len(rows))
	}
	for i, row := range rows {
		if row.T != float64(i) || row.Sent != 100 {
			t.Errorf("row %d: t %g sent %d, want %d and 100", i, row.T, row.Sent, i)
		}
		var faultsHere []string
		for _, f := range row.Faults {
			faultsHere = append(faultsHere, f.Mode+" "+f.Result)
		}
		got := strings.Join(faultsHere, ",")
		switch i {
		case 0, 1, 6, 7:
			if row.OK != 100 || row.ByTier["primary-large"] != 100 || len(row.ByTier) != 1 || row.P50 != 0 || row.P99 != 0 {
				t.Errorf("row %d (healthy): %+v", i, row)
			}
		case 2:
			if row.OK != 100 || row.ByTier["primary-large"] != 100 {
				t.Errorf("row 2 (failed injection, nothing changes): %+v", row)
			}
		case 3:
			if row.OK != 99 || row.Errors["UNAVAILABLE"] != 1 || row.ByTier["nextgen"] != 99 || row.ByTier["primary-large"] != 0 {
				t.Errorf("row 3 (down): %+v", row)
			}
			if math.Abs(row.P50-2000) > 20 {
				t.Errorf("row 3 p50 %.1f µs, want ≈2000", row.P50)
			}
		case 4, 5:
			if row.OK != 100 || row.ByTier["nextgen"] != 100 || len(row.ByTier) != 1 {
				t.Errorf("row %d (down): %+v", i, row)
			}
			if math.Abs(row.P50-2000) > 20 || math.Abs(row.P99-5000) > 50 {
				t.Errorf("row %d: p50 %.1f p99 %.1f µs, want ≈2000 and ≈5000", i, row.P50, row.P99)
			}
		}
		wantFaults := map[int]string{2: "down failed", 3: "down ok", 6: "none ok"}[i]
		if got != wantFaults {
			t.Errorf("row %d faults %q, want %q", i, got, wantFaults)
		}
	}

	// The rows add up to the summary.
	s := rec.summary(stopped)
	var sent, ok int64
	for _, row := range rows {
		sent += row.Sent
		ok += row.OK
	}
	if sent != s.Sent || ok != s.OK || s.ByTier["nextgen"] != 299 || s.ByTier["primary-large"] != 500 {
		t.Errorf("rows: sent %d ok %d; summary %+v", sent, ok, s)
	}
	if st := fd.Stats(); st.Live != 0 {
		t.Errorf("%d reservations left unreleased", st.Live)
	}
}

// TestFaultSchedulerStopsPromptly: faults far in the future are skipped
// when the run ends, without waiting for their time.
func TestFaultSchedulerStopsPromptly(t *testing.T) {
	hc := newControlHTTPClient(time.Second)
	defer hc.CloseIdleConnections()
	specs := mustFaults(t, "127.0.0.1:9=down@100000", "127.0.0.1:9=none@3", "127.0.0.1:10=none@7")
	s := newFaultScheduler(specs, timerClock{}, hc, time.Second, time.Now(), nil)
	s.start(context.Background())
	begin := time.Now()
	res := s.stop()
	if d := time.Since(begin); d > 5*time.Second {
		t.Fatalf("stop took %v", d)
	}
	if len(res) != 3 || res[0].AtS != 3 || res[1].AtS != 7 || res[2].AtS != 100000 {
		t.Fatalf("results %+v, want time order", res)
	}
	for _, r := range res {
		if r.Result != resultSkipped {
			t.Fatalf("result %+v, want skipped", r)
		}
	}
	if again := s.stop(); len(again) != 3 {
		t.Fatal("second stop")
	}
}

// TestRunFaultEndToEnd drives the whole command in real time: a fault is
// injected into a real telsim control API and shows in the JSON and text
// output.
func TestRunFaultEndToEnd(t *testing.T) {
	sim := startSimTier(t)
	ctl := sim.ctl.Listener.Addr().String()
	dead := deadAddr(t)
	fd := fakedaemon.StartTB(t, fakedaemon.Config{})
	r := sbbench(t, bounded(t), "-socket", fd.Path(), "-rate", "500", "-duration", "1s", "-timeline-step", "250ms", "-json",
		"-fault", ctl+"=slow:latency=5ms,jitter=1ms@0.2", "-fault", dead+"=down@0.1")
	if r.code != exitOK || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	s := decodeSummary(t, r.stdout)
	if len(s.Faults) != 2 {
		t.Fatalf("faults %+v", s.Faults)
	}
	bad, slow := s.Faults[0], s.Faults[1]
	if bad.Result != resultFailed || bad.Addr != dead || bad.Error == "" || bad.IssuedS < 0.1 {
		t.Errorf("failed injection: %+v", bad)
	}
	if slow.Result != resultOK || slow.InForce != "slow latency=5ms jitter=1ms" || slow.IssuedS < 0.2 || slow.AtS != 0.2 {
		t.Errorf("injection: %+v", slow)
	}
	if f := sim.srv.Fault(); f.Mode != telsim.ModeSlow || f.Latency != 5*time.Millisecond {
		t.Errorf("telsim fault %v", f)
	}
	if s.TimelineStepS != 0.25 || len(s.Timeline) != 4 {
		t.Fatalf("timeline step %g, %d rows", s.TimelineStepS, len(s.Timeline))
	}
	var sent int64
	var seen int
	for _, row := range s.Timeline {
		sent += row.Sent
		seen += len(row.Faults)
	}
	if sent != s.Sent || sent != 500 || seen != 2 {
		t.Errorf("timeline: sent %d (summary %d), %d faults", sent, s.Sent, seen)
	}

	r = sbbench(t, bounded(t), "-socket", fd.Path(), "-rate", "200", "-duration", "500ms",
		"-fault", ctl+"=none@0", "-fault", ctl+"=full@10ms")
	if r.code != exitOK || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	for _, want := range []string{
		"faults        +0.0", ctl + " none: ok in ", "(in force: none)",
		ctl + " full: ok in ", "timeline      rows of 1s from the end of warmup",
		"t  sent   ok  overloaded  errors", "primary-large  ", "fault " + ctl + " none ok; fault " + ctl + " full ok",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("text output lacks %q:\n%s", want, r.stdout)
		}
	}
	if sim.srv.Fault().Mode != telsim.ModeFull {
		t.Errorf("telsim fault %v, want full", sim.srv.Fault())
	}
	t.Log("\n" + r.stdout)
}
