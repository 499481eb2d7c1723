package xmlapi

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestMetricsConnectionsAreBounded: the metrics port is open to every
// local user; keep-alive connections left idle after a request must not
// pile up. Past metricsMaxConns, every new connection is still served and
// the one idle the longest is closed for it. Before, the server had no
// IdleTimeout and no bound: each stayed open (a goroutine, a descriptor and
// buffers) as long as its client wished.
func TestMetricsConnectionsAreBounded(t *testing.T) {
	fe := startFrontEnd(t, testConfig(t), newFakeBackend())
	srv := NewMetricsServer(NewMetrics(), fe.h, nil)
	if srv.IdleTimeout <= 0 {
		t.Errorf("metrics server IdleTimeout %v: idle keep-alive connections are never closed", srv.IdleTimeout)
	}
	ln, err := ListenMetrics("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeMetrics(ctx, srv, ln, 5*time.Second) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeMetrics: %v", err)
		}
	}()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range 2 * metricsMaxConns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n"); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("connection %d, %d held idle: %v", i, i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// metricsMaxConns of them were closed to make room (the idle-longest
	// first: which ones exactly depends on when each server goroutine
	// marked its connection idle, so only the count is asserted), and the
	// newest, just served, is not one of them.
	var wg sync.WaitGroup
	closed := make([]bool, len(conns))
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, err := c.Read(make([]byte, 1))
			closed[i] = err == io.EOF
		}()
	}
	wg.Wait()
	n := 0
	for _, ok := range closed {
		if ok {
			n++
		}
	}
	if n != metricsMaxConns || closed[len(conns)-1] {
		t.Fatalf("%d of %d idle connections closed (newest closed: %v), want %d closed to make room, the newest kept", n, len(conns), closed[len(conns)-1], metricsMaxConns)
	}
}
