package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"switchboard/bench/fakedaemon"
	"switchboard/internal/testsupport"
	"switchboard/wire"
)

// The admin tests run a real daemon in-process: netpoll's pollers and
// gopool's workers are process-wide and outlive it by design; everything
// else must stop.
func TestMain(m *testing.M) { testsupport.VerifyTestMainNetpoll(m) }

type outcome struct {
	code   int
	stdout string
	stderr string
}

func sbctl(t *testing.T, args ...string) outcome {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := run(ctx, args, &out, &errb)
	return outcome{code, out.String(), errb.String()}
}

// ok runs sbctl and requires success with nothing on stderr.
func ok(t *testing.T, args ...string) string {
	t.Helper()
	o := sbctl(t, args...)
	if o.code != exitOK || o.stderr != "" {
		t.Fatalf("sbctl %v: exit %d, stderr %q", args, o.code, o.stderr)
	}
	return o.stdout
}

// failsWith runs sbctl and requires exit status code, nothing on stdout
// and exactly the one line want on stderr (or, with prefix, a line that
// starts with want).
func failsWith(t *testing.T, code int, want string, prefix bool, args ...string) {
	t.Helper()
	o := sbctl(t, args...)
	if o.code != code {
		t.Fatalf("sbctl %v: exit %d, want %d (stderr %q)", args, o.code, code, o.stderr)
	}
	if o.stdout != "" {
		t.Fatalf("sbctl %v: stdout %q on failure", args, o.stdout)
	}
	if strings.Count(o.stderr, "\n") != 1 || !strings.HasSuffix(o.stderr, "\n") {
		t.Fatalf("sbctl %v: stderr %q is not exactly one line", args, o.stderr)
	}
	line := strings.TrimSuffix(o.stderr, "\n")
	if (prefix && !strings.HasPrefix(line, want)) || (!prefix && line != want) {
		t.Fatalf("sbctl %v: stderr %q, want %q", args, line, want)
	}
}

// oneJSON decodes stdout as exactly one JSON object.
func oneJSON(t *testing.T, stdout string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("stdout %q is not a JSON object: %v", stdout, err)
	}
	if dec.More() {
		t.Fatalf("stdout %q holds more than one JSON value", stdout)
	}
	return m
}

func TestPing(t *testing.T) {
	fd := fakedaemon.StartTB(t, fakedaemon.Config{})
	if out := ok(t, "-socket", fd.Path(), "ping"); !strings.HasPrefix(out, "pong from "+fd.Path()+" in ") {
		t.Fatalf("ping text %q", out)
	}
	m := oneJSON(t, ok(t, "-socket", fd.Path(), "-json", "ping"))
	if m["ok"] != true {
		t.Fatalf("ping json %v", m)
	}
	if rtt, isNum := m["rtt_us"].(float64); !isNum || rtt < 0 || rtt != float64(int64(rtt)) {
		t.Fatalf("rtt_us %v (%T), want a non-negative integer", m["rtt_us"], m["rtt_us"])
	}
}

func TestSocketFromEnvironment(t *testing.T) {
	fd := fakedaemon.StartTB(t, fakedaemon.Config{})
	t.Setenv(SocketEnv, fd.Path())
	ok(t, "ping")
	// -socket still wins over the environment.
	failsWith(t, exitFail, "sbctl: dial /nonexistent/sb.sock: ", true, "-socket", "/nonexistent/sb.sock", "ping")
}

func TestSessionLifecycleJSON(t *testing.T) {
	fd := fakedaemon.StartTB(t, fakedaemon.Config{})
	sock := fd.Path()
	const secret = "<meeting>host-pin 4242</meeting>"

	a := oneJSON(t, ok(t, "-socket", sock, "-json", "allocate", "-name", "Quarterly review", "-token", "t-1", "-meta", secret, "-tz", "22"))
	key, isStr := a["sessionKey"].(string)
	if !isStr || key != "100000000" {
		t.Fatalf("sessionKey %v (%T), want the string \"100000000\"", a["sessionKey"], a["sessionKey"])
	}
	if a["tier"] != "primary-large" || a["replayed"] != false {
		t.Fatalf("allocate json %v", a)
	}
	br, _ := a["bridge"].(map[string]any)
	for _, f := range []string{"id", "toll", "tollFree", "hostCode", "attendeeCode"} {
		if s, _ := br[f].(string); s == "" {
			t.Fatalf("bridge.%s missing in %v", f, a)
		}
	}

	// The same token again: the first result, replayed.
	again := oneJSON(t, ok(t, "-socket", sock, "-json", "allocate", "-name", "Quarterly review", "-token", "t-1"))
	if again["sessionKey"] != key || again["replayed"] != true {
		t.Fatalf("replayed allocate %v", again)
	}

	out := ok(t, "-socket", sock, "-json", "lookup", key)
	if strings.Contains(out, "host-pin") {
		t.Fatalf("lookup printed the meta content: %s", out)
	}
	l := oneJSON(t, out)
	if l["sessionKey"] != key || l["name"] != "Quarterly review" || l["tier"] != "primary-large" ||
		l["metaBytes"] != float64(len(secret)) || l["timeZoneID"] != float64(22) || l["duration"] != float64(60) {
		t.Fatalf("lookup json %v", l)
	}
	if _, has := l["bridge"].(map[string]any); !has {
		t.Fatalf("lookup json has no bridge: %v", l)
	}
	if rep, _ := l["repeat"].(map[string]any); rep["repeatType"] != "NO_REPEAT" {
		t.Fatalf("lookup repeat %v", l["repeat"])
	}

	// update keeps what it does not change (meta, time zone).
	u := oneJSON(t, ok(t, "-socket", sock, "-json", "update", key, "-name", "Renamed review"))
	if u["name"] != "Renamed review" || u["metaBytes"] != float64(len(secret)) || u["timeZoneID"] != float64(22) {
		t.Fatalf("update json %v", u)
	}
	u = oneJSON(t, ok(t, "-socket", sock, "-json", "update", "-meta", "", "-name", "Third", key))
	if u["name"] != "Third" || u["metaBytes"] != float64(0) {
		t.Fatalf("update with -meta \"\" %v", u)
	}

	r := oneJSON(t, ok(t, "-socket", sock, "-json", "release", key))
	if r["released"] != key || len(r) != 1 {
		t.Fatalf("release json %v", r)
	}

	failsWith(t, exitFail, "sbctl: lookup 100000000: NOT_FOUND: no session 100000000", false, "-socket", sock, "-json", "lookup", key)
	failsWith(t, exitFail, "sbctl: release 100000000: NOT_FOUND: no session 100000000", false, "-socket", sock, "release", key)
	failsWith(t, exitFail, "sbctl: update 100000000: NOT_FOUND: no session 100000000", false, "-socket", sock, "update", key, "-name", "x")
}

func TestTextOutput(t *testing.T) {
	fd := fakedaemon.StartTB(t, fakedaemon.Config{FirstKey: 555000111})
	sock := fd.Path()
	out := ok(t, "-socket", sock, "allocate", "-name", "Standup", "-meta", "m")
	for _, want := range []string{"session key    555000111\n", "tier           primary-large\n", "replayed       no\n", "bridge id      fake-555000111\n", "toll-free      "} {
		if !strings.Contains(out, want) {
			t.Fatalf("allocate text lacks %q:\n%s", want, out)
		}
	}
	out = ok(t, "-socket", sock, "lookup", "555000111")
	for _, want := range []string{"name", "Standup", "time zone id     unset", "duration         60 min", "repeat           none", "meta             1 bytes"} {
		if !strings.Contains(out, want) {
			t.Fatalf("lookup text lacks %q:\n%s", want, out)
		}
	}
	if out := ok(t, "-socket", sock, "release", "555000111"); out != "released 555000111\n" {
		t.Fatalf("release text %q", out)
	}
}

func TestOperationErrors(t *testing.T) {
	fd := fakedaemon.StartTB(t, fakedaemon.Config{Fail: func(op wire.Op, _ uint64) wire.Status {
		if op == wire.OpAllocate {
			return wire.StatusUnavailable
		}
		return wire.StatusOK
	}})
	failsWith(t, exitFail, "sbctl: allocate: UNAVAILABLE: injected by fakedaemon", false, "-socket", fd.Path(), "allocate", "-name", "x")
	missing := filepath.Join(t.TempDir(), "none.sock")
	failsWith(t, exitFail, "sbctl: dial "+missing+": ", true, "-socket", missing, "ping")
}

func TestTimeout(t *testing.T) {
	fd := fakedaemon.StartTB(t, fakedaemon.Config{Delay: time.Hour})
	start := time.Now()
	failsWith(t, exitFail, "sbctl: ping "+fd.Path()+": no answer within -timeout 50ms, outcome unknown: context deadline exceeded", false,
		"-socket", fd.Path(), "-timeout", "50ms", "ping")
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("-timeout 50ms took %v", d)
	}
}

func TestUsageErrors(t *testing.T) {
	fd := fakedaemon.StartTB(t, fakedaemon.Config{})
	s := fd.Path()
	for _, c := range []struct {
		want string
		args []string
	}{
		{"sbctl: no command (see sbctl -h)", nil},
		{"sbctl: unknown command \"frobnicate\" (see sbctl -h)", []string{"frobnicate"}},
		{"sbctl: flag provided but not defined: -bogus (see sbctl -h)", []string{"-bogus", "ping"}},
		{"sbctl: -timeout must be positive (see sbctl -h)", []string{"-timeout", "0s", "ping"}},
		{"sbctl: allocate: -name is required (see sbctl -h)", []string{"-socket", s, "allocate"}},
		{"sbctl: allocate: -tz 99 is not a WebEx timeZoneID (0–61, or -1) (see sbctl -h)", []string{"-socket", s, "allocate", "-name", "x", "-tz", "99"}},
		{"sbctl: lookup: \"12ab\" is not a session key (a positive decimal number) (see sbctl -h)", []string{"-socket", s, "lookup", "12ab"}},
		{"sbctl: lookup: \"-5\" is not a session key (a positive decimal number) (see sbctl -h)", []string{"-socket", s, "lookup", "--", "-5"}},
		{"sbctl: lookup: want KEY, got 0 argument(s) (see sbctl -h)", []string{"-socket", s, "lookup"}},
		{"sbctl: release: want KEY, got 2 argument(s) (see sbctl -h)", []string{"-socket", s, "release", "1", "2"}},
		{"sbctl: update: -name is required (see sbctl -h)", []string{"-socket", s, "update", "1"}},
		{"sbctl: ping: unexpected argument \"now\" (see sbctl -h)", []string{"-socket", s, "ping", "now"}},
		{"sbctl: lookup: flag provided but not defined: -x (see sbctl -h)", []string{"-socket", s, "lookup", "1", "-x"}},
	} {
		failsWith(t, exitUsage, c.want, false, c.args...)
	}
	if st := fd.Stats(); st.Requests != 0 {
		t.Fatalf("usage errors sent %d requests", st.Requests)
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"help"}} {
		out := ok(t, args...)
		for _, want := range []string{"usage: sbctl", SocketEnv, DefaultSocket, "allocate -name NAME", "lookup KEY", "-timeout"} {
			if !strings.Contains(out, want) {
				t.Fatalf("sbctl %v lacks %q:\n%s", args, want, out)
			}
		}
	}
	if out := ok(t, "allocate", "-h"); !strings.Contains(out, "sbctl [global flags] allocate -name NAME") {
		t.Fatalf("allocate -h: %q", out)
	}
}

// The global flags may follow the command, as operators type them:
// "sbctl ping -json" once was a usage error. A -timeout after the command
// bounds it like one before.
func TestGlobalFlagsAfterCommand(t *testing.T) {
	fd := fakedaemon.StartTB(t, fakedaemon.Config{})
	m := oneJSON(t, ok(t, "-socket", fd.Path(), "ping", "-json"))
	if m["ok"] != true {
		t.Fatalf("ping -json: %v", m)
	}
	m = oneJSON(t, ok(t, "ping", "-socket", fd.Path(), "--json"))
	if m["ok"] != true {
		t.Fatalf("ping -socket S --json: %v", m)
	}
	key, _ := oneJSON(t, ok(t, "allocate", "-name", "after", "-socket="+fd.Path(), "-json"))["sessionKey"].(string)
	m = oneJSON(t, ok(t, "lookup", key, "-json", "-socket", fd.Path()))
	if key == "" || m["sessionKey"] != key || m["name"] != "after" {
		t.Fatalf("lookup KEY -json -socket S: %v", m)
	}
	failsWith(t, exitUsage, "sbctl: -timeout must be positive (see sbctl -h)", false, "-socket", fd.Path(), "ping", "-timeout", "0s")

	slow := fakedaemon.StartTB(t, fakedaemon.Config{Delay: time.Hour})
	start := time.Now()
	failsWith(t, exitFail, "sbctl: ping "+slow.Path()+": no answer within -timeout 50ms, outcome unknown: context deadline exceeded", false,
		"ping", "-socket", slow.Path(), "-timeout", "50ms")
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("-timeout 50ms after the command took %v", d)
	}
}

// -version prints one line naming the program and the Go toolchain; it
// needs no daemon.
func TestVersion(t *testing.T) {
	out := ok(t, "-version")
	if !strings.HasPrefix(out, "sbctl ") || !strings.Contains(out, " go1.") || strings.Count(out, "\n") != 1 {
		t.Fatalf("sbctl -version: %q", out)
	}
}
