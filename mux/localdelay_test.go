//go:build linux

package mux

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"switchboard/wire"
)

// heldConn is a TCP connection whose reads wait until release: the reader
// goroutine of a Conn over it is held back as a starved one would be,
// while what the peer sends lands in the socket's receive queue.
type heldConn struct {
	*net.TCPConn
	gate chan struct{}
	once sync.Once
}

func (h *heldConn) Read(b []byte) (int, error) {
	<-h.gate
	return h.TCPConn.Read(b)
}

func (h *heldConn) release() { h.once.Do(func() { close(h.gate) }) }

func (h *heldConn) Close() error {
	h.release()
	return h.TCPConn.Close()
}

// endCtx is a context whose deadline the test sets and whose end the test
// triggers: it ends with context.DeadlineExceeded when end is called,
// whatever the clock says, so no timer decides the outcome.
type endCtx struct {
	context.Context
	mu       sync.Mutex
	deadline time.Time
	done     chan struct{}
	once     sync.Once
}

func newEndCtx() *endCtx {
	return &endCtx{Context: context.Background(), deadline: time.Now().Add(time.Hour), done: make(chan struct{})}
}

func (c *endCtx) Deadline() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deadline, true
}
func (c *endCtx) Done() <-chan struct{} { return c.done }
func (c *endCtx) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}
func (c *endCtx) setDeadline(d time.Time) {
	c.mu.Lock()
	c.deadline = d
	c.mu.Unlock()
}
func (c *endCtx) end() { c.once.Do(func() { close(c.done) }) }

// heldPair is a Conn whose reader is held back, and the peer's side.
func heldPair(t *testing.T) (*Conn, *heldConn, *peer) {
	t.Helper()
	cc, sc := tcpPair(t)
	h := &heldConn{TCPConn: cc.(*net.TCPConn), gate: make(chan struct{})}
	c := New(h, Config{})
	p := newPeer(sc)
	t.Cleanup(func() {
		c.Close()
		sc.Close()
	})
	return c, h, p
}

// TestTimeoutWithReplyReceivedIsLocalDelay: a call that times out while its
// reply already sits in the connection's receive queue (the reader
// goroutine not scheduled, as on a starved machine) fails as before, sent
// with an unknown outcome, and also matches ErrLocalDelay: the delay was
// ours, not the peer's. One whose reply never came does not, nor does a
// cancellation.
func TestTimeoutWithReplyReceivedIsLocalDelay(t *testing.T) {
	call := func(c *Conn, ctx context.Context) chan error {
		errc := make(chan error, 1)
		go func() {
			rep, err := c.Call(ctx, wire.OpPing, nil)
			rep.Release()
			errc <- err
		}()
		return errc
	}

	t.Run("reply in the receive queue", func(t *testing.T) {
		c, h, p := heldPair(t)
		ctx := newEndCtx()
		errc := call(c, ctx)
		req, _, err := p.read()
		if err != nil {
			t.Fatal(err)
		}
		if err := p.reply(req, nil); err != nil {
			t.Fatal(err)
		}
		waitInq(t, h)
		ctx.end()
		err = <-errc
		if !errors.Is(err, ErrLocalDelay) || !errors.Is(err, ErrUnknownOutcome) || !errors.Is(err, context.DeadlineExceeded) || !Sent(err) {
			t.Fatalf("timeout with the reply received and unread: %v; want ErrLocalDelay, ErrUnknownOutcome, DeadlineExceeded, sent", err)
		}
	})

	t.Run("no reply", func(t *testing.T) {
		c, _, p := heldPair(t)
		ctx := newEndCtx()
		errc := call(c, ctx)
		if _, _, err := p.read(); err != nil {
			t.Fatal(err)
		}
		ctx.end()
		err := <-errc
		if errors.Is(err, ErrLocalDelay) || !errors.Is(err, ErrUnknownOutcome) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("timeout with nothing received: %v; want ErrUnknownOutcome and DeadlineExceeded, not ErrLocalDelay", err)
		}
	})

	t.Run("caller woke late", func(t *testing.T) {
		c, _, p := heldPair(t)
		ctx := newEndCtx()
		errc := call(c, ctx)
		if _, _, err := p.read(); err != nil {
			t.Fatal(err)
		}
		// The deadline passed a second before the caller is woken, and
		// nothing was received: a late timer is not evidence that the
		// peer answered, so the peer is blamed as for any timeout.
		ctx.setDeadline(time.Now().Add(-time.Second))
		ctx.end()
		if err := <-errc; errors.Is(err, ErrLocalDelay) || !errors.Is(err, ErrUnknownOutcome) {
			t.Fatalf("timeout noticed a second late, nothing received: %v; want ErrUnknownOutcome, not ErrLocalDelay", err)
		}
	})

	t.Run("cancelled with the reply received", func(t *testing.T) {
		c, h, p := heldPair(t)
		ctx, cancel := context.WithCancel(context.Background())
		errc := call(c, ctx)
		req, _, err := p.read()
		if err != nil {
			t.Fatal(err)
		}
		if err := p.reply(req, nil); err != nil {
			t.Fatal(err)
		}
		waitInq(t, h)
		cancel()
		if err := <-errc; errors.Is(err, ErrLocalDelay) || !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled call: %v; want context.Canceled, not ErrLocalDelay", err)
		}
	})
}

// waitInq waits until the held connection's receive queue holds bytes (the
// peer's reply crossed loopback): a condition, bounded generously.
func waitInq(t *testing.T, h *heldConn) {
	t.Helper()
	rc, err := h.TCPConn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(10 * time.Second); ; {
		var n int
		var ok bool
		if err := rc.Control(func(fd uintptr) { n, ok = inqFd(int(fd)) }); err != nil || !ok {
			t.Fatalf("SIOCINQ: %v", err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(end) {
			t.Fatal("the reply never reached the receive queue")
		}
		time.Sleep(time.Millisecond)
	}
}
