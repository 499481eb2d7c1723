package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudwego/netpoll"
	"go.uber.org/zap"

	"switchboard/wire"
)

// maxPending bounds the response bytes queued on one connection while its
// peer does not read; past it the connection is closed.
const maxPending = 8 << 20

// reqState is one request's working memory, pooled: the copy of its frame,
// decoded messages and scratch buffers, so steady-state requests reuse
// memory instead of allocating it.
type reqState struct {
	h       wire.Header
	in      []byte // request payload (a copy: netpoll's buffer is released)
	out     []byte // response frame
	scratch []byte
	cached  []byte
	kbuf    []byte
	areq    wire.AllocateRequest
	ureq    wire.UpdateRequest
	kreq    wire.KeyRequest
	res     wire.Reservation
}

var reqPool = sync.Pool{New: func() any { return &reqState{out: make([]byte, 0, 512)} }}

// conn is one front-end connection. Requests on it run concurrently;
// responses are written by flush-combining: whoever finds no flush running
// becomes the flusher and writes everything queued, so no goroutine waits
// for the socket while holding the lock and netpoll's writer is only ever
// used by one goroutine at a time (libraries.md P2).
type conn struct {
	s  *server
	nc netpoll.Connection

	inFlight atomic.Int32

	mu       sync.Mutex
	pending  []byte // guarded by mu
	spare    []byte // guarded by mu
	flushing bool   // guarded by mu
}

// server is the front-end socket server on netpoll.
type server struct {
	log *zap.Logger
	svc *service
	cfg ServerConfig

	evl      netpoll.EventLoop
	ln       net.Listener
	path     string
	inFlight atomic.Int64
	draining atomic.Bool
	handlers sync.WaitGroup

	conns sync.Map // *conn → struct{}

	stats struct {
		requests, overloaded, badFrames atomic.Uint64
	}
}

type connKey struct{}

// listenUnix creates the socket, refusing to steal one a live daemon serves.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: another daemon is serving this socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing stale socket: %w", err)
		}
	}
	ln, err := netpoll.CreateListener("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

func newServer(log *zap.Logger, svc *service, cfg ServerConfig, path string) (*server, error) {
	s := &server{log: log, svc: svc, cfg: cfg, path: path}
	ln, err := listenUnix(path)
	if err != nil {
		return nil, err
	}
	s.ln = ln
	s.evl, err = netpoll.NewEventLoop(s.onRequest,
		netpoll.WithOnPrepare(s.onPrepare),
		netpoll.WithOnDisconnect(s.onDisconnect),
		netpoll.WithReadTimeout(cfg.ReadTimeout),
		netpoll.WithWriteTimeout(cfg.WriteTimeout),
	)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return s, nil
}

// serve runs the event loop until shutdown.
func (s *server) serve() error { return s.evl.Serve(s.ln) }

// onPrepare runs on the poller: tiny and non-blocking (P8).
func (s *server) onPrepare(nc netpoll.Connection) context.Context {
	if s.draining.Load() {
		nc.Close()
		return context.Background()
	}
	c := &conn{s: s, nc: nc}
	s.conns.Store(c, struct{}{})
	nc.AddCloseCallback(func(netpoll.Connection) error {
		s.conns.Delete(c)
		return nil
	})
	return context.WithValue(context.Background(), connKey{}, c)
}

func (s *server) onDisconnect(ctx context.Context, nc netpoll.Connection) {}

// onRequest drains every complete frame buffered on the connection (P1:
// returning with unread bytes would rerun it in a loop). A partial frame
// blocks in Peek/Next under the read timeout; a frame over the maximum is
// refused from its header, before its payload is read.
func (s *server) onRequest(ctx context.Context, nc netpoll.Connection) error {
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
		h, n, err := wire.ParseHeader(hb, s.cfg.MaxFrame)
		if err != nil {
			s.stats.badFrames.Add(1)
			c.fatal(h, err)
			return nil
		}
		frame, err := r.Next(n)
		if err != nil {
			return nc.Close()
		}
		if h.IsResponse() {
			s.stats.badFrames.Add(1)
			c.fatal(h, errors.New("response frame sent to the daemon"))
			return nil
		}
		s.stats.requests.Add(1)
		if h.Op == wire.OpPing {
			// Answered inline: no allocation, no goroutine.
			if len(frame) != wire.HeaderSize {
				c.writeError(h, wire.StatusBadRequest, "PING carries no payload")
			} else {
				c.writePing(h)
			}
			continue
		}
		if !h.Op.IsFrontEnd() {
			c.writeError(h, wire.StatusUnsupported, "unsupported op "+h.Op.String())
			continue
		}
		if s.draining.Load() {
			c.writeError(h, wire.StatusUnavailable, "daemon shutting down")
			continue
		}
		if s.inFlight.Add(1) > int64(s.cfg.MaxInFlight) {
			s.inFlight.Add(-1)
			s.stats.overloaded.Add(1)
			c.writeError(h, wire.StatusOverloaded, "daemon at its in-flight limit")
			continue
		}
		if c.inFlight.Add(1) > int32(s.cfg.MaxConnInFlight) {
			c.inFlight.Add(-1)
			s.inFlight.Add(-1)
			s.stats.overloaded.Add(1)
			c.writeError(h, wire.StatusOverloaded, "connection at its in-flight limit")
			continue
		}
		rs := reqPool.Get().(*reqState)
		rs.h = h
		rs.in = append(rs.in[:0], frame[wire.HeaderSize:]...)
		s.handlers.Add(1)
		go s.handle(c, rs)
	}
	return r.Release()
}

// handle runs one request to completion and writes its response.
func (s *server) handle(c *conn, rs *reqState) {
	defer s.handlers.Done()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	out, start := wire.BeginFrame(rs.out[:0], rs.h.Response(wire.StatusOK))
	var err error
	switch rs.h.Op {
	case wire.OpAllocate:
		if err = rs.areq.Decode(rs.in); err == nil {
			out, err = s.svc.allocate(ctx, rs, &rs.areq, out)
		}
	case wire.OpLookup:
		if err = rs.kreq.Decode(rs.in); err == nil {
			out, err = s.svc.lookup(ctx, rs, rs.kreq.Key, out)
		}
	case wire.OpUpdate:
		if err = rs.ureq.Decode(rs.in); err == nil {
			out, err = s.svc.update(ctx, rs, &rs.ureq, out)
		}
	case wire.OpRelease:
		if err = rs.kreq.Decode(rs.in); err == nil {
			out, err = s.svc.release(ctx, rs, rs.kreq.Key, out)
		}
	}
	cancel()
	if err == nil {
		out, err = wire.FinishFrame(out, start, s.cfg.MaxFrame)
	}
	if err != nil {
		st, msg := wireErr(err)
		out = wire.AppendError(out[:0], rs.h, st, msg)
	}
	rs.out = out
	c.write(out)
	c.inFlight.Add(-1)
	s.inFlight.Add(-1)
	*rs = reqState{in: rs.in[:0], out: rs.out[:0], scratch: rs.scratch[:0], cached: rs.cached[:0], kbuf: rs.kbuf[:0]}
	reqPool.Put(rs)
}

// wireErr maps a handler error to a status, treating decode errors as
// BAD_REQUEST.
func wireErr(err error) (wire.Status, string) {
	for _, e := range []error{wire.ErrTruncated, wire.ErrTrailing, wire.ErrFieldTooLong, wire.ErrBadValue} {
		if errors.Is(err, e) {
			return wire.StatusBadRequest, err.Error()
		}
	}
	return statusOf(err)
}

// write queues frame and flushes unless another goroutine is flushing; the
// frame is copied, so the caller may reuse it at once.
func (c *conn) write(frame []byte) {
	c.mu.Lock()
	if len(c.pending)+len(frame) > maxPending {
		c.mu.Unlock()
		c.s.log.Warn("client not reading its responses, closing its connection")
		c.nc.Close()
		return
	}
	c.pending = append(c.pending, frame...)
	if c.flushing {
		c.mu.Unlock()
		return
	}
	c.flushing = true
	for len(c.pending) > 0 {
		buf := c.pending
		c.pending = c.spare[:0]
		c.mu.Unlock()
		err := c.flush(buf)
		c.mu.Lock()
		c.spare = buf[:0]
		if err != nil {
			c.pending = c.pending[:0]
			break
		}
	}
	c.flushing = false
	c.mu.Unlock()
}

func (c *conn) flush(b []byte) error {
	w := c.nc.Writer()
	if _, err := w.WriteBinary(b); err != nil {
		c.nc.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		c.nc.Close()
		return err
	}
	return nil
}

func (c *conn) writePing(h wire.Header) {
	var b [wire.HeaderSize]byte
	out, start := wire.BeginFrame(b[:0], h.Response(wire.StatusOK))
	out, _ = wire.FinishFrame(out, start, wire.HeaderSize)
	c.write(out)
}

func (c *conn) writeError(h wire.Header, st wire.Status, msg string) {
	var b [256]byte
	c.write(wire.AppendError(b[:0], h, st, msg))
}

// fatal answers a framing error (when the header was readable enough to
// carry an id) and closes the connection: after a bad frame the stream
// cannot be resynchronised.
func (c *conn) fatal(h wire.Header, err error) {
	if ce := c.s.log.Check(zap.InfoLevel, "closing a front-end connection after a bad frame"); ce != nil {
		ce.Write(zap.Error(err))
	}
	c.writeError(h, wire.StatusBadRequest, err.Error())
	c.nc.Close()
}

// shutdown stops taking requests, waits (bounded by ctx) for in-flight ones
// to be answered, then closes the listener and every connection.
func (s *server) shutdown(ctx context.Context) error {
	s.draining.Store(true)
	done := make(chan struct{})
	go func() { s.handlers.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("in-flight requests still running: %w", ctx.Err())
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.evl.Shutdown(sctx)
	s.conns.Range(func(k, _ any) bool {
		k.(*conn).nc.Close()
		return true
	})
	os.Remove(s.path)
	<-done // handlers end by their own request deadline
	return err
}
