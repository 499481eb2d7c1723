package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cloudwego/netpoll"

	"switchboard/wire"
)

// listenUnix creates the socket, refusing to steal one a live daemon serves,
// and gives it mode: 0660 for the front-end socket (owner and group, i.e.
// the XML front end's account), 0600 for the admin socket. Between bind and
// chmod the socket has the process umask's mode (0755 under systemd's
// default umask 0022: nobody else may connect).
func listenUnix(path string, mode os.FileMode) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, &os.PathError{Op: "listen", Path: path, Err: errNotSocket}
		}
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, &os.PathError{Op: "listen", Path: path, Err: errSocketInUse}
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	// The path is ours to remove at shutdown, not the listener's at Close
	// (netpoll duplicates the descriptor).
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// netpollTransport serves the socket with netpoll: no goroutine per idle
// connection, OnRequest on netpoll's goroutine pool.
type netpollTransport struct {
	s     *server
	ln    net.Listener
	evl   netpoll.EventLoop
	conns sync.Map // *conn → netpoll.Connection
	once  sync.Once
}

type connKey struct{}

// netpollConn adapts a netpoll.Connection.
type netpollConn struct{ nc netpoll.Connection }

// errConnClosed: a write to a connection already closed.
var errConnClosed = errors.New("front-end connection closed")

func (c netpollConn) writeAll(b []byte) (err error) {
	// netpoll frees a connection's write buffer when the connection closes
	// (the peer hung up, or we closed it), and a WriteBinary after that
	// dereferences nil (netpoll v0.7.2): check first, and since the close
	// may still come between the check and the write, turn that panic into
	// the error it stands for.
	if !c.nc.IsActive() {
		return errConnClosed
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w (netpoll: %v)", errConnClosed, r)
		}
	}()
	w := c.nc.Writer()
	if _, err := w.WriteBinary(b); err != nil {
		return err
	}
	return w.Flush()
}

func (c netpollConn) close() error { return c.nc.Close() }

func newNetpollTransport(s *server, ln net.Listener) (*netpollTransport, error) {
	t := &netpollTransport{s: s, ln: ln}
	var err error
	t.evl, err = netpoll.NewEventLoop(t.onRequest,
		netpoll.WithOnPrepare(t.onPrepare),
		netpoll.WithReadTimeout(s.cfg.ReadTimeout),
		netpoll.WithWriteTimeout(s.cfg.WriteTimeout),
	)
	return t, err
}

func (t *netpollTransport) serve() error { return t.evl.Serve(t.ln) }
func (t *netpollTransport) addr() net.Addr {
	return t.ln.Addr()
}

// stopAccepting shuts the event loop down, which closes the listener and
// the idle connections (all of ours are idle between frames).
func (t *netpollTransport) stopAccepting() {
	t.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		t.evl.Shutdown(ctx)
		t.ln.Close()
	})
}

func (t *netpollTransport) closeAll(ctx context.Context) {
	t.stopAccepting()
	t.conns.Range(func(k, _ any) bool {
		k.(*conn).tc.close()
		return true
	})
}

// onPrepare runs on the poller: tiny and non-blocking (P8).
func (t *netpollTransport) onPrepare(nc netpoll.Connection) context.Context {
	if t.s.draining.Load() || !t.s.admitConn() {
		nc.Close()
		return context.Background()
	}
	c := &conn{s: t.s, tc: netpollConn{nc}}
	t.conns.Store(c, struct{}{})
	nc.AddCloseCallback(func(netpoll.Connection) error {
		t.conns.Delete(c)
		t.s.connClosed()
		return nil
	})
	return context.WithValue(context.Background(), connKey{}, c)
}

// onRequest drains every complete frame buffered on the connection (P1:
// returning with unread bytes would rerun it in a loop). A partial frame
// blocks in Peek/Next under the read timeout; a frame over the maximum is
// refused from its header, before its payload is read.
func (t *netpollTransport) onRequest(ctx context.Context, nc netpoll.Connection) error {
	c, _ := ctx.Value(connKey{}).(*conn)
	if c == nil {
		return nc.Close()
	}
	r := nc.Reader()
	for r.Len() > 0 {
		hb, err := r.Peek(wire.HeaderSize)
		if err != nil {
			return nc.Close() // read timeout on a partial header, or closed
		}
		h, n, err := wire.ParseHeader(hb, t.s.cfg.MaxFrame)
		if err != nil {
			t.s.stats.badFrames.Add(1)
			c.fatal(h, err)
			return nil
		}
		frame, err := r.Next(n)
		if err != nil {
			return nc.Close()
		}
		t.s.dispatch(c, h, frame[wire.HeaderSize:])
	}
	return r.Release()
}
