package mux

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"switchboard/wire"
)

// callWithin runs c.Call on its own goroutine and waits up to bound for it:
// a call still blocked then fails the test, and the connection is closed to
// release it.
func callWithin(t *testing.T, c *Conn, bound time.Duration, ctx context.Context, op wire.Op, req wire.Payload) (time.Duration, error) {
	t.Helper()
	type res struct {
		rep *Reply
		err error
	}
	ch := make(chan res, 1)
	t0 := time.Now()
	go func() {
		rep, err := c.Call(ctx, op, req)
		ch <- res{rep, err}
	}()
	select {
	case r := <-ch:
		r.rep.Release()
		return time.Since(t0), r.err
	case <-time.After(bound):
		t.Errorf("%v call still blocked after %v: it outlives its deadline", op, bound)
		c.Close()
		r := <-ch
		r.rep.Release()
		return time.Since(t0), r.err
	}
}

// TestFlusherHonoursDeadline is issue 10 point 6: a caller that becomes the
// flusher against a peer that stops reading (its socket buffers fill up)
// must not stay in the write past its own deadline (the write timeout is a
// minute here). Its frame was cut in the middle, so the connection dies
// (ErrConnLost: the outcome is unknown) rather than send the rest late, and
// the next call, a heartbeat, fails at once instead of queueing behind the
// stuck write.
func TestFlusherHonoursDeadline(t *testing.T) {
	cc, sc := tcpPair(t) // sc is never read
	defer sc.Close()
	// Small socket buffers, so that a modest frame fills them.
	if err := cc.(*net.TCPConn).SetWriteBuffer(32 << 10); err != nil {
		t.Fatal(err)
	}
	if err := sc.(*net.TCPConn).SetReadBuffer(32 << 10); err != nil {
		t.Fatal(err)
	}
	c := New(cc, Config{MaxFrame: 8 << 20, WriteTimeout: time.Minute})
	defer c.Close()

	big := make(raw, 4<<20) // far more than the socket buffers hold
	// The deadline must fall after the write began: framing 4 MiB under
	// the race detector on a loaded machine took longer than 250 ms, and
	// the call then rightly failed unsent (a bare context error). 2 s is
	// far more than that and far less than WriteTimeout and the 10 s
	// bound that catches a flusher writing past its caller's deadline.
	const deadline = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	took, err := callWithin(t, c, 10*time.Second, ctx, wire.OpPing, big)
	t.Logf("big call with a %v deadline returned after %v: %v", deadline, took, err)
	if !errors.Is(err, ErrConnLost) || !errors.Is(err, ErrUnknownOutcome) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("big call: %v, want ErrConnLost caused by the write cut at its deadline", err)
	}
	if c.Alive() {
		t.Error("alive after a frame was cut in the middle")
	}

	hctx, hcancel := context.WithTimeout(context.Background(), deadline)
	defer hcancel()
	took, err = callWithin(t, c, 10*time.Second, hctx, wire.OpPing, nil)
	if !errors.Is(err, ErrClosed) || Sent(err) {
		t.Fatalf("heartbeat: %v, want ErrClosed (not sent)", err)
	}
	t.Logf("heartbeat after the cut returned after %v", took)
}

// TestFlusherDeadlineBeforeAnyByteIsNotSent: when a calling flusher's
// deadline cuts its write before any byte of its request went out (the peer
// is not reading), the call fails with the bare context error (not sent),
// the connection dies (nothing it holds is sent after its callers gave up),
// and the peer never sees the request.
func TestFlusherDeadlineBeforeAnyByteIsNotSent(t *testing.T) {
	cc, sc := transports[0].pair(t) // net.Pipe: a write waits for a reader
	defer sc.Close()
	c := New(cc, Config{WriteTimeout: time.Minute})
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := callWithin(t, c, 10*time.Second, ctx, wire.OpPing, raw("first"))
	if !errors.Is(err, context.DeadlineExceeded) || Sent(err) {
		t.Fatalf("err = %v (sent %v): want a bare deadline error, not sent", err, Sent(err))
	}
	if c.Alive() {
		t.Error("alive after a write cut at a caller's deadline")
	}
	// The peer reads nothing but the end of the stream.
	p := newPeer(sc)
	if h, pl, err := p.read(); err == nil {
		t.Errorf("peer read %v %q: the request not sent reached it", h, pl)
	}
}
