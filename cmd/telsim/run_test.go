package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"switchboard/internal/testsupport"
	"switchboard/telsim"
	"switchboard/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testTimeout = 5 * time.Second

// startTelsim runs the serve command in a goroutine and returns its
// telephony and control addresses; stop cancels it and returns its exit
// code.
func startTelsim(t *testing.T, args ...string) (listen, control string, stderr *testsupport.Buffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr = &testsupport.Buffer{}
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, args, pw, stderr)
		_ = pw.Close()
	}()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	for listen == "" || control == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				cancel()
				t.Fatalf("telsim exited early with %d: %s", <-code, stderr.String())
			}
			k, v, _ := strings.Cut(l, " ")
			switch k {
			case "listen":
				listen = v
			case "control":
				control = v
			default:
				t.Fatalf("unexpected stdout line %q", l)
			}
		case <-time.After(testTimeout):
			cancel()
			t.Fatal("telsim did not print its addresses")
		}
	}
	var once sync.Once
	var rc int
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case rc = <-code:
			case <-time.After(testTimeout):
				t.Fatal("telsim did not stop")
			}
			for range lines {
			}
		})
		return rc
	}
	t.Cleanup(func() { stop() })
	return listen, control, stderr, stop
}

// hello does one HELLO round trip over TCP.
func hello(t *testing.T, addr string) wire.HelloResponse {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(testTimeout))
	req, _ := wire.AppendFrame(nil, wire.Header{Op: wire.OpHello, ID: 7}, &wire.Hello{Client: []byte("t")}, wire.DefaultMaxFrame)
	if _, err := nc.Write(req); err != nil {
		t.Fatal(err)
	}
	h, p, _, err := wire.ReadFrame(bufio.NewReader(nc), nil, wire.DefaultMaxFrame)
	if err != nil || h.ID != 7 || h.Status != wire.StatusOK {
		t.Fatalf("HELLO: %+v %v", h, err)
	}
	var r wire.HelloResponse
	if err := r.Decode(p); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestServeFaultStats(t *testing.T) {
	listen, control, stderr, stop := startTelsim(t,
		"-listen", "127.0.0.1:0", "-tier", "nextgen", "-capacity", "42", "-latency", "1ms",
		"-id", "sim-ng-1", "-control", "127.0.0.1:0", "-seed", "3")
	r := hello(t, listen)
	if string(r.Server) != "sim-ng-1" || string(r.Tier) != "nextgen" || r.Load.Capacity != 42 {
		t.Fatalf("HELLO reply %q %q %+v", r.Server, r.Tier, r.Load)
	}

	ctx := context.Background()
	var out, errOut testsupport.Buffer
	if code := run(ctx, []string{"fault", "-control", control, "slow", "-latency", "5ms", "-jitter", "1ms"}, &out, &errOut); code != exitOK {
		t.Fatalf("fault slow: exit %d: %s", code, errOut.String())
	}
	var f telsim.Fault
	if err := json.Unmarshal([]byte(out.String()), &f); err != nil || f != (telsim.Fault{Mode: telsim.ModeSlow, Latency: 5 * time.Millisecond, Jitter: time.Millisecond}) {
		t.Fatalf("fault output %q: %v", out.String(), err)
	}

	out.Reset()
	if code := run(ctx, []string{"fault", "down", "-control", control}, &out, &errOut); code != exitOK {
		t.Fatalf("fault down: exit %d: %s", code, errOut.String())
	}
	if _, err := net.DialTimeout("tcp", listen, testTimeout); err == nil {
		t.Fatal("dial succeeded while down")
	}
	if code := run(ctx, []string{"fault", "-control", control, "none"}, io.Discard, &errOut); code != exitOK {
		t.Fatalf("fault none: exit %d: %s", code, errOut.String())
	}
	hello(t, listen) // same address again

	out.Reset()
	if code := run(ctx, []string{"stats", "-control", control}, &out, &errOut); code != exitOK {
		t.Fatalf("stats: exit %d: %s", code, errOut.String())
	}
	var st telsim.Stats
	if err := json.Unmarshal([]byte(out.String()), &st); err != nil {
		t.Fatalf("stats output %q: %v", out.String(), err)
	}
	if st.Hellos != 2 || st.ServerID != "sim-ng-1" || st.Faults.Downs != 1 || st.Faults.Relistens != 1 {
		t.Fatalf("stats %+v", st)
	}

	// A fault the server rejects is a failure, not a usage error.
	errOut.Reset()
	if code := run(ctx, []string{"fault", "-control", control, "errors", "-fraction", "3"}, io.Discard, &errOut); code != exitFail ||
		!strings.Contains(errOut.String(), "fraction") {
		t.Fatalf("fault errors -fraction 3: exit %d: %s", code, errOut.String())
	}

	if code := stop(); code != exitOK {
		t.Fatalf("exit %d after cancel: %s", code, stderr.String())
	}
	logs := stderr.String()
	for _, want := range []string{`"msg":"telsim serving"`, `"msg":"fault set"`, `"msg":"shutting down"`, `"msg":"telsim stopped"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	if _, err := net.DialTimeout("tcp", listen, testTimeout); err == nil {
		t.Fatal("still listening after shutdown")
	}
}

func TestUsageErrors(t *testing.T) {
	ctx := context.Background()
	cases := [][]string{
		{"-capacity", "x"},
		{"-capacity", "0"},
		{"-nope"},
		{"extra"},
		{"-log-level", "loud"},
		{"-tier", strings.Repeat("t", 100)},
		{"-max-frame", "10"},
		{"fault", "-control", "127.0.0.1:1"},
		{"fault", "slow"},
		{"fault", "-control", "127.0.0.1:1", "melt"},
		{"fault", "-control", "127.0.0.1:1", "slow", "down"},
		{"stats"},
		{"stats", "-control", "127.0.0.1:1", "more"},
	}
	for _, args := range cases {
		var errOut testsupport.Buffer
		if code := run(ctx, args, io.Discard, &errOut); code != exitUsage {
			t.Errorf("%q: exit %d, want %d (%s)", args, code, exitUsage, errOut.String())
		} else if n := strings.Count(errOut.String(), "\n"); n != 1 {
			t.Errorf("%q: %d lines on stderr, want 1: %s", args, n, errOut.String())
		}
	}
	for _, args := range [][]string{{"-h"}, {"fault", "-h"}, {"stats", "-h"}} {
		var out, errOut testsupport.Buffer
		if code := run(ctx, args, &out, &errOut); code != exitOK || !strings.Contains(out.String(), "usage: telsim") || errOut.String() != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q: want the usage on stdout and exit 0", args, code, out.String(), errOut.String())
		}
	}
}

// -version prints one line naming the program and the Go toolchain, and
// serves nothing.
func TestVersion(t *testing.T) {
	var out, errOut testsupport.Buffer
	if code := run(context.Background(), []string{"-version"}, &out, &errOut); code != exitOK || errOut.String() != "" {
		t.Fatalf("-version: exit %d, stderr %q", code, errOut.String())
	}
	if s := out.String(); !strings.HasPrefix(s, "telsim ") || !strings.Contains(s, " go1.") || strings.Count(s, "\n") != 1 {
		t.Fatalf("-version: %q", s)
	}
}

func TestRuntimeErrors(t *testing.T) {
	ctx := context.Background()
	// A closed port: the control call fails.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	_ = ln.Close()
	for _, args := range [][]string{
		{"stats", "-control", dead},
		{"fault", "-control", dead, "none"},
		{"-listen", "256.0.0.1:0"},
	} {
		var errOut testsupport.Buffer
		if code := run(ctx, args, io.Discard, &errOut); code != exitFail {
			t.Errorf("%q: exit %d, want %d (%s)", args, code, exitFail, errOut.String())
		}
	}
	// A busy control address fails after the telephony listener started:
	// everything is cleaned up (goleak checks).
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	var errOut testsupport.Buffer
	if code := run(ctx, []string{"-control", busy.Addr().String()}, io.Discard, &errOut); code != exitFail ||
		!strings.Contains(errOut.String(), "control listener") {
		t.Errorf("busy control address: exit %d: %s", code, errOut.String())
	}
}
