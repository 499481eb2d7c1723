package configs_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"switchboard/daemon"
	"switchboard/xmlapi"
)

// daemonReloadBound is how long the daemon's admin socket gives one reload
// (adminTimeout in daemon/admin.go): sbctl must wait longer.
const daemonReloadBound = time.Minute

// checkSyncReload holds ExecReload to a reload that returns when the new
// configuration serves or fails with the reason: sbctl reload, installed
// beside the daemon, on the admin socket production.yaml configures, with a
// -timeout past the daemon's own bound and within TimeoutStartSec (which
// bounds ExecReload). A `kill -HUP` returned before the reload was done.
func checkSyncReload(t *testing.T, u unitFile, c *daemon.Config, start []string) {
	t.Helper()
	reload := strings.Fields(u.get("Service", "ExecReload"))
	if len(start) == 0 || len(reload) == 0 || reload[0] != filepath.Join(filepath.Dir(start[0]), "sbctl") {
		t.Fatalf("ExecReload=%q: want the sbctl installed beside the daemon (%v)", reload, start)
	}
	if reload[len(reload)-1] != "reload" {
		t.Errorf("ExecReload=%q: want the command reload, last", reload)
	}
	flags := map[string]string{}
	for i := 1; i+1 < len(reload); i += 2 {
		flags[reload[i]] = reload[i+1]
	}
	if flags["-admin-socket"] != c.Admin.Socket || c.Admin.Socket == "" {
		t.Errorf("ExecReload=%q: want -admin-socket %s (production.yaml admin.socket)", reload, c.Admin.Socket)
	}
	d, err := time.ParseDuration(flags["-timeout"])
	if err != nil || d <= daemonReloadBound {
		t.Errorf("ExecReload=%q: want -timeout above the daemon's %v reload bound", reload, daemonReloadBound)
	}
	if st := unitDuration(t, "TimeoutStartSec", u.get("Service", "TimeoutStartSec")); st <= d {
		t.Errorf("TimeoutStartSec=%v: it bounds ExecReload, whose sbctl waits up to %v", st, d)
	}
	if u.get("Service", "MemoryMax") == "" {
		t.Error("switchboard.service: no MemoryMax")
	}
}

// hardening are the sandboxing settings both units share, with the same
// values.
var hardening = []string{
	"NoNewPrivileges", "CapabilityBoundingSet", "AmbientCapabilities", "ProtectSystem", "ProtectHome",
	"PrivateTmp", "PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
	"ProtectControlGroups", "ProtectClock", "ProtectHostname", "ProtectProc", "RestrictAddressFamilies",
	"RestrictNamespaces", "RestrictRealtime", "RestrictSUIDSGID", "LockPersonality", "MemoryDenyWriteExecute",
	"RemoveIPC", "SystemCallArchitectures", "SystemCallFilter", "SystemCallErrorNumber", "UMask",
}

// The xmlapi unit runs the front end as its own user, able to reach the
// daemon's socket and nothing else of the daemon's, checks its config
// before starting, bounds its memory, has timeouts that fit its defaults,
// and is hardened exactly like the daemon's.
func TestXMLAPIUnit(t *testing.T) {
	u := parseUnit(t, "xmlapi.service")
	sb := parseUnit(t, "switchboard.service")
	c := loadProduction(t)
	x, err := xmlapi.DefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"Type": "exec", "Restart": "on-failure", "RestartPreventExitStatus": "2", "KillSignal": "SIGTERM"} {
		if got := u.get("Service", k); got != v {
			t.Errorf("%s=%q, want %q", k, got, v)
		}
	}
	user := u.get("Service", "User")
	if user == "" || user == "root" || user == sb.get("Service", "User") {
		t.Errorf("User=%q: want an unprivileged account of its own", user)
	}
	if g := sb.get("Service", "Group"); !slices.Contains(strings.Fields(u.get("Service", "SupplementaryGroups")), g) {
		t.Errorf("SupplementaryGroups=%q: want the daemon's group %s (its socket is 0660 in a 0750 directory)", u.get("Service", "SupplementaryGroups"), g)
	}
	start := strings.Fields(u.get("Service", "ExecStart"))
	flags := map[string]string{}
	for i := 1; i+1 < len(start); i += 2 {
		flags[start[i]] = start[i+1]
	}
	if len(start) == 0 || !filepath.IsAbs(start[0]) || filepath.Base(start[0]) != "xmlapi" || flags["-config"] == "" {
		t.Fatalf("ExecStart=%q: want an absolute xmlapi with -config", start)
	}
	if flags["-socket"] != c.Socket {
		t.Errorf("ExecStart -socket %q, want the daemon's socket %s (production.yaml)", flags["-socket"], c.Socket)
	}
	if l := flags["-listen"]; !strings.HasPrefix(l, "127.0.0.1:") && !strings.HasPrefix(l, "[::1]:") {
		t.Errorf("ExecStart -listen %q: want loopback, behind the TLS proxy", l)
	}
	if pre := strings.Fields(u.get("Service", "ExecStartPre")); len(pre) != 3 || pre[0] != start[0] || pre[1] != "-check-config" || pre[2] != flags["-config"] {
		t.Errorf("ExecStartPre=%q: want %s -check-config %s", pre, start[0], flags["-config"])
	}
	if st := unitDuration(t, "TimeoutStartSec", u.get("Service", "TimeoutStartSec")); st <= x.Backend.ConnectTimeout {
		t.Errorf("TimeoutStartSec=%v: start waits up to backend.connect_timeout %v", st, x.Backend.ConnectTimeout)
	}
	if st := unitDuration(t, "TimeoutStopSec", u.get("Service", "TimeoutStopSec")); st <= x.HTTP.ShutdownTimeout {
		t.Errorf("TimeoutStopSec=%v: stop drains for up to http.shutdown_timeout %v", st, x.HTTP.ShutdownTimeout)
	}
	if u.get("Service", "MemoryMax") == "" {
		t.Error("xmlapi.service: no MemoryMax")
	}
	for _, k := range hardening {
		if got, want := u.get("Service", k), sb.get("Service", k); got != want || got == "" && k != "CapabilityBoundingSet" && k != "AmbientCapabilities" {
			t.Errorf("%s=%q, want %q as in switchboard.service", k, got, want)
		}
	}
	for _, k := range []string{"StateDirectory", "RuntimeDirectory", "ReadWritePaths"} {
		if v := u.get("Service", k); v != "" {
			t.Errorf("%s=%q: xmlapi writes nothing; the daemon owns /run/switchboard", k, v)
		}
	}
	if u.get("Install", "WantedBy") == "" {
		t.Error("no [Install] WantedBy")
	}
}

// systemd-analyze verify accepts both units without a warning (it reports
// unknown keys and bad values as warnings and still exits 0, so any output
// fails). It checks that the commands exist: the units are verified as
// copies whose /usr/local/bin/ programs are stand-ins in a temporary
// directory, every other line unchanged.
func TestUnitsVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed here (Debian: apt-get install systemd): the units are not verified")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"switchboard", "sbctl", "xmlapi"} {
		if err := os.WriteFile(filepath.Join(bin, p), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, unit := range []string{"switchboard.service", "xmlapi.service"} {
		b, err := os.ReadFile(unit)
		if err != nil {
			t.Fatal(err)
		}
		copied := filepath.Join(dir, unit)
		if err := os.WriteFile(copied, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/", bin+"/")), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		out, err := exec.CommandContext(ctx, sa, "verify", copied).CombinedOutput()
		cancel()
		if err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
		}
	}
}
