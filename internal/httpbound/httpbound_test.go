package httpbound

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve runs an http.Server bounded at n on loopback; it is shut down at
// cleanup. block, when set, holds every request until it is closed.
func serve(t *testing.T, n int, block chan struct{}) (string, *listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Hour,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if block != nil {
				<-block
			}
			io.WriteString(w, "ok")
		})}
	bl := Bound(srv, ln, n)
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(bl) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
		<-done
	})
	return ln.Addr().String(), bl.(*listener)
}

func get(t *testing.T, c net.Conn) error {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

func (l *listener) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// TestIdleConnectionsMakeRoom: with n keep-alive connections idle after a
// request, each new connection is still served, and the one idle the
// longest is closed for it: never more than n are held.
func TestIdleConnectionsMakeRoom(t *testing.T) {
	const n = 4
	addr, l := serve(t, n, nil)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range 3 * n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if err := get(t, c); err != nil {
			t.Fatalf("connection %d, %d held idle: %v", i, min(i, n), err)
		}
		if o := l.open(); o > n {
			t.Fatalf("%d connections held, bound %d", o, n)
		}
	}
	// The oldest were closed: the first connection reads EOF.
	conns[0].SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conns[0].Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the connection idle the longest: read %v, want EOF", err)
	}
	// The newest still serves.
	if err := get(t, conns[len(conns)-1]); err != nil {
		t.Errorf("the newest connection: %v", err)
	}
}

// TestBusyConnectionsAreNotClosed: at the bound with every connection's
// request in progress, a new connection waits for one to end instead of
// breaking one.
func TestBusyConnectionsAreNotClosed(t *testing.T) {
	const n = 2
	block := make(chan struct{})
	addr, l := serve(t, n, block)
	var served atomic.Int32
	errs := make(chan error, n)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() {
			err := get(t, c)
			served.Add(1)
			errs <- err
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		l.mu.Lock()
		busy := 0
		for c := range l.conns {
			if !c.waiting {
				busy++
			}
		}
		l.mu.Unlock()
		if busy == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("requests not in progress")
		}
	}
	late, err := net.Dial("tcp", addr) // queued in the kernel: Accept waits
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	lateErr := make(chan error, 1)
	go func() { lateErr <- get(t, late) }()
	// It cannot be served before a busy request ends; none is closed.
	select {
	case err := <-lateErr:
		t.Fatalf("a connection past the bound was answered while every slot was busy: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if s := served.Load(); s != 0 {
		t.Fatalf("%d busy requests ended before they were released", s)
	}
	close(block)
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("a busy request: %v", err)
		}
	}
	if err := <-lateErr; err != nil {
		t.Errorf("the waiting connection once a slot freed: %v", err)
	}
}

// TestSilentConnectionMakesRoom: a connection that sends no request for
// newGrace is closed for a new one, on the listener's clock.
func TestSilentConnectionMakesRoom(t *testing.T) {
	addr, l := serve(t, 1, nil)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	l.mu.Lock()
	l.now = func() time.Time { return time.Unix(0, clock.Load()) }
	l.mu.Unlock()
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	for deadline := time.Now().Add(10 * time.Second); l.open() != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the silent connection was not accepted")
		}
	}
	clock.Add(int64(newGrace))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := get(t, c); err != nil {
		t.Fatalf("a new connection while a silent one held the only slot for %v: %v", newGrace, err)
	}
}
