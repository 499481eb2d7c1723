package frontend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/cloudwego/netpoll"

	"switchboard/wire"
)

// netpollTransport serves the socket with netpoll: no goroutine per idle
// connection, OnRequest on netpoll's goroutine pool.
type netpollTransport struct {
	s     *Server
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

// errFrameTimeout: a frame did not arrive whole within the read timeout
// from its first byte. It is a timeout (isTimeout), as netpoll's own is.
var errFrameTimeout = frameTimeoutError{}

type frameTimeoutError struct{}

func (frameTimeoutError) Error() string { return "frame not complete within the read timeout" }
func (frameTimeoutError) Timeout() bool { return true }

// writeAll writes b. netpoll does not say how much of a failed flush
// reached the socket: a failure after the write began reports all of b as
// possibly delivered (kept, never released under a client holding it).
func (c netpollConn) writeAll(b []byte) (n int, err error) {
	// netpoll frees a connection's write buffer when the connection closes
	// (the peer hung up, or we closed it), and a WriteBinary after that
	// dereferences nil (netpoll v0.7.2): check first, and since the close
	// may still come between the check and the write, turn that panic into
	// the error it stands for.
	if !c.nc.IsActive() {
		return 0, errConnClosed
	}
	flushing := false // past WriteBinary: some of b may be in the socket
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, fmt.Errorf("%w (netpoll: %v)", errConnClosed, r)
			if flushing {
				n = len(b)
			}
		}
	}()
	w := c.nc.Writer()
	if _, err := w.WriteBinary(b); err != nil {
		return 0, err
	}
	flushing = true
	if err := w.Flush(); err != nil {
		return len(b), err
	}
	return len(b), nil
}

func (c netpollConn) close() error { return c.nc.Close() }

func (c netpollConn) peerCred() (uid, gid uint32, ok bool) {
	fc, isFd := c.nc.(interface{ Fd() int })
	if !isFd {
		return 0, 0, false
	}
	return peerCredFd(fc.Fd())
}

func (c netpollConn) goodbye(b []byte) int {
	if fc, ok := c.nc.(interface{ Fd() int }); ok && c.nc.IsActive() {
		return writeNow(fc.Fd(), b)
	}
	return 0
}

func (c netpollConn) unread() (int, bool) {
	fc, ok := c.nc.(interface{ Fd() int })
	if !ok || !c.nc.IsActive() {
		return 0, false
	}
	return unreadFd(fc.Fd())
}

// incoming counts what the kernel holds; netpoll's poller moves bytes from
// there into its own buffer as they arrive, and runs onRequest on them
// (the daemon's read) at once.
func (c netpollConn) incoming() (int, bool) {
	fc, ok := c.nc.(interface{ Fd() int })
	if !ok || !c.nc.IsActive() {
		return 0, false
	}
	return incomingFd(fc.Fd())
}

func newNetpollTransport(s *Server, ln net.Listener) (*netpollTransport, error) {
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
		k.(*conn).close()
		return true
	})
}

// onPrepare runs on the poller: tiny and non-blocking (docs/libraries.md N8).
func (t *netpollTransport) onPrepare(nc netpoll.Connection) context.Context {
	if t.s.draining.Load() {
		nc.Close()
		return context.Background()
	}
	c, ok := t.s.admitConn(netpollConn{nc})
	if !ok {
		nc.Close()
		return context.Background()
	}
	t.conns.Store(c, struct{}{})
	nc.AddCloseCallback(func(netpoll.Connection) error {
		t.conns.Delete(c)
		t.s.connClosed(c)
		return nil
	})
	return context.WithValue(context.Background(), connKey{}, c)
}

// onRequest drains every complete frame buffered on the connection (docs/libraries.md N1:
// returning with unread bytes would rerun it in a loop). A partial frame
// blocks in Peek/Next under the read timeout, which starts at the frame's
// first byte (onRequest runs when bytes arrive); a frame over the maximum
// is refused from its header, before its payload is read.
//
// At the connection's bounds it stops taking frames from the buffer until
// responses drain, like the net transport, but netpoll's poller keeps
// reading the socket into that buffer regardless (it has no backpressure):
// once more than server.max_conn_queued_bytes plus one frame is buffered
// the connection is cut (input_overflow).
// nextWithin reads the n bytes of a frame whose first byte came at first
// (zero: the header was buffered whole, so from now) within what is left of
// the read timeout.
func (t *netpollTransport) nextWithin(nc netpoll.Connection, r netpoll.Reader, n int, first time.Time) ([]byte, error) {
	rt := t.s.cfg.ReadTimeout
	if first.IsZero() {
		first = time.Now()
	}
	left := rt - time.Since(first)
	if left <= 0 {
		return nil, errFrameTimeout
	}
	nc.SetReadTimeout(left)
	defer nc.SetReadTimeout(rt)
	return r.Next(n)
}

func (t *netpollTransport) onRequest(ctx context.Context, nc netpoll.Connection) error {
	c, _ := ctx.Value(connKey{}).(*conn)
	if c == nil {
		return nc.Close()
	}
	r := nc.Reader()
	overflow := func() bool {
		if !nc.IsActive() {
			c.close()
			return false
		}
		if int64(r.Len()) > c.s.lim.Load().maxConnQueued+int64(t.s.cfg.MaxFrame) {
			c.cut(cutInputOverflow)
			return false
		}
		return true
	}
	for r.Len() > 0 {
		if c.evicting.Load() || !c.waitReadable(overflow) {
			if c.evicting.Load() {
				// Evicted (conn.retirePolled): what is buffered is dropped
				// unexecuted and never counted, at once rather than
				// after a pause at the bounds; the goodbye goroutine
				// writes the answers' GOODBYE and closes. Closing here
				// would cut the answers and the GOODBYE off.
				_ = r.Skip(r.Len())
				return r.Release()
			}
			return nc.Close()
		}
		var first time.Time // when a partial frame started waiting
		if r.Len() < wire.HeaderSize {
			first = time.Now()
		}
		hb, err := r.Peek(wire.HeaderSize)
		if err != nil {
			if isTimeout(err) {
				c.cut(cutReadTimeout)
			}
			return nc.Close() // read timeout on a partial header, or closed
		}
		h, n, err := wire.ParseHeader(hb, t.s.cfg.MaxFrame)
		if err != nil {
			t.s.stats.badFrames.Add(1)
			c.fatal(h, err)
			return nil
		}
		var frame []byte
		if r.Len() < n {
			// The payload is still coming: it gets what is left of the
			// read timeout from the frame's first byte, not a fresh one
			// (netpoll times each wait from its own start).
			frame, err = t.nextWithin(nc, r, n, first)
		} else {
			frame, err = r.Next(n)
		}
		if err != nil {
			if isTimeout(err) {
				c.cut(cutReadTimeout)
			}
			return nc.Close()
		}
		c.received()
		if c.evicting.Load() {
			// Evicted (conn.retirePolled): dropped, never executed; the
			// GOODBYE that follows the answers tells the client so.
			c.dropEvicted()
			continue
		}
		t.s.dispatch(c, h, frame[wire.HeaderSize:])
	}
	return r.Release()
}
