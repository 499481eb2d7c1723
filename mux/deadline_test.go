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
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	took, err := callWithin(t, c, 10*time.Second, ctx, wire.OpPing, big)
	t.Logf("big call with a 250ms deadline returned after %v: %v", took, err)
	if !errors.Is(err, ErrConnLost) || !errors.Is(err, ErrUnknownOutcome) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("big call: %v, want ErrConnLost caused by the write cut at its deadline", err)
	}
	if c.Alive() {
		t.Error("alive after a frame was cut in the middle")
	}

	hctx, hcancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer hcancel()
	took, err = callWithin(t, c, 10*time.Second, hctx, wire.OpPing, nil)
	if !errors.Is(err, ErrClosed) || Sent(err) {
		t.Fatalf("heartbeat: %v, want ErrClosed (not sent)", err)
	}
	t.Logf("heartbeat after the cut returned after %v", took)
}

// TestFlusherDeadlineBeforeAnyByteIsNotSent: when a calling flusher's
// deadline passes before any byte of its request is written (the peer is not
// reading), the request is taken back: the call fails with the bare context
// error (not sent), the connection stays usable, and the peer never sees the
// request.
func TestFlusherDeadlineBeforeAnyByteIsNotSent(t *testing.T) {
	cc, sc := transports[0].pair(t) // net.Pipe: a write waits for a reader
	c := New(cc, Config{WriteTimeout: time.Minute})
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := callWithin(t, c, 10*time.Second, ctx, wire.OpPing, raw("first"))
	if !errors.Is(err, context.DeadlineExceeded) || Sent(err) {
		t.Fatalf("err = %v (sent %v): want a bare deadline error, not sent", err, Sent(err))
	}
	if !c.Alive() {
		t.Fatal("connection died")
	}

	seen := make(chan string, 4)
	serve(t, sc, func(p *peer, h wire.Header, pl []byte) {
		seen <- string(pl)
		_ = p.reply(h, pl)
	})
	_, err = callWithin(t, c, 10*time.Second, context.Background(), wire.OpPing, raw("second"))
	if err != nil {
		t.Fatalf("call after the taken-back one: %v", err)
	}
	if got := <-seen; got != "second" {
		t.Errorf("peer first saw %q, want %q: the request not sent reached it", got, "second")
	}
}
