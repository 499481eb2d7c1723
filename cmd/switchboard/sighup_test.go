package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"switchboard/client"
	"switchboard/internal/testsupport"
	"switchboard/wire"
)

// hupConfig is a daemon config with in-process simulated tiers; minConns
// and digits vary between the reloads of TestSIGHUPReload.
func hupConfig(minConns, digits int, attempt string) string {
	return fmt.Sprintf(`log:
  level: info
  format: auto
keys:
  digits: %d
pool:
  min_conns: %d
tiers:
  - name: primary-large
    servers: [sim://primary-large]
    attempt_timeout: %s
  - name: nextgen
    servers: [sim://nextgen]
  - name: backup2-large
    servers: [sim://backup2-large]
`, digits, minConns, attempt)
}

// adminStatus is the part of GET /status this test reads.
type adminStatus struct {
	ConfigVersion uint64 `json:"config_version"`
	LastReload    *struct {
		Result string `json:"result"`
		Error  string `json:"error"`
	} `json:"last_reload"`
	Tiers []struct {
		Name string `json:"name"`
		Live int    `json:"live"`
	} `json:"tiers"`
}

func adminClient(path string) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}
}

func getStatus(t *testing.T, hc *http.Client) adminStatus {
	t.Helper()
	resp, err := hc.Get("http://admin/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st adminStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// notifyListener is a stand-in for systemd's notification socket: it
// collects every datagram the daemon sends to $NOTIFY_SOCKET.
type notifyListener struct {
	conn *net.UnixConn
	mu   sync.Mutex
	msgs []string
	done chan struct{}
}

func listenNotify(t *testing.T, path string) *notifyListener {
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &notifyListener{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-n.done
	})
	return n
}

// states returns the first line of every message but WATCHDOG=1 pings,
// and how many pings came.
func (n *notifyListener) states() (states []string, pings int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range n.msgs {
		first, _, _ := strings.Cut(m, "\n")
		if first == "WATCHDOG=1" {
			pings++
			continue
		}
		states = append(states, first)
	}
	return states, pings
}

func waitUntil(t *testing.T, what string, cond func() bool, logs *testsupport.Buffer) {
	t.Helper()
	if !testsupport.Poll(testsupport.WaitBound, nil, cond) {
		t.Fatalf("timed out waiting for %s; daemon log:\n%s", what, logs.String())
	}
}

// TestSIGHUPReload drives the real binary as systemd would: it starts with
// -config under a $NOTIFY_SOCKET with a watchdog, takes steady allocations
// while its config file is rewritten and SIGHUP sent — a good change, one
// that requires a restart, an invalid file — and stops on SIGTERM. No
// allocation may fail; refused reloads must leave the running config in
// force; systemd must see READY, RELOADING/READY per reload, watchdog
// pings and STOPPING; the log (stderr, not a terminal) must be JSON.
func TestSIGHUPReload(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the daemon binary")
	}
	dir := testsupport.ShortTempDir(t)
	sock := filepath.Join(dir, "sb.sock")
	adminSock := filepath.Join(dir, "admin.sock")
	cfgPath := filepath.Join(dir, "sb.yaml")
	write := func(s string) {
		t.Helper()
		// Written aside and renamed, as editors and config managers do:
		// a SIGHUP never reads half a file.
		tmp := cfgPath + ".new"
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, cfgPath); err != nil {
			t.Fatal(err)
		}
	}
	write(hupConfig(2, 9, "250ms"))
	notify := listenNotify(t, filepath.Join(dir, "notify.sock"))

	initKeys(t, cfgPath, filepath.Join(dir, "data"))
	cmd := exec.Command(daemonBin, "-config", cfgPath, "-socket", sock, "-data-dir", filepath.Join(dir, "data"), "-admin-socket", adminSock)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+filepath.Join(dir, "notify.sock"), "WATCHDOG_USEC=200000")
	logs := &testsupport.Buffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	exited := false
	t.Cleanup(func() {
		if !exited {
			cmd.Process.Kill()
			<-done
		}
	})
	hc := adminClient(adminSock)
	defer hc.CloseIdleConnections()
	waitUntil(t, "READY=1", func() bool {
		s, _ := notify.states()
		return len(s) > 0 && s[0] == "READY=1"
	}, logs)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// Steady load: one allocation and its release every 2 ms, from a
	// goroutine this test owns and stops.
	var (
		ok, failed atomic.Int64
		firstErr   atomic.Value
		stop       = make(chan struct{})
		loadDone   = make(chan struct{})
	)
	go func() {
		defer close(loadDone)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			a, err := c.Allocate(ctx, &wire.AllocateRequest{Spec: wire.Spec{Name: []byte("hup")}})
			if err == nil {
				err = c.Release(ctx, a.Key)
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
				continue
			}
			ok.Add(1)
		}
	}()
	stopLoad := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-loadDone
	}
	defer stopLoad()

	hup := func() {
		t.Helper()
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	reloaded := func(version uint64, result string) func() bool {
		return func() bool {
			st := getStatus(t, hc)
			return st.LastReload != nil && st.LastReload.Result == result && st.ConfigVersion == version
		}
	}

	// 1. A good change: three warm connections per tier after the reload.
	time.Sleep(100 * time.Millisecond)
	write(hupConfig(3, 9, "300ms"))
	hup()
	waitUntil(t, "the reload to config version 2", reloaded(2, "ok"), logs)
	waitUntil(t, "3 live connections per tier", func() bool {
		for _, ts := range getStatus(t, hc).Tiers {
			if ts.Live != 3 {
				return false
			}
		}
		return true
	}, logs)

	time.Sleep(100 * time.Millisecond)

	// 2. keys.digits cannot change live: refused, version unchanged.
	write(hupConfig(2, 10, "250ms"))
	hup()
	waitUntil(t, "a requires_restart reload", reloaded(2, "requires_restart"), logs)
	if st := getStatus(t, hc); !strings.Contains(st.LastReload.Error, "keys.digits") {
		t.Fatalf("refused reload does not name the field: %q", st.LastReload.Error)
	}

	// 3. An invalid file: refused, version unchanged, the error names the
	// field.
	write(hupConfig(2, 9, "250ms") + "bogus_field: 1\n")
	hup()
	waitUntil(t, "an invalid reload", reloaded(2, "invalid"), logs)
	if st := getStatus(t, hc); !strings.Contains(st.LastReload.Error, "bogus_field") {
		t.Fatalf("invalid reload does not name the field: %q", st.LastReload.Error)
	}
	time.Sleep(50 * time.Millisecond)
	stopLoad()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d allocations failed across SIGHUP reloads; first: %v", n, firstErr.Load())
	}
	if ok.Load() == 0 {
		t.Fatal("no allocation succeeded")
	}
	c.Close()

	// 4. SIGTERM: a clean exit, STOPPING reported.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		exited = true
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("no exit 15s after SIGTERM\n%s", logs.String())
	}

	waitUntil(t, "STOPPING=1", func() bool {
		s, _ := notify.states()
		return len(s) > 0 && s[len(s)-1] == "STOPPING=1"
	}, logs)
	states, pings := notify.states()
	// READY at start; RELOADING then READY around each applied reload
	// attempt that got past validation (the refused ones never start).
	want := []string{"READY=1", "RELOADING=1", "READY=1", "STOPPING=1"}
	if strings.Join(states, " ") != strings.Join(want, " ") {
		t.Fatalf("systemd saw %q, want %q", states, want)
	}
	if pings == 0 {
		t.Fatal("no WATCHDOG=1 ping with WATCHDOG_USEC=200000")
	}

	// The log went to a pipe: JSON, one object per line, constant messages.
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	var msgs []string
	for sc.Scan() {
		var entry struct {
			Msg string `json:"msg"`
		}
		if err := json.Unmarshal(sc.Bytes(), &entry); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		msgs = append(msgs, entry.Msg)
	}
	all := strings.Join(msgs, "\n")
	for _, m := range []string{"SIGHUP: reloading the configuration", "reload done", "reload failed; the running configuration is unchanged"} {
		if !strings.Contains(all, m) {
			t.Errorf("log lacks %q; messages:\n%s", m, all)
		}
	}
	t.Logf("%d allocations across 3 SIGHUP reloads; %d watchdog pings", ok.Load(), pings)
}
