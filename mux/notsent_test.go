package mux

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"switchboard/wire"
)

// failingWriter is a connection whose every write fails having written
// nothing (EPIPE: the peer closed it), as a Unix socket does once the
// daemon has cut it.
type failingWriter struct{ net.Conn }

func (failingWriter) Write([]byte) (int, error) { return 0, syscall.EPIPE }

// TestCallWhoseWriteWroteNothingIsNotSent: a call whose frame the write
// refused whole never reached the peer; Sent says so (and the error matches
// ErrClosed), so that the client retries it on a new connection. Before
// the fix it was reported as ErrConnLost (outcome unknown), which the
// client never retries: after the daemon evicted an idle front-end
// connection, the next call on it failed.
func TestCallWhoseWriteWroteNothingIsNotSent(t *testing.T) {
	cc, sc := net.Pipe()
	defer sc.Close()
	c := New(failingWriter{cc}, Config{})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.Call(ctx, wire.OpPing, nil)
	if err == nil {
		t.Fatal("a call on a connection that cannot write succeeded")
	}
	if Sent(err) || !errors.Is(err, ErrClosed) {
		t.Fatalf("a call none of whose bytes were written: %v; Sent %v, ErrClosed %v; want not sent (ErrClosed)", err, Sent(err), errors.Is(err, ErrClosed))
	}
}

// TestGoodbyeFailsCallsAsNotSent: a peer that answers a connection with a
// GOODBYE frame (id 0, an error status) and closes it read nothing from
// it: a call already written on it fails as not sent (ErrClosed and
// ErrRefused, Sent false), and so does a later one. Before, GOODBYE was a
// reply to an id never issued (ErrProtocol), and the call in flight failed
// with ErrConnLost (outcome unknown), which a client never resends unless
// the request is idempotent. Without WithGoodbye (a telephony pool) it stays
// a protocol violation: the call's outcome unknown.
func TestGoodbyeFailsCallsAsNotSent(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			cc, sc := tr.pair(t)
			c := New(cc, Config{}, WithGoodbye())
			defer c.Close()
			peer := make(chan error, 1)
			go func() { // the refusing peer: wait for the request, say goodbye unread
				defer sc.Close()
				sc.SetDeadline(time.Now().Add(5 * time.Second))
				// The whole request (a pipe's write waits for its reader),
				// which the peer then drops unexecuted.
				if _, _, _, err := wire.ReadFrame(sc, nil, wire.DefaultMaxFrame); err != nil {
					peer <- err
					return
				}
				f, err := wire.AppendFrame(nil, wire.Header{Op: wire.OpGoodbye, Flags: wire.FlagResponse, Status: wire.StatusOverloaded},
					&wire.ErrorMessage{Message: []byte("refused: at max_conns")}, wire.DefaultMaxFrame)
				if err == nil {
					_, err = sc.Write(f)
				}
				peer <- err
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := c.Call(ctx, wire.OpAllocate, raw("x"))
			if perr := <-peer; perr != nil {
				t.Fatal(perr)
			}
			if Sent(err) || !errors.Is(err, ErrClosed) || !errors.Is(err, ErrRefused) || !errors.Is(err, wire.StatusOverloaded) {
				t.Fatalf("a call on a connection the peer refused unread: %v; Sent %v, ErrClosed %v, ErrRefused %v, OVERLOADED %v; want not sent, refused, the GOODBYE's status",
					err, Sent(err), errors.Is(err, ErrClosed), errors.Is(err, ErrRefused), errors.Is(err, wire.StatusOverloaded))
			}
			if _, err := c.Call(ctx, wire.OpPing, nil); Sent(err) || !errors.Is(err, ErrRefused) {
				t.Fatalf("a later call: %v; want not sent, refused", err)
			}
		})
	}
}

// TestGoodbyeIgnoredWithoutOption: a connection made without WithGoodbye
// (the telephony pools) takes a GOODBYE as a protocol violation: a call in
// flight fails with ErrConnLost (outcome unknown), never as not sent.
func TestGoodbyeIgnoredWithoutOption(t *testing.T) {
	cc, sc := net.Pipe()
	c := New(cc, Config{})
	defer c.Close()
	go func() {
		defer sc.Close()
		wire.ReadFrame(sc, nil, wire.DefaultMaxFrame)
		f, _ := wire.AppendFrame(nil, wire.Header{Op: wire.OpGoodbye, Flags: wire.FlagResponse, Status: wire.StatusOverloaded}, &wire.ErrorMessage{}, wire.DefaultMaxFrame)
		sc.Write(f)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.Call(ctx, wire.OpReserve, raw("x"))
	if !Sent(err) || !errors.Is(err, ErrConnLost) || errors.Is(err, ErrRefused) {
		t.Fatalf("a GOODBYE on a connection without WithGoodbye: %v; want ErrConnLost (sent, outcome unknown)", err)
	}
}
