package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/bench/fakedaemon"
	"switchboard/internal/testsupport"
)

func TestReloadFlags(t *testing.T) {
	c, err := parseFlags([]string{"-rate", "10", "-duration", "10s", "-reload-every", "1s", "-admin-socket", "a.sock"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.reloadEvery != time.Second || c.adminSocket != "a.sock" {
		t.Fatalf("reload settings %v %q", c.reloadEvery, c.adminSocket)
	}
	if c, err := parseFlags([]string{"-rate", "10"}, nil); err != nil || c.reloadEvery != 0 || c.adminSocket != "" {
		t.Fatalf("defaults: %v %q %v", c.reloadEvery, c.adminSocket, err)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"-rate", "10", "-reload-every", "1s"}, "needs -admin-socket"},
		{[]string{"-rate", "10", "-admin-socket", "a.sock"}, "only used with -reload-every"},
		{[]string{"-rate", "10", "-reload-every", "-1s", "-admin-socket", "a.sock"}, "must not be negative"},
		{[]string{"-rate", "10", "-duration", "5s", "-reload-every", "5s", "-admin-socket", "a.sock"}, "not within the measured -duration"},
		{[]string{"-rate", "10", "-reload-every", "soon", "-admin-socket", "a.sock"}, "invalid value"},
	} {
		_, err := parseFlags(bad.args, nil)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: error %v, want a usage error containing %q", bad.args, err, bad.want)
		}
	}
}

// fakeAdmin is a stand-in for the daemon's admin API on a Unix socket: it
// counts POST /reload and answers each (n from 1) after delay, with the
// status fail(n) returns (0 or 200: ok with config version n+1).
type fakeAdmin struct {
	path    string
	srv     *httptest.Server
	reloads atomic.Int64
	delay   time.Duration
	fail    func(n int64) int
}

func startFakeAdmin(t *testing.T, delay time.Duration, fail func(n int64) int) *fakeAdmin {
	t.Helper()
	dir := testsupport.ShortTempDir(t)
	a := &fakeAdmin{path: filepath.Join(dir, "admin.sock"), delay: delay, fail: fail}
	ln, err := net.Listen("unix", a.path)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /reload", func(w http.ResponseWriter, r *http.Request) {
		n := a.reloads.Add(1)
		time.Sleep(a.delay)
		w.Header().Set("Content-Type", "application/json")
		if a.fail != nil {
			if code := a.fail(n); code != 0 && code != http.StatusOK {
				w.WriteHeader(code)
				fmt.Fprintf(w, "{\"error\":\"requires restart: socket changed (reload %d)\"}\n", n)
				return
			}
		}
		fmt.Fprintf(w, "{\"ok\":true,\"config_version\":%d}\n", n+1)
	})
	a.srv = httptest.NewUnstartedServer(mux)
	a.srv.Listener.Close()
	a.srv.Listener = ln
	a.srv.Start()
	t.Cleanup(a.srv.Close)
	return a
}

func TestPostReload(t *testing.T) {
	a := startFakeAdmin(t, 0, func(n int64) int {
		return map[int64]int{2: http.StatusConflict}[n]
	})
	hc := newAdminHTTPClient(a.path, 5*time.Second)
	defer hc.CloseIdleConnections()
	ctx := bounded(t)
	if v, err := postReload(ctx, hc); err != nil || v != 2 {
		t.Fatalf("first reload: version %d, %v", v, err)
	}
	_, err := postReload(ctx, hc)
	if !errors.Is(err, errReloadRefused) || !strings.Contains(err.Error(), "HTTP 409: requires restart: socket changed (reload 2)") {
		t.Fatalf("refused reload: %v", err)
	}
	if a.reloads.Load() != 2 {
		t.Fatalf("%d reloads reached the admin API, want 2", a.reloads.Load())
	}

	dead := newAdminHTTPClient(filepath.Join(filepath.Dir(a.path), "nobody.sock"), time.Second)
	defer dead.CloseIdleConnections()
	if _, err := postReload(ctx, dead); err == nil || errors.Is(err, errReloadRefused) {
		t.Fatalf("reload through a socket nobody serves: %v, want a transport error", err)
	}
}

// TestTimelineReloads feeds reload calls straight to a timeline.
func TestTimelineReloads(t *testing.T) {
	from := time.Unix(1_800_000_000, 0)
	tl := newTimeline(from, 100*time.Millisecond, time.Second)
	at := func(d time.Duration) time.Time { return from.Add(d) }
	// 10 rows; 10 allocations per row of 100 µs, except 2 ms in rows 2 and 5.
	for row := 0; row < 10; row++ {
		for i := 0; i < 10; i++ {
			lat := 100 * time.Microsecond
			if row == 2 || row == 5 {
				lat = 2 * time.Millisecond
			}
			due := at(time.Duration(row)*100*time.Millisecond + time.Duration(i)*time.Millisecond)
			tl.allocation(&outcome{intended: due, done: due.Add(lat), tier: "primary-large"})
		}
	}
	tl.reloaded(&reloadCall{IssuedS: 0.25, TookS: 0.01, OK: true, Version: 2})
	tl.reloaded(&reloadCall{IssuedS: 0.45, TookS: 0.08, OK: false, Error: "x"}) // runs on into row 5
	rows := tl.snapshot(at(time.Second))
	for i, r := range rows {
		wantN, wantFailed, wantBusy := 0, 0, i == 2 || i == 4 || i == 5
		switch i {
		case 2:
			wantN = 1
		case 4:
			wantN, wantFailed = 1, 1
		}
		if r.Reloads != wantN || r.ReloadsFailed != wantFailed || r.Reloading != wantBusy {
			t.Errorf("row %d: reloads %d failed %d reloading %v", i, r.Reloads, r.ReloadsFailed, r.Reloading)
		}
	}
	var s reloadSummary
	tl.reloadSplit(&s)
	if s.RowsWith != 3 || s.RowsWithout != 7 {
		t.Fatalf("rows with %d, without %d; want 3 and 7", s.RowsWith, s.RowsWithout)
	}
	if s.P99With < 1990 || s.P99With > 2010 || s.P99Without < 99 || s.P99Without > 101 || s.P99Ratio < 19 || s.P99Ratio > 21 {
		t.Fatalf("p99 with %.1f without %.1f ratio %.2f; want ≈2000, ≈100, ≈20", s.P99With, s.P99Without, s.P99Ratio)
	}
	var b strings.Builder
	writeTimeline(&b, 0.1, rows)
	for _, want := range []string{"reload 1 ok\n", "reload 0 ok, 1 FAILED\n", "reloading\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("timeline lacks %q:\n%s", want, b.String())
		}
	}
}

// TestRunReloadEndToEnd drives the whole command in real time against a
// fake daemon and a fake admin API over Unix sockets: the reloads are made
// on schedule, counted, marked in the timeline and compared.
func TestRunReloadEndToEnd(t *testing.T) {
	fd := fakedaemon.StartTB(t, fakedaemon.Config{})
	a := startFakeAdmin(t, 5*time.Millisecond, func(n int64) int {
		return map[int64]int{2: http.StatusConflict}[n]
	})
	r := sbbench(t, bounded(t), "-socket", fd.Path(), "-rate", "400", "-duration", "1s", "-timeline-step", "100ms", "-json",
		"-reload-every", "250ms", "-admin-socket", a.path)
	if r.code != exitOK || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	s := decodeSummary(t, r.stdout)
	rl := s.Reloads
	if rl == nil {
		t.Fatalf("no reloads in the summary: %s", r.stdout)
	}
	// Due at +250, +500 and +750 ms; the second is refused.
	if n := a.reloads.Load(); n != 3 || rl.OK != 2 || rl.Failed != 1 || rl.Skipped != 0 {
		t.Fatalf("admin API saw %d reloads; summary %+v", n, rl)
	}
	if !strings.Contains(rl.FirstError, "HTTP 409") || rl.LastVersion != 4 || rl.EveryS != 0.25 || rl.AdminSocket != a.path {
		t.Fatalf("summary %+v", rl)
	}
	if rl.TookP50US < 5000 || rl.TookMaxUS < rl.TookP50US {
		t.Fatalf("reload round trips p50 %.1f max %.1f µs, want at least the admin's 5 ms", rl.TookP50US, rl.TookMaxUS)
	}
	var issued, failed, busy int
	for i, row := range s.Timeline {
		issued += row.Reloads
		failed += row.ReloadsFailed
		if row.Reloading {
			busy++
		}
		if (i == 2 || i == 5 || i == 7) != (row.Reloads == 1) {
			t.Errorf("row %d (t %g) has %d reloads; want one in rows 2, 5 and 7", i, row.T, row.Reloads)
		}
	}
	if issued != 3 || failed != 1 || busy < 3 || rl.RowsWith != busy || rl.RowsWithout != len(s.Timeline)-busy {
		t.Fatalf("timeline: %d reloads, %d failed, %d rows reloading; summary %+v", issued, failed, busy, rl)
	}
	if rl.P99With <= 0 || rl.P99Without <= 0 || rl.P99Ratio <= 0 {
		t.Fatalf("p99 split %+v", rl)
	}

	// Text, and reloads slower than their period: the missed times are
	// skipped, never stacked up.
	slow := startFakeAdmin(t, 230*time.Millisecond, nil)
	r = sbbench(t, bounded(t), "-socket", fd.Path(), "-rate", "200", "-duration", "1s", "-timeline-step", "100ms",
		"-reload-every", "100ms", "-admin-socket", slow.path)
	if r.code != exitOK || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	n := slow.reloads.Load()
	for _, want := range []string{
		"reloads       every 0.1s via " + slow.path + fmt.Sprintf(": %d ok, 0 failed, %d skipped (the previous one was still running); took p50 ", n, 9-n),
		"p99 µs of rows during a reload ", "reload 1 ok", "reloading",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("text output lacks %q:\n%s", want, r.stdout)
		}
	}
	if n < 2 || n > 4 {
		t.Errorf("%d reloads of 230 ms in a 1 s window every 100 ms, want about 3", n)
	}
	if st := fd.Stats(); st.Live != 0 {
		t.Errorf("%d reservations left unreleased", st.Live)
	}
	t.Log("\n" + r.stdout)
}
