package main

import (
	"encoding/json"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"switchboard/daemon"
	"switchboard/internal/daemontest"
	"switchboard/internal/testsupport"
)

// adminDaemon is a real daemon on the embedded default config (three
// sim:// tiers) with an admin socket, running in-process.
type adminDaemon struct {
	d     *daemon.Daemon
	sock  string // front-end socket
	admin string // admin socket
	// src is what the daemon's config source returns on reload.
	src atomic.Pointer[func() (*daemon.Config, error)]
}

// setSource makes the next reloads read f.
func (a *adminDaemon) setSource(f func() (*daemon.Config, error)) { a.src.Store(&f) }

// startAdminDaemon starts the daemon and stops it at cleanup. Its socket
// paths are in a short temporary directory (Unix socket paths < 108 bytes).
func startAdminDaemon(t *testing.T) *adminDaemon {
	t.Helper()
	dir := testsupport.ShortTempDir(t)
	a := &adminDaemon{}
	a.setSource(func() (*daemon.Config, error) { return a.d.Config(), nil })
	lvl := zap.NewAtomicLevelAt(zap.WarnLevel)
	td := daemontest.Start(t, dir, func(cfg *daemon.Config) {
		cfg.Admin.Socket = filepath.Join(dir, "admin.sock")
		cfg.Keys.BlockSize = 1024
		cfg.Cache.SizeMB = 32
		cfg.Server.ShutdownTimeout = 5 * time.Second
	},
		daemon.WithLogger(zaptest.NewLogger(t, zaptest.Level(lvl))),
		daemon.WithLogLevel(lvl),
		daemon.WithConfigSource(func() (*daemon.Config, error) { return (*a.src.Load())() }))
	a.d, a.sock, a.admin = td.Daemon, td.Socket(), td.Config.Admin.Socket
	return a
}

// tierJSON returns the tiers of a status -json object by name, checking
// that each carries the fields sbctl promises.
func tierJSON(t *testing.T, st map[string]any) (names []string, byName map[string]map[string]any) {
	t.Helper()
	list, isList := st["tiers"].([]any)
	if !isList {
		t.Fatalf("status json has no tiers list: %v", st)
	}
	byName = map[string]map[string]any{}
	for _, e := range list {
		tr, _ := e.(map[string]any)
		name, _ := tr["name"].(string)
		_, b1 := tr["breaker"].(string)
		_, b2 := tr["drained"].(bool)
		_, b3 := tr["live"].(float64)
		if name == "" || !b1 || !b2 || !b3 {
			t.Fatalf("tier %v lacks name/breaker/drained/live", tr)
		}
		names = append(names, name)
		byName[name] = tr
	}
	return names, byName
}

var tierOrder = []string{"primary-large", "nextgen", "backup2-large"}

// tierRow matches a tier's row of the status table.
func tierRow(name, breaker, override, drained, available string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` +` + breaker + ` +` + override + ` +` + drained + ` +` + available + ` +\d+ +\d+ +\d+ +\d+ *$`)
}

func TestAdminStatus(t *testing.T) {
	a := startAdminDaemon(t)
	out := ok(t, "-admin-socket", a.admin, "status")
	for _, want := range []string{"instance ", "socket           " + a.sock + "\n", "config version   1\n", "uptime ",
		"in flight        0\n", " issued, ", "orphans pending  0\n", "last reload      none since start\n",
		"TIER ", "BREAKER", "OVERRIDE", "DRAINED", "AVAILABLE", "LIVE", "DIALING", "DRAINING", "IN-FLIGHT"} {
		if !strings.Contains(out, want) {
			t.Fatalf("status text lacks %q:\n%s", want, out)
		}
	}
	table := out[strings.Index(out, "TIER "):]
	at := 0
	for _, name := range tierOrder {
		if !tierRow(name, "closed", "auto", "no", "yes").MatchString(table) {
			t.Fatalf("status has no row for a healthy %s:\n%s", name, out)
		}
		i := strings.Index(table, "\n"+name+" ")
		if i < at {
			t.Fatalf("tier %s out of failover order:\n%s", name, out)
		}
		at = i
	}
	// A server row under each tier: indented address, its counts, its id.
	if !regexp.MustCompile(`(?m)^  127\.0\.0\.1:\d+ +2 +0 +0 +0 +server id sim-nextgen$`).MatchString(table) {
		t.Fatalf("status has no server row for nextgen:\n%s", out)
	}

	st := oneJSON(t, ok(t, "-admin-socket", a.admin, "-json", "status"))
	names, tiers := tierJSON(t, st)
	if strings.Join(names, ",") != strings.Join(tierOrder, ",") {
		t.Fatalf("status json tiers %v, want %v", names, tierOrder)
	}
	if tr := tiers["primary-large"]; tr["breaker"] != "closed" || tr["drained"] != false || tr["live"] != float64(2) {
		t.Fatalf("primary-large %v", tr)
	}
	if st["config_version"] != float64(1) || st["keys_left"] == float64(0) {
		t.Fatalf("status json %v", st)
	}

	// The readable form reads the daemon's field names: every field sbctl
	// decodes must be one the daemon sends.
	var mirror adminStatus
	if err := json.Unmarshal([]byte(ok(t, "-admin-socket", a.admin, "-json", "status")), &mirror); err != nil {
		t.Fatal(err)
	}
	mirror.LastReload = nil // absent until a reload
	for _, c := range []struct {
		of   string
		sent map[string]any
		ours any
	}{
		{"status", st, mirror},
		{"tier", tiers["nextgen"], mirror.Tiers[1]},
		{"server", tiers["nextgen"]["servers"].([]any)[0].(map[string]any), mirror.Tiers[1].Servers[0]},
	} {
		b, _ := json.Marshal(c.ours)
		var keys map[string]any
		json.Unmarshal(b, &keys)
		for k := range keys {
			if _, sent := c.sent[k]; !sent && k != "last_reload" && k != "last_error" {
				t.Errorf("sbctl reads %s field %q, which the daemon does not send", c.of, k)
			}
		}
	}
}

func TestAdminOverrides(t *testing.T) {
	a := startAdminDaemon(t)
	adm := []string{"-admin-socket", a.admin}
	args := func(more ...string) []string { return append(append([]string{}, adm...), more...) }

	if out := ok(t, args("drain", "nextgen")...); out != "tier nextgen drained: takes no new allocations (lookups, updates and releases still reach it)\n" {
		t.Fatalf("drain text %q", out)
	}
	if out := ok(t, args("breaker", "primary-large", "open")...); out != "tier primary-large breaker forced open: no attempt goes to the tier\n" {
		t.Fatalf("breaker text %q", out)
	}
	check := func(when string) {
		t.Helper()
		out := ok(t, args("status")...)
		if !tierRow("nextgen", "closed", "auto", "yes", "no").MatchString(out) ||
			!tierRow("primary-large", `\S+`, "open", "no", "no").MatchString(out) ||
			!tierRow("backup2-large", "closed", "auto", "no", "yes").MatchString(out) {
			t.Fatalf("status %s does not show the overrides:\n%s", when, out)
		}
		_, tiers := tierJSON(t, oneJSON(t, ok(t, args("-json", "status")...)))
		if tiers["nextgen"]["drained"] != true || tiers["primary-large"]["override"] != "open" {
			t.Fatalf("status json %s: %v", when, tiers)
		}
	}
	check("after drain and breaker open")

	// A drained tier, and one forced open, take no new allocations.
	al := oneJSON(t, ok(t, "-socket", a.sock, "-json", "allocate", "-name", "overrides"))
	if al["tier"] != "backup2-large" {
		t.Fatalf("allocation with primary-large forced open and nextgen drained went to %v", al["tier"])
	}

	// Operator overrides survive a reload.
	if out := ok(t, args("reload")...); out != "reloaded: config version 2\n" {
		t.Fatalf("reload text %q", out)
	}
	check("after a reload")

	// -json prints the daemon's answers.
	if m := oneJSON(t, ok(t, args("-json", "undrain", "nextgen")...)); m["tier"] != "nextgen" || m["drained"] != false {
		t.Fatalf("undrain json %v", m)
	}
	if m := oneJSON(t, ok(t, args("-json", "breaker", "primary-large", "auto")...)); m["tier"] != "primary-large" || m["override"] != "auto" {
		t.Fatalf("breaker json %v", m)
	}
	out := ok(t, args("status")...)
	for _, name := range tierOrder {
		if !tierRow(name, "closed", "auto", "no", "yes").MatchString(out) {
			t.Fatalf("status after clearing the overrides, %s:\n%s", name, out)
		}
	}

	failsWith(t, exitFail, `sbctl: drain nope: unknown tier "nope"`, false, args("drain", "nope")...)
	failsWith(t, exitFail, `sbctl: breaker nope: unknown tier "nope"`, false, args("breaker", "nope", "closed")...)
	failsWith(t, exitFail, `sbctl: undrain a/b: unknown tier "a/b"`, false, args("undrain", "a/b")...)
	failsWith(t, exitUsage, `sbctl: breaker: mode "sideways" is not one of open, closed, auto (see sbctl -h)`, false, args("breaker", "nextgen", "sideways")...)
	failsWith(t, exitUsage, `sbctl: breaker: want TIER open|closed|auto, got 1 argument(s) (see sbctl -h)`, false, args("breaker", "nextgen")...)
	failsWith(t, exitUsage, `sbctl: drain: want TIER, got 0 argument(s) (see sbctl -h)`, false, args("drain")...)

	// The log level, through the daemon's zap handler (the reload set it
	// from the config's log.level).
	if out := ok(t, args("log-level")...); out != "info\n" {
		t.Fatalf("log-level %q", out)
	}
	if out := ok(t, args("log-level", "error")...); out != "log level now error\n" {
		t.Fatalf("log-level error: %q", out)
	}
	if m := oneJSON(t, ok(t, args("-json", "log-level")...)); m["level"] != "error" {
		t.Fatalf("log-level json %v", m)
	}
	failsWith(t, exitFail, `sbctl: log-level loud: `, true, args("log-level", "loud")...)
}

func TestAdminReload(t *testing.T) {
	a := startAdminDaemon(t)
	base := a.d.Config()
	a.setSource(func() (*daemon.Config, error) {
		nc := *base
		nc.Server.MaxInFlight++ // changes live
		return &nc, nil
	})
	if out := ok(t, "-admin-socket", a.admin, "reload"); out != "reloaded: config version 2\n" {
		t.Fatalf("reload text %q", out)
	}
	if m := oneJSON(t, ok(t, "-admin-socket", a.admin, "-json", "reload")); m["ok"] != true || m["config_version"] != float64(3) {
		t.Fatalf("reload json %v", m)
	}

	a.setSource(func() (*daemon.Config, error) {
		nc := *base
		nc.Keys.Digits = 10 // cannot change live
		return &nc, nil
	})
	failsWith(t, exitFail, "sbctl: reload: requires restart: keys.digits changed (the configuration in force is unchanged)", false,
		"-admin-socket", a.admin, "reload")
	// An invalid configuration: the daemon's reason, line included.
	a.setSource(func() (*daemon.Config, error) { return daemon.ParseConfig([]byte("tiers: []\nbogus: 1\n"), "x.yaml") })
	o := sbctl(t, "-admin-socket", a.admin, "reload")
	if o.code != exitFail || !strings.HasPrefix(o.stderr, "sbctl: reload: ") || !strings.Contains(o.stderr, "line 2") ||
		!strings.HasSuffix(o.stderr, "(the configuration in force is unchanged)\n") {
		t.Fatalf("invalid reload: exit %d, stderr %q", o.code, o.stderr)
	}

	out := ok(t, "-admin-socket", a.admin, "status")
	if !strings.Contains(out, "config version   3\n") || !regexp.MustCompile(`last reload +invalid at \S+, config version 3 in force: .*line 2`).MatchString(out) {
		t.Fatalf("status after refused reloads:\n%s", out)
	}

	// The environment names the admin socket when -admin-socket does not.
	t.Setenv(AdminSocketEnv, a.admin)
	if !strings.Contains(ok(t, "status"), "config version   3\n") {
		t.Fatal("status through $" + AdminSocketEnv)
	}
}

func TestAdminErrors(t *testing.T) {
	t.Setenv(AdminSocketEnv, "")
	for _, args := range [][]string{{"status"}, {"reload"}, {"drain", "nextgen"}, {"breaker", "nextgen", "open"}, {"log-level"}} {
		failsWith(t, exitUsage, "sbctl: admin commands need the daemon's admin socket: give -admin-socket PATH (or set $"+AdminSocketEnv+") (see sbctl -h)", false, args...)
	}
	missing := filepath.Join(t.TempDir(), "none.sock")
	failsWith(t, exitFail, "sbctl: dial admin socket "+missing+": connect: no such file or directory", false, "-admin-socket", missing, "status")
	failsWith(t, exitFail, "sbctl: dial admin socket "+missing+": connect: no such file or directory", false, "-admin-socket", missing, "reload")
	failsWith(t, exitUsage, `sbctl: status: unexpected argument "now" (see sbctl -h)`, false, "-admin-socket", missing, "status", "now")
}

func TestAdminHelp(t *testing.T) {
	out := ok(t, "-h")
	for _, want := range []string{"-admin-socket", AdminSocketEnv, "Commands (admin socket", "status\n", "reload\n",
		"drain TIER", "undrain TIER", "breaker TIER open|closed|auto", "log-level [LEVEL]"} {
		if !strings.Contains(out, want) {
			t.Fatalf("sbctl -h lacks %q:\n%s", want, out)
		}
	}
	if out := ok(t, "breaker", "-h"); !strings.Contains(out, "sbctl [global flags] breaker TIER open|closed|auto") {
		t.Fatalf("breaker -h: %q", out)
	}
}

// TestAdminTimeout runs commands against an admin socket that accepts and
// never answers: -timeout bounds them (reload included, when given).
func TestAdminTimeout(t *testing.T) {
	dir := testsupport.ShortTempDir(t)
	path := filepath.Join(dir, "hung.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn // owned by the accept goroutine until done
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})

	start := time.Now()
	failsWith(t, exitFail, "sbctl: status: no answer within -timeout 50ms: context deadline exceeded", false,
		"-admin-socket", path, "-timeout", "50ms", "status")
	failsWith(t, exitFail, "sbctl: drain nextgen: no answer within -timeout 50ms, outcome unknown: context deadline exceeded", false,
		"-admin-socket", path, "-timeout", "50ms", "drain", "nextgen")
	failsWith(t, exitFail, "sbctl: reload: no answer within -timeout 50ms, outcome unknown: context deadline exceeded", false,
		"-admin-socket", path, "-timeout", "50ms", "reload")
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("three commands with -timeout 50ms took %v", d)
	}
}
