package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"switchboard/client"
	"switchboard/internal/testsupport"
	"switchboard/wire"
)

// limitsConfig is the daemon's configuration for TestBadClients: short
// idle, read and write timeouts so each cut shows within seconds, metrics
// on a Unix socket.
func limitsConfig(transport, metricsSock string) string {
	return fmt.Sprintf(`log:
  level: info
  format: json
metrics:
  addr: unix:%s
server:
  transport: %s
  idle_timeout: 3s
  read_timeout: 1s
  write_timeout: 1s
  max_conn_unanswered: 64
tiers:
  - name: primary-large
    servers: [sim://primary-large]
  - name: nextgen
    servers: [sim://nextgen]
  - name: backup2-large
    servers: [sim://backup2-large]
`, metricsSock, transport)
}

// TestBadClients runs the real daemon binary, on each transport, with a
// well-behaved client allocating and releasing throughout, against the bad
// clients of issue 11: one that pipelines 20,000 ALLOCATEs and never reads,
// one that sends half a header and stops, one that trickles PINGs without
// reading its PONGs, and a flood of 5,000 idle connections (5 × max_conns).
// Each bad client must be cut (logged, counted by reason), new clients
// served throughout, the well-behaved client must see no error and a p99
// within 3× its quiet p99 (with a 100 ms floor for a noisy machine), and the
// daemon's RSS must stay under maxRSSKiB; the figures are logged.
func TestBadClients(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon binary against bad clients")
	}
	for _, tr := range []string{"net", "netpoll"} {
		t.Run(tr, func(t *testing.T) { testBadClients(t, tr) })
	}
}

func testBadClients(t *testing.T, transport string) {
	dir := testsupport.ShortTempDir(t)
	sock := filepath.Join(dir, "sb.sock")
	msock := filepath.Join(dir, "m.sock")
	cfgPath := filepath.Join(dir, "sb.yaml")
	if err := os.WriteFile(cfgPath, []byte(limitsConfig(transport, msock)), 0o600); err != nil {
		t.Fatal(err)
	}
	initKeys(t, cfgPath, filepath.Join(dir, "data"))
	d := startLogged(t, sock, filepath.Join(dir, "data"), "-config", cfgPath)
	m := &scraper{c: &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", msock)
	}}}}
	defer m.c.CloseIdleConnections()

	// The socket was created with its final mode.
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("front-end socket mode %v (%v), want 0660", fi.Mode().Perm(), err)
	}

	var frames []byte // the never-read client's, built before the figures start
	for i := range 20000 {
		req := &wire.AllocateRequest{Spec: wire.Spec{Name: []byte("never-read " + strconv.Itoa(i))}}
		frames, _ = wire.AppendFrame(frames, wire.Header{Op: wire.OpAllocate, ID: uint64(i + 1)}, req, wire.DefaultMaxFrame)
	}
	good := startGoodClient(t, sock)
	defer good.stop()
	time.Sleep(2 * time.Second)
	quiet := good.window()
	t.Logf("quiet: %s; daemon RSS %d KiB", quiet, rssKiB(t, d.pid()))
	check := func(phase string) {
		t.Helper()
		w := good.window()
		rss := rssKiB(t, d.pid())
		t.Logf("%s: %s; daemon RSS %d KiB", phase, w, rss)
		// Measured (2-core machine): about 30 MiB after the never-read
		// probe and 43-46 MiB during and after the flood, on either
		// transport; on net it was 159 MiB when every connection held a
		// 64 KiB read buffer from accept on.
		if rss > maxRSSKiB {
			t.Errorf("%s: daemon RSS %d KiB, over %d KiB", phase, rss, maxRSSKiB)
		}
		if w.errs > 0 {
			t.Errorf("%s: the well-behaved client saw %d errors; first: %v", phase, w.errs, w.first)
		}
		// 3× the quiet p99, with a floor: on a shared 2-core machine (and
		// under -race) the probe's own work, 5,000 dials included, shares
		// the cores with the daemon; the figures are logged for the record.
		if limit := max(3*quiet.p99, 100*time.Millisecond); w.p99 > limit {
			t.Errorf("%s: well-behaved p99 %v, over %v (3× quiet %v, floor 100ms)", phase, w.p99, limit, quiet.p99)
		}
		if w.n == 0 {
			t.Errorf("%s: the well-behaved client made no request", phase)
		}
	}

	// 1. Never reads: 20,000 pipelined ALLOCATEs. The daemon stops reading
	// at max_conn_unanswered, so the client's writes block; once the
	// responses it did execute fill the socket, the connection is cut at
	// write_timeout (net; netpoll: input_overflow).
	before := m.value(t, `switchboard_requests_total{op="allocate",result="ok"}`)
	nr, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	nr.SetWriteDeadline(time.Now().Add(3 * time.Second))
	sent, _ := nr.Write(frames)
	t.Logf("never-read client: %d of %d bytes written before the daemon stopped reading", sent, len(frames))
	if transport == "netpoll" {
		// netpoll's poller reads the socket regardless: the requests pile
		// up in its buffer, unexecuted, until the connection is cut.
		waitCut(t, m, "input_overflow", 15*time.Second)
	} else {
		waitCut(t, m, "write_timeout", 15*time.Second)
	}
	nr.Close()
	executed := m.value(t, `switchboard_requests_total{op="allocate",result="ok"}`) - before
	t.Logf("never-read client: %.0f of 20000 allocations executed; pauses %.0f", executed, m.value(t, "switchboard_connection_read_pauses_total"))
	if executed > 5000 {
		t.Errorf("%.0f of 20000 pipelined allocations executed for a client that never reads: no backpressure", executed)
	}
	check("never-read probe")

	// 2. Half a header, then nothing: cut at read_timeout.
	ph, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ph.Close()
	if _, err := ph.Write(make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	ph.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := ph.Read(make([]byte, 1)); err == nil || isTimeoutErr(err) {
		t.Errorf("a partial header was not cut within 10s (read_timeout 1s): %v", err)
	}
	waitCut(t, m, "read_timeout", 5*time.Second)

	// 3. PINGs every 200 ms, PONGs never read: cut at idle_timeout (3s);
	// a connection that pings as often and reads its PONGs stays.
	tr, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	alive, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer alive.Close()
	var trickleErr, aliveErr error
	for i := 0; i < 40 && trickleErr == nil; i++ { // 8 s at most
		f, _ := wire.AppendFrame(nil, wire.Header{Op: wire.OpPing, ID: uint64(i + 1)}, nil, wire.DefaultMaxFrame)
		tr.SetWriteDeadline(time.Now().Add(time.Second))
		_, trickleErr = tr.Write(f)
		if aliveErr == nil {
			alive.SetDeadline(time.Now().Add(5 * time.Second))
			if _, aliveErr = alive.Write(f); aliveErr == nil {
				_, _, _, aliveErr = wire.ReadFrame(alive, nil, wire.DefaultMaxFrame)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if trickleErr == nil {
		t.Error("a client trickling PINGs without reading was not cut within 8s (idle_timeout 3s)")
	}
	if aliveErr != nil {
		t.Errorf("a client pinging and reading its PONGs was cut: %v", aliveErr)
	}
	waitCut(t, m, "idle", 5*time.Second)
	check("partial-header and trickle probes")

	// 4. 5,000 idle connections (max_conns 1024): the longest-idle are
	// evicted, a new client is served all along.
	const flood = 5000
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < flood+1000 && lim.Max >= flood+1000 {
		lim.Cur = flood + 1000
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < flood+1000 {
		t.Logf("skipping the %d-connection probe: RLIMIT_NOFILE %d, need %d", flood, lim.Cur, flood+1000)
		return
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range flood {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatalf("connection %d of the flood: %v", i, err)
		}
		conns = append(conns, c)
		if i%1000 == 999 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			nc, err := client.Dial(ctx, sock)
			if err == nil {
				err = nc.Ping(ctx)
				nc.Close()
			}
			cancel()
			if err != nil {
				t.Errorf("a new client after %d flood connections: %v", i+1, err)
			}
		}
	}
	evicted := m.value(t, `switchboard_connections_cut_total{reason="evicted"}`)
	open := m.value(t, "switchboard_connections")
	t.Logf("flood of %d: %.0f evicted, %.0f open, %.0f refused; daemon RSS %d KiB", flood, evicted, open, m.value(t, "switchboard_connections_refused_total"), rssKiB(t, d.pid()))
	if evicted < flood-1024 {
		t.Errorf("%.0f connections evicted, want at least %d", evicted, flood-1024)
	}
	check("5000-connection probe")
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	time.Sleep(time.Second)
	good.window()
	time.Sleep(time.Second)
	check("after")
	if !strings.Contains(d.logs.String(), `"front-end connection cut"`) {
		t.Error("no cut was logged")
	}
}

// maxRSSKiB bounds the daemon's RSS through TestBadClients' probes: about
// twice what they measure, well under what 1,024 connections cost with a
// 64 KiB read buffer each.
const maxRSSKiB = 96 << 10

func isTimeoutErr(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// waitCut waits for a connection cut for reason to be counted.
func waitCut(t *testing.T, m *scraper, reason string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for m.value(t, `switchboard_connections_cut_total{reason="`+reason+`"}`) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no connection cut for %s within %v", reason, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scraper reads the daemon's /metrics.
type scraper struct{ c *http.Client }

// value returns the sample named series (name{labels} as exposed), 0 if
// absent.
func (s *scraper) value(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := s.c.Get("http://metrics/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if name, v, ok := strings.Cut(sc.Text(), " "); ok && name == series {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// logged is a daemon process whose stderr is kept.
type logged struct {
	cmd  *exec.Cmd
	logs *testsupport.Buffer
}

func (l *logged) pid() int { return l.cmd.Process.Pid }

// startLogged runs the daemon binary and waits until its socket answers.
func startLogged(t *testing.T, sock, data string, extra ...string) *logged {
	t.Helper()
	cmd := exec.Command(daemonBin, append([]string{"-socket", sock, "-data-dir", data}, extra...)...)
	l := &logged{cmd: cmd, logs: &testsupport.Buffer{}}
	cmd.Stderr = l.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("daemon log (tail):\n%s", tail(l.logs.String(), 4000))
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := pingOnce(sock)
		if err == nil {
			return l
		}
		select {
		case err := <-done:
			t.Fatalf("daemon exited at start: %v\n%s", err, l.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not answering after 15s: %v\n%s", err, l.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// rssKiB reads a process's resident set size.
func rssKiB(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Logf("RSS: %v", err)
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return -1
}

// goodClient allocates and releases in a loop, as a front end does, and
// records each allocation's latency and any error.
type goodClient struct {
	c    *client.Client
	quit chan struct{}
	done chan struct{}

	mu    sync.Mutex
	lat   []time.Duration // since the last window, guarded by mu
	errs  int
	first error
}

type window struct {
	n, errs int
	p50     time.Duration
	p99     time.Duration
	first   error
}

func (w window) String() string {
	return fmt.Sprintf("%d allocations, p50 %v, p99 %v, %d errors", w.n, w.p50, w.p99, w.errs)
}

func startGoodClient(t *testing.T, sock string) *goodClient {
	t.Helper()
	c, err := client.Dial(context.Background(), sock, client.WithConns(1))
	if err != nil {
		t.Fatal(err)
	}
	g := &goodClient{c: c, quit: make(chan struct{}), done: make(chan struct{})}
	go g.run()
	return g
}

func (g *goodClient) run() {
	defer close(g.done)
	for i := 0; ; i++ {
		select {
		case <-g.quit:
			return
		case <-time.After(2 * time.Millisecond):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		t0 := time.Now()
		a, err := g.c.Allocate(ctx, &wire.AllocateRequest{Spec: wire.Spec{Name: []byte("good " + strconv.Itoa(i))}})
		took := time.Since(t0)
		if err == nil {
			err = g.c.Release(ctx, a.Key)
		}
		cancel()
		g.mu.Lock()
		if err != nil {
			g.errs++
			if g.first == nil {
				g.first = err
			}
		} else {
			g.lat = append(g.lat, took)
		}
		g.mu.Unlock()
	}
}

// window returns the figures since the previous call and starts anew.
func (g *goodClient) window() window {
	g.mu.Lock()
	lat, errs, first := g.lat, g.errs, g.first
	g.lat, g.errs, g.first = nil, 0, nil
	g.mu.Unlock()
	w := window{n: len(lat), errs: errs, first: first}
	if len(lat) > 0 {
		slices.Sort(lat)
		w.p50 = lat[len(lat)/2]
		w.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return w
}

func (g *goodClient) stop() {
	close(g.quit)
	<-g.done
	g.c.Close()
}
