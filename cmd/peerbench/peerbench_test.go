package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"switchboard/bench/grpcpeer"
	"switchboard/internal/testsupport"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestLoadMeasuresGRPCPeer runs load against an in-process gRPC peer (its
// processes' CPU is then this process's, "self") and checks the result
// counts cycles, latencies and CPU, and that every key was released.
func TestLoadMeasuresGRPCPeer(t *testing.T) {
	dir := testsupport.ShortTempDir(t)
	sock := filepath.Join(dir, "p.sock")
	svc, err := grpcpeer.Start(grpcpeer.Config{Socket: sock, AttemptTimeout: 5 * time.Second}, grpcpeer.Options{Tuned: true})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var out bytes.Buffer
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	args := []string{"-target", "grpc-tuned", "-socket", sock, "-callers", "4", "-conns", "2",
		"-warmup", "50ms", "-duration", "1s", "-label", "test", "-pids", "self"}
	if err := loadRole(ctx, fs, args, &out); err == nil {
		t.Fatal("-pids self accepted; want an error")
	}
	fs = flag.NewFlagSet("load", flag.ContinueOnError)
	args[len(args)-1] = "1" // init: any readable pid
	if err := loadRole(ctx, fs, args, &out); err != nil {
		t.Fatal(err)
	}
	var r Result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if r.Label != "test" || r.Target != "grpc-tuned" || r.Cycles == 0 || r.PerSecond <= 0 ||
		r.AllocP50 <= 0 || r.AllocP99 < r.AllocP50 || r.ReleaseP50 <= 0 || r.AllocErrors+r.ReleaseErrors != 0 {
		t.Fatalf("result %+v", r)
	}
	if _, ok := r.CPUByPID["self"]; !ok || r.CPUPerCycle <= 0 {
		t.Fatalf("CPU %v / %v", r.CPUPerCycle, r.CPUByPID)
	}
	if n := svc.Front.Live(); n != 0 {
		t.Fatalf("%d sessions left after the run; every cycle releases its key", n)
	}
	if st := svc.Stubs[0].Stats(); st.Reserved == 0 || st.Live != 0 {
		t.Fatalf("primary stub %+v", st)
	}
}

// TestSummarize checks the medians and the per-round ratios.
func TestSummarize(t *testing.T) {
	var rs []Result
	for i, sb := range []float64{1000, 3000, 2000} {
		rs = append(rs,
			Result{Label: "sat", Target: "switchboard", PerSecond: sb, CPUPerCycle: 10, AllocP50: 100, AllocP99: 200},
			Result{Label: "sat", Target: "grpc", PerSecond: sb / float64(2+i), CPUPerCycle: 40, AllocP50: 300, AllocP99: 200})
	}
	var out bytes.Buffer
	if err := summarize(rs, &out); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{
		"== sat",
		"switchboard vs grpc (median of 3 pairs): 3.00x cycles/s, 4.00x less CPU/cycle, alloc p50 3.00x lower, p99 1.00x lower; cycles/s ratio per pair: 2.00 3.00 4.00",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median of 1..4 = %v", got)
	}
}

// TestRoleHelp: a role's -h prints its flags on stdout and exits 0; a flag
// it does not know is a usage error (exit 2) reported on stderr.
func TestRoleHelp(t *testing.T) {
	for _, role := range []string{"grpc-stub", "grpc-front", "http-stub", "http-front", "load", "summarize"} {
		var out, errb bytes.Buffer
		if c := run([]string{role, "-h"}, &out, &errb); c != 0 || !strings.Contains(out.String(), "peerbench "+role) || errb.Len() != 0 {
			t.Errorf("peerbench %s -h: exit %d, stdout %q, stderr %q; want 0 and its flags on stdout", role, c, out.String(), errb.String())
		}
		out.Reset()
		errb.Reset()
		if c := run([]string{role, "-no-such-flag"}, &out, &errb); c != 2 || !strings.Contains(errb.String(), "no-such-flag") || out.Len() != 0 {
			t.Errorf("peerbench %s -no-such-flag: exit %d, stdout %q, stderr %q; want 2 and the error on stderr", role, c, out.String(), errb.String())
		}
	}
}
