package daemon

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"switchboard/internal/testsupport"
)

// fakeSystemd is a NOTIFY_SOCKET listener collecting notifications.
type fakeSystemd struct {
	conn *net.UnixConn
	path string
}

func newFakeSystemd(t *testing.T) *fakeSystemd {
	path := filepath.Join(testsupport.ShortTempDir(t), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &fakeSystemd{conn: c, path: path}
}

// next returns the next notification that is not a watchdog ping (those
// are counted in *pings), failing after 10s.
func (f *fakeSystemd) next(t *testing.T, pings *int) string {
	t.Helper()
	buf := make([]byte, 4096)
	for {
		f.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := f.conn.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		msg := string(buf[:n])
		if msg == "WATCHDOG=1" {
			*pings++
			continue
		}
		return msg
	}
}

func TestSystemdNotifications(t *testing.T) {
	sd := newFakeSystemd(t)
	env := map[string]string{"NOTIFY_SOCKET": sd.path, "WATCHDOG_USEC": "40000"}
	cfg := testConfig(t)
	mustInitKeys(t, cfg)
	d, err := New(cfg, WithLogger(zaptest.NewLogger(t)), withEnv(func(k string) string { return env[k] }), WithSimHost(testSimHost(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(ctx) }()
	var pings int
	if msg := sd.next(t, &pings); !strings.HasPrefix(msg, "READY=1") {
		t.Fatalf("first notification %q, want READY=1", msg)
	}
	select {
	case <-d.Ready():
	default:
		t.Fatal("READY=1 sent before the daemon is ready")
	}
	// Watchdog pings every WATCHDOG_USEC/2 = 20ms: wait for a few.
	deadline := time.Now().Add(10 * time.Second)
	for pings < 3 && time.Now().Before(deadline) {
		sd.conn.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 64)
		if n, err := sd.conn.Read(buf); err == nil && string(buf[:n]) == "WATCHDOG=1" {
			pings++
		}
	}
	if pings < 3 {
		t.Fatalf("%d watchdog pings", pings)
	}
	if err := d.Reload(ctx, reloadVariant(d.Config(), 1)); err != nil {
		t.Fatal(err)
	}
	msg := sd.next(t, &pings)
	if !strings.HasPrefix(msg, "RELOADING=1\nMONOTONIC_USEC=") || strings.HasSuffix(strings.Split(msg, "\n")[1], "=0") {
		t.Fatalf("reload notification %q", msg)
	}
	if msg := sd.next(t, &pings); !strings.HasPrefix(msg, "READY=1") {
		t.Fatalf("after reload %q, want READY=1", msg)
	}
	cancel()
	if msg := sd.next(t, &pings); !strings.HasPrefix(msg, "STOPPING=1") {
		t.Fatalf("at shutdown %q, want STOPPING=1", msg)
	}
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
}

// TestWatchdogPingsDuringSlowReload holds a reload for its whole
// server.ready_timeout (a new pool that cannot get warm) and checks that the
// watchdog pings go on meanwhile: systemd must not kill a daemon that is
// busy applying a reload. Pings come every WATCHDOG_USEC/2 = 20ms; the
// reload lasts 600ms.
func TestWatchdogPingsDuringSlowReload(t *testing.T) {
	sd := newFakeSystemd(t)
	env := map[string]string{"NOTIFY_SOCKET": sd.path, "WATCHDOG_USEC": "40000"}
	h := startDaemon(t, nil, withEnv(func(k string) string { return env[k] }))
	var pings int
	if msg := sd.next(t, &pings); !strings.HasPrefix(msg, "READY=1") {
		t.Fatalf("first notification %q, want READY=1", msg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	nc := reloadVariant(h.d.Config(), 0)
	nc.Server.ReadyTimeout = 600 * time.Millisecond
	nc.Tiers[0].Servers = []string{"tcp://" + dead}
	nc.Tiers[0].Pool.DialTimeout = 50 * time.Millisecond
	reloaded := make(chan error, 1)
	go func() { reloaded <- h.d.Reload(reloadCtx(t), nc) }()
	if msg := sd.next(t, &pings); !strings.HasPrefix(msg, "RELOADING=1") {
		t.Fatalf("notification %q, want RELOADING=1", msg)
	}
	during := 0
	if msg := sd.next(t, &during); !strings.HasPrefix(msg, "READY=1") {
		t.Fatalf("after the failed reload %q, want READY=1", msg)
	}
	if err := <-reloaded; !errors.Is(err, ErrNotWarm) {
		t.Fatalf("reload: %v, want ErrNotWarm", err)
	}
	// 600ms at one ping per 20ms is 30; a loaded machine may delay some.
	if during < 5 {
		t.Fatalf("%d watchdog pings during a 600ms reload: the reload holds them back", during)
	}
}

func TestNotifierWithoutSystemdIsNoop(t *testing.T) {
	n := newNotifier(zaptest.NewLogger(t), func(string) string { return "" })
	n.send("READY=1")
	if n.watchdogInterval() != 0 {
		t.Fatal("watchdog on without systemd")
	}
	n.close()
	n.close()
}

func TestWatchdogForAnotherPidIsIgnored(t *testing.T) {
	sd := newFakeSystemd(t)
	env := map[string]string{"NOTIFY_SOCKET": sd.path, "WATCHDOG_USEC": "40000", "WATCHDOG_PID": "1"}
	n := newNotifier(zaptest.NewLogger(t), func(k string) string { return env[k] })
	defer n.close()
	if n.watchdogInterval() != 0 {
		t.Fatal("watchdog armed for another process")
	}
}
