package daemon

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"

	"switchboard/wire"
)

var (
	errNotSocket   = errors.New("exists and is not a socket")
	errSocketInUse = errors.New("another daemon is serving this socket")
)

// netTransport serves the socket with the standard library: one reader
// goroutine per connection, blocking reads. It has the lowest latency for a
// few busy connections (libraries.md P9).
type netTransport struct {
	s  *server
	ln net.Listener

	mu    sync.Mutex
	conns map[*conn]net.Conn // guarded by mu
	wg    sync.WaitGroup     // reader goroutines
	once  sync.Once
}

// netConn adapts a net.Conn; writes carry the write timeout.
type netConn struct {
	nc      net.Conn
	timeout time.Duration
}

func (c netConn) writeAll(b []byte) error {
	c.nc.SetWriteDeadline(time.Now().Add(c.timeout))
	_, err := c.nc.Write(b)
	return err
}

func (c netConn) close() error { return c.nc.Close() }

func newNetTransport(s *server, ln net.Listener) *netTransport {
	return &netTransport{s: s, ln: ln, conns: map[*conn]net.Conn{}}
}

func (t *netTransport) addr() net.Addr { return t.ln.Addr() }

func (t *netTransport) serve() error {
	var delay time.Duration
	for {
		nc, err := t.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of descriptors and the like: back off, keep serving.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.s.log.Warn("accept failed", zap.Error(err), zap.Duration("retry_in", delay))
			time.Sleep(delay)
			continue
		}
		delay = 0
		if !t.s.admitConn() {
			nc.Close()
			continue
		}
		c := &conn{s: t.s, tc: netConn{nc: nc, timeout: t.s.cfg.WriteTimeout}}
		t.mu.Lock()
		if t.s.draining.Load() {
			t.mu.Unlock()
			nc.Close()
			t.s.connClosed()
			continue
		}
		t.conns[c] = nc
		t.wg.Add(1)
		t.mu.Unlock()
		go t.read(&reader{c: c, nc: nc, br: bufio.NewReaderSize(nc, 64<<10), buf: make([]byte, 0, 4096)})
	}
}

// reader is one connection's reading state; it moves from goroutine to
// goroutine with the reader role (see read).
type reader struct {
	c   *conn
	nc  net.Conn
	br  *bufio.Reader
	buf []byte
}

// read is the connection's reader. Between frames it waits without a
// deadline (idle connections are allowed); once a header has started, the
// rest of the frame must arrive within the read timeout.
//
// Leader/follower: when a request needs a handler, the goroutine that read
// it hands the reader role to a new goroutine and runs the handler itself,
// so the request never waits for a goroutine to be scheduled (on two cores
// that hop costs several microseconds of the round trip), and the next
// frame is still read at once.
func (t *netTransport) read(r *reader) {
	defer t.wg.Done()
	for {
		rs, ok := t.next(r)
		if !ok {
			r.nc.Close()
			t.mu.Lock()
			delete(t.conns, r.c)
			t.mu.Unlock()
			t.s.connClosed()
			return
		}
		if rs != nil {
			t.wg.Add(1)
			go t.read(r)
			t.s.handle(r.c, rs)
			return
		}
	}
}

// next reads one frame; it returns the request to handle (nil if it was
// answered inline) and false when the connection is done.
func (t *netTransport) next(r *reader) (*reqState, bool) {
	hb, err := r.br.Peek(wire.HeaderSize)
	if err != nil {
		if len(hb) > 0 && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
			t.s.log.Debug("front-end connection read failed", zap.Error(err))
		}
		return nil, false
	}
	h, n, err := wire.ParseHeader(hb, t.s.cfg.MaxFrame)
	if err != nil {
		t.s.stats.badFrames.Add(1)
		r.c.fatal(h, err)
		return nil, false
	}
	timed := r.br.Buffered() < n
	if timed {
		r.nc.SetReadDeadline(time.Now().Add(t.s.cfg.ReadTimeout))
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	r.buf = r.buf[:n]
	if _, err := io.ReadFull(r.br, r.buf); err != nil {
		return nil, false
	}
	if timed {
		r.nc.SetReadDeadline(time.Time{})
	}
	return t.s.admit(r.c, h, r.buf[wire.HeaderSize:]), true
}

func (t *netTransport) stopAccepting() { t.once.Do(func() { t.ln.Close() }) }

func (t *netTransport) closeAll(ctx context.Context) {
	t.stopAccepting()
	t.mu.Lock()
	for _, nc := range t.conns {
		nc.Close()
	}
	t.mu.Unlock()
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		<-done // readers end promptly once their connection is closed
	}
}
