//go:build linux

package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"switchboard/internal/testsupport"
)

// TestIdleMetricsConnectionsAreBounded: the daemon's metrics port on
// loopback TCP is open to every local user (docs/operations.md §10). Its
// HTTP server has a ReadHeaderTimeout but no IdleTimeout (nor ReadTimeout,
// which Go would use in its place) and no bound on connections: a
// connection that made one request and stays open is kept forever, each
// with a descriptor, a goroutine and its buffers in the daemon. A local user
// can so grow the daemon's memory and descriptors without bound (the
// descriptors it takes are the front-end socket's and the telephony
// dials' too), which the front-end socket's limits (max_conns, idle
// timeout) exist to prevent there. The real binary; 8,000 keep-alive
// connections, each after one GET /metrics; the verdict counts the
// daemon's descriptors 10 s after the last request (twice the header
// timeout): they must not all still be held, and the RSS must stay under
// the 96 MiB TestBadClients holds the 5,000-connection flood to.
func TestIdleMetricsConnectionsAreBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon binary")
	}
	const n = 8000
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < n+1000 && lim.Max >= n+1000 {
		lim.Cur = n + 1000
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < n+1000 {
		t.Skipf("RLIMIT_NOFILE %d, need %d", lim.Cur, n+1000)
	}
	// A free loopback port for the metrics listener.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := testsupport.ShortTempDir(t)
	sock := filepath.Join(dir, "sb.sock")
	cfgPath := filepath.Join(dir, "sb.yaml")
	cfg := fmt.Sprintf("log:\n  level: info\n  format: json\nmetrics:\n  addr: %s\ntiers:\n  - name: primary-large\n    servers: [sim://primary-large]\n", addr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	initKeys(t, cfgPath, filepath.Join(dir, "data"))
	d := startLogged(t, sock, filepath.Join(dir, "data"), "-config", cfgPath)
	fds := func() int {
		es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", d.pid()))
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	before, rssBefore := fds(), rssKiB(t, d.pid())
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	req := "GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n"
	for i := range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		resp.Body.Close() // the daemon has written it all; the connection stays open, idle
	}
	time.Sleep(10 * time.Second)
	held, rss := fds()-before, rssKiB(t, d.pid())
	t.Logf("%d idle keep-alive metrics connections: the daemon holds %d more descriptors 10 s later; RSS %d KiB before, %d KiB after", n, held, rssBefore, rss)
	if held >= n*9/10 {
		t.Errorf("the daemon still holds %d descriptors for %d idle metrics connections 10 s after their last request: no idle timeout, no bound", held, n)
	}
	if rss > maxRSSKiB {
		t.Errorf("daemon RSS %d KiB with %d idle metrics connections, over %d KiB", rss, n, maxRSSKiB)
	}
}
