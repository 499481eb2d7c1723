//go:build unix

package mux

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"switchboard/wire"
)

// unixPair returns the two ends of a Unix stream socket pair.
func unixPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	var cs [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		cs[i], err = net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return cs[0], cs[1]
}

// readGatedConn holds its reads until a write has failed (or it is closed):
// the reader goroutine sees nothing the peer sent before the writer meets
// the peer's close.
type readGatedConn struct {
	net.Conn
	open chan struct{}
	once sync.Once
}

func (g *readGatedConn) Read(b []byte) (int, error) {
	<-g.open
	return g.Conn.Read(b)
}

func (g *readGatedConn) Write(b []byte) (int, error) {
	n, err := g.Conn.Write(b)
	if err != nil {
		g.once.Do(func() { close(g.open) })
	}
	return n, err
}

func (g *readGatedConn) Close() error {
	g.once.Do(func() { close(g.open) })
	return g.Conn.Close()
}

// TestGoodbyeAfterWriteRaceIsRefused: the daemon refuses a connection with
// a GOODBYE and closes it at once; the client's write of its request then
// fails with EPIPE before its reader has read the GOODBYE (forced here by
// holding the reader until the write failed). The call must still fail as
// refused (ErrRefused, not sent, the GOODBYE's OVERLOADED status), not
// with the write's EPIPE, which a front end takes for a daemon that is
// down. Before, the write error killed the connection first.
func TestGoodbyeAfterWriteRaceIsRefused(t *testing.T) {
	cc, sc := unixPair(t)
	f, err := wire.AppendFrame(nil, wire.Header{Op: wire.OpGoodbye, Flags: wire.FlagResponse, Status: wire.StatusOverloaded},
		&wire.ErrorMessage{Message: []byte("refused: at max_conns")}, wire.DefaultMaxFrame)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Write(f); err != nil {
		t.Fatal(err)
	}
	sc.Close() // refused: closed unread
	c := New(&readGatedConn{Conn: cc, open: make(chan struct{})}, Config{}, WithGoodbye())
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = c.Call(ctx, wire.OpPing, nil)
	if Sent(err) || !errors.Is(err, ErrClosed) || !errors.Is(err, ErrRefused) || !errors.Is(err, wire.StatusOverloaded) {
		t.Fatalf("a call whose write met the close of a refusing peer: %v; Sent %v, ErrRefused %v, OVERLOADED %v; want not sent, refused, OVERLOADED",
			err, Sent(err), errors.Is(err, ErrRefused), errors.Is(err, wire.StatusOverloaded))
	}
}
