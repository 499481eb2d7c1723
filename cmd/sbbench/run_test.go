package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"switchboard/bench/fakedaemon"
	"switchboard/client"
	"switchboard/wire"
)

type result struct {
	code           int
	stdout, stderr string
}

func sbbench(t *testing.T, ctx context.Context, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(ctx, args, &out, &errb)
	return result{code, out.String(), errb.String()}
}

func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// decodeSummary parses stdout as exactly one JSON object with every
// documented field, and checks sent = ok + Σ errors.
func decodeSummary(t *testing.T, stdout string) summary {
	t.Helper()
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(strings.NewReader(stdout))
	if err := dec.Decode(&raw); err != nil {
		t.Fatalf("stdout %q is not a JSON object: %v", stdout, err)
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON value: %q", stdout)
	}
	for _, f := range []string{"sent", "ok", "errors", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "rate", "by_tier", "duration_s",
		"released", "release_errors", "send_lag_p99_us", "interrupted", "faults", "timeline_step_s", "timeline"} {
		if _, ok := raw[f]; !ok {
			t.Fatalf("JSON summary lacks %q: %s", f, stdout)
		}
	}
	var s summary
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatal(err)
	}
	if s.Errors == nil || s.ByTier == nil {
		t.Fatalf("errors/by_tier must be objects, not null: %s", stdout)
	}
	if s.Sent != s.OK+sum(s.Errors) {
		t.Fatalf("sent %d != ok %d + errors %v", s.Sent, s.OK, s.Errors)
	}
	return s
}

func TestRunOpenLoopJSON(t *testing.T) {
	fd := fakedaemon.StartTB(t, fakedaemon.Config{})
	r := sbbench(t, bounded(t), "-socket", fd.Path(), "-rate", "2000", "-duration", "300ms", "-warmup", "50ms", "-conns", "2", "-json")
	if r.code != exitOK || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	s := decodeSummary(t, r.stdout)
	if s.Mode != "rate" || s.TargetRate != 2000 || s.Conns != 2 || s.Interrupted {
		t.Fatalf("summary %+v", s)
	}
	if s.Sent != 600 || s.OK == 0 {
		t.Fatalf("sent %d ok %d, want 600 sent (2000/s × 300ms)", s.Sent, s.OK)
	}
	if s.WarmupSent != 100 {
		t.Fatalf("warmup_sent %d, want 100", s.WarmupSent)
	}
	if s.ByTier[fakedaemon.DefaultTier] != s.OK {
		t.Fatalf("by_tier %v, ok %d", s.ByTier, s.OK)
	}
	if !(s.P50 > 0 && s.P50 <= s.P90 && s.P90 <= s.P99 && s.P99 <= s.P999 && s.P999 <= s.Max) {
		t.Fatalf("percentiles not ordered: %+v", s)
	}
	if s.DurationS < 0.3 || s.Rate <= 0 {
		t.Fatalf("duration_s %g rate %g", s.DurationS, s.Rate)
	}
	st := fd.Stats()
	if st.Live != 0 || st.Released != st.Allocated || st.Replayed != 0 || int64(st.Allocated) < s.OK {
		t.Fatalf("daemon after the run: %+v; every allocation must be released, none replayed", st)
	}
	if s.Released != int64(st.Released) || len(s.ReleaseErrors) != 0 {
		t.Fatalf("released %d (daemon %d), release errors %v", s.Released, st.Released, s.ReleaseErrors)
	}
}

func TestRunClosedLoopText(t *testing.T) {
	fd := fakedaemon.StartTB(t, fakedaemon.Config{Fail: func(op wire.Op, seq uint64) wire.Status {
		if op == wire.OpAllocate && seq%5 == 0 {
			return wire.StatusCapacity
		}
		return wire.StatusOK
	}})
	r := sbbench(t, bounded(t), "-socket", fd.Path(), "-concurrency", "4", "-requests", "200", "-duration", "1m", "-name-prefix", "ci")
	if r.code != exitOK || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	for _, want := range []string{"closed loop, 4 workers", "\nsent          200\n", "CAPACITY ", "latency µs    p50 ", "by tier       primary-large ", "releases "} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("text summary lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "send lag") {
		t.Fatalf("closed loop printed a send lag:\n%s", r.stdout)
	}
	if st := fd.Stats(); st.Live != 0 || st.Allocated+st.Replayed > 200 || st.Allocated == 0 {
		t.Fatalf("daemon after the run: %+v", st)
	}
}

// TestRunSlowDaemonShowsAsLatency: a daemon that answers 20 ms late cannot
// produce an allocation latency below 20 ms, whatever the generator does.
func TestRunSlowDaemonShowsAsLatency(t *testing.T) {
	fd := fakedaemon.StartTB(t, fakedaemon.Config{Delay: 20 * time.Millisecond})
	r := sbbench(t, bounded(t), "-socket", fd.Path(), "-rate", "500", "-duration", "200ms", "-json")
	if r.code != exitOK {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	s := decodeSummary(t, r.stdout)
	if s.OK == 0 || s.P50 < 20_000 {
		t.Fatalf("ok %d, p50 %.1f µs: want ≥ 20000 µs", s.OK, s.P50)
	}
	if st := fd.Stats(); st.Live != 0 {
		t.Fatalf("%d reservations left unreleased", st.Live)
	}
}

func TestRunInterrupted(t *testing.T) {
	fd := fakedaemon.StartTB(t, fakedaemon.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	r := sbbench(t, ctx, "-socket", fd.Path(), "-rate", "1000", "-duration", "1h", "-json")
	if r.code != exitOK {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("an interrupted run took %v", d)
	}
	s := decodeSummary(t, r.stdout)
	if !s.Interrupted {
		t.Fatal("summary does not say the run was interrupted")
	}
	if st := fd.Stats(); st.Live != 0 {
		t.Fatalf("%d reservations left unreleased after an interrupt", st.Live)
	}
}

func TestRunUsageAndDialErrors(t *testing.T) {
	oneLine := func(r result, code int, prefix string) {
		t.Helper()
		if r.code != code || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, prefix) {
			t.Fatalf("exit %d (want %d), stdout %q, stderr %q (want one line starting %q)", r.code, code, r.stdout, r.stderr, prefix)
		}
	}
	ctx := bounded(t)
	oneLine(sbbench(t, ctx, "-duration", "1s"), exitUsage, "sbbench: give exactly one of -rate N and -concurrency N")
	oneLine(sbbench(t, ctx, "-rate", "10", "-concurrency", "2"), exitUsage, "sbbench: give exactly one of")
	oneLine(sbbench(t, ctx, "-rate", "10", "-duration", "0s"), exitUsage, "sbbench: -duration must be positive")
	oneLine(sbbench(t, ctx, "-rate", "10", "extra"), exitUsage, "sbbench: unexpected argument \"extra\"")
	oneLine(sbbench(t, ctx, "-rate", "x"), exitUsage, "sbbench: invalid value \"x\" for flag -rate")
	missing := filepath.Join(t.TempDir(), "none.sock")
	oneLine(sbbench(t, ctx, "-socket", missing, "-rate", "10"), exitFail, "sbbench: dial "+missing+": ")

	r := sbbench(t, ctx, "-h")
	if r.code != exitOK || !strings.Contains(r.stdout, "-concurrency") || !strings.Contains(r.stdout, SocketEnv) || !strings.Contains(r.stdout, DefaultSocket) {
		t.Fatalf("-h: exit %d, stdout %q", r.code, r.stdout)
	}
	r = sbbench(t, ctx, "-version")
	if r.code != exitOK || r.stderr != "" || !strings.HasPrefix(r.stdout, "sbbench ") || !strings.Contains(r.stdout, " go1.") || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("-version: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestParseFlagsDefaults(t *testing.T) {
	t.Setenv(SocketEnv, "/tmp/from-env.sock")
	c, err := parseFlags([]string{"-rate", "100", "-conns", "3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.socket != "/tmp/from-env.sock" || c.duration != 10*time.Second || c.timeout != 5*time.Second ||
		c.maxInFlight != 3*client.DefaultMaxInFlight || c.releasers != 16 || c.metaBytes != 256 || c.mode() != "rate" {
		t.Fatalf("defaults %+v", c)
	}
	c, err = parseFlags([]string{"-concurrency", "2", "-max-inflight", "7", "-socket", "/x.sock"}, io.Discard)
	if err != nil || c.maxInFlight != 7 || c.socket != "/x.sock" || c.mode() != "concurrency" {
		t.Fatalf("parse: %+v, %v", c, err)
	}
}
