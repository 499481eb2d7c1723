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
