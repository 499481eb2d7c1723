package frontend

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"switchboard/wire"
)

// netTransport serves the socket with the standard library: one reader
// goroutine per connection, blocking reads. It has the lowest latency for a
// few busy connections (docs/libraries.md N9).
type netTransport struct {
	s  *Server
	ln net.Listener

	mu    sync.Mutex
	conns map[*conn]net.Conn // guarded by mu
	wg    sync.WaitGroup     // worker goroutines
	once  sync.Once

	// Idle workers wait on idle for a reader role to take over (see
	// worker); quit, closed by closeAll, ends them.
	idle     chan *reader
	idleN    atomic.Int32
	quit     chan struct{}
	quitOnce sync.Once
}

// maxIdleWorkers bounds the workers kept waiting for a reader role. Each
// holds a stack grown by the requests it ran; past the bound a worker
// exits instead of waiting.
const maxIdleWorkers = 64

// netConn adapts a net.Conn; writes carry the write timeout.
type netConn struct {
	nc      net.Conn
	timeout time.Duration
}

func (c netConn) writeAll(b []byte) (int, error) {
	c.nc.SetWriteDeadline(time.Now().Add(c.timeout))
	return c.nc.Write(b) // on an error, n is what the kernel took
}

func (c netConn) close() error { return c.nc.Close() }

func (c netConn) unread() (n int, ok bool) {
	if !c.control(func(fd int) { n, ok = unreadFd(fd) }) {
		return 0, false
	}
	return n, ok
}

func (c netConn) incoming() (n int, ok bool) {
	if !c.control(func(fd int) { n, ok = incomingFd(fd) }) {
		return 0, false
	}
	return n, ok
}

func (c netConn) peerCred() (uid, gid uint32, ok bool) {
	if !c.control(func(fd int) { uid, gid, ok = peerCredFd(fd) }) {
		return 0, 0, false
	}
	return uid, gid, ok
}

func (c netConn) goodbye(b []byte) (n int) {
	c.control(func(fd int) { n = writeNow(fd, b) })
	return n
}

// control runs f on the connection's descriptor; false if it has none.
func (c netConn) control(f func(fd int)) bool {
	sc, isSys := c.nc.(syscall.Conn)
	if !isSys {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	return rc.Control(func(fd uintptr) { f(int(fd)) }) == nil
}

func newNetTransport(s *Server, ln net.Listener) *netTransport {
	return &netTransport{s: s, ln: ln, conns: map[*conn]net.Conn{}, idle: make(chan *reader), quit: make(chan struct{})}
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
		c, ok := t.s.admitConn(netConn{nc: nc, timeout: t.s.cfg.WriteTimeout})
		if !ok {
			nc.Close()
			continue
		}
		t.mu.Lock()
		if t.s.draining.Load() {
			t.mu.Unlock()
			t.s.connClosed(c)
			continue
		}
		t.conns[c] = nc
		t.wg.Add(1)
		t.mu.Unlock()
		r := &reader{c: c, nc: nc}
		r.pre.nc = nc
		go t.worker(r)
	}
}

// Read buffers. A connection holds a read buffer of bufSize only while
// bytes of its requests are buffered: a quiet connection waits for its
// next frame with a read into its small array (most requests fit whole),
// then takes a buffer from bufPool to parse from, and gives it back once
// nothing is buffered. So idle connections (thousands, in a flood) cost
// smallRead bytes each rather than bufSize, while a pipelining client
// keeps its buffer, and its big reads, for as long as its frames flow.
const (
	bufSize   = 64 << 10
	smallRead = 2 << 10
)

var bufPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufSize) }}

// reader is one connection's reading state; it moves from goroutine to
// goroutine with the reader role (see read).
type reader struct {
	c   *conn
	nc  net.Conn
	br  *bufio.Reader // from bufPool while bytes are buffered; nil when quiet
	pre prefixReader  // br's source: what the quiet wait read, then nc
	buf []byte        // a frame larger than bufSize; allocated when one comes
	// small receives the first bytes after a quiet spell.
	small [smallRead]byte
}

// prefixReader reads b, then from nc.
type prefixReader struct {
	b  []byte
	nc net.Conn
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.b) > 0 {
		n := copy(b, p.b)
		p.b = p.b[n:]
		return n, nil
	}
	return p.nc.Read(b)
}

// quiet gives r's buffer back when nothing is buffered in it.
func (r *reader) quiet() {
	if r.br != nil && r.br.Buffered() == 0 && len(r.pre.b) == 0 {
		r.br.Reset(nil)
		bufPool.Put(r.br)
		r.br = nil
	}
}

// read is the connection's reader. Between frames it waits without a
// deadline (the idle reaper judges idle connections); from the first byte
// of a header, the whole frame must arrive within the read timeout. While
// the connection is at its bounds (server.max_conn_unanswered,
// server.max_conn_queued_bytes) it reads nothing.
//
// Leader/follower: when a request needs a handler, the goroutine that read
// it hands the reader role to another goroutine and runs the handler itself,
// so the request never waits for a goroutine to be scheduled (on two cores
// that hop costs several microseconds of the round trip), and the next
// frame is still read at once. read returns once it has handled a request
// (the role is elsewhere) or the connection is done.
func (t *netTransport) read(r *reader) {
	for {
		rs, ok := t.next(r)
		if !ok {
			if r.c.evicting.Load() {
				r.c.sayGoodbye() // evicted: what was read is answered first
			}
			if r.br != nil { // the connection is done: what is buffered is dropped
				r.pre.b = nil
				r.br.Reset(nil)
				bufPool.Put(r.br)
				r.br = nil
			}
			t.mu.Lock()
			delete(t.conns, r.c)
			t.mu.Unlock()
			t.s.connClosed(r.c)
			return
		}
		if rs != nil {
			t.handoff(r)
			t.s.handle(r.c, rs)
			return
		}
	}
}

// handoff gives the reader role to an idle worker, or to a new one if none
// waits. Reusing workers matters: a fresh goroutine's small stack is grown
// (copied) on the way down to the telephony write of every request it
// handles, 7 % of the CPU under pipelined load (bench/results/throughput.txt).
func (t *netTransport) handoff(r *reader) {
	select {
	case t.idle <- r:
	default:
		t.wg.Add(1)
		go t.worker(r)
	}
}

// worker takes reader roles until closeAll, or until enough others wait.
func (t *netTransport) worker(r *reader) {
	defer t.wg.Done()
	for {
		t.read(r)
		if t.idleN.Add(1) > maxIdleWorkers {
			t.idleN.Add(-1)
			return
		}
		select {
		case r = <-t.idle:
			t.idleN.Add(-1)
		case <-t.quit:
			t.idleN.Add(-1)
			return
		}
	}
}

// next reads one frame; it returns the request to handle (nil if it was
// answered inline) and false when the connection is done.
func (t *netTransport) next(r *reader) (*reqState, bool) {
	if !r.c.waitReadable(nil) || r.c.evicting.Load() {
		return nil, false
	}
	// The wait for a frame's first byte is untimed; from it on the frame
	// must arrive within the read timeout (a partial header or payload
	// does not hold the reader forever).
	for r.br == nil {
		n, err := r.nc.Read(r.small[:])
		if n == 0 {
			if err != nil {
				return nil, false
			}
			continue
		}
		r.pre.b = r.small[:n]
		r.br = bufPool.Get().(*bufio.Reader)
		r.br.Reset(&r.pre)
	}
	if _, err := r.br.Peek(1); err != nil {
		return nil, false
	}
	timed := r.br.Buffered() < wire.HeaderSize
	if timed && !r.setReadDeadline(time.Now().Add(t.s.cfg.ReadTimeout)) {
		return nil, false
	}
	hb, err := r.br.Peek(wire.HeaderSize)
	if err != nil {
		t.readFailed(r, err)
		return nil, false
	}
	h, n, err := wire.ParseHeader(hb, t.s.cfg.MaxFrame)
	if err != nil {
		t.s.stats.badFrames.Add(1)
		r.c.fatal(h, err)
		return nil, false
	}
	if !timed && r.br.Buffered() < n {
		timed = true
		if !r.setReadDeadline(time.Now().Add(t.s.cfg.ReadTimeout)) {
			return nil, false
		}
	}
	var frame []byte
	if n <= r.br.Size() {
		frame, err = r.br.Peek(n) // parsed in place, discarded below
	} else {
		if cap(r.buf) < n {
			r.buf = make([]byte, n)
		}
		frame = r.buf[:n]
		_, err = io.ReadFull(r.br, frame)
	}
	if err != nil {
		t.readFailed(r, err)
		return nil, false
	}
	if timed && !r.setReadDeadline(time.Time{}) {
		return nil, false
	}
	r.c.received()
	rs := t.s.admit(r.c, h, frame[wire.HeaderSize:]) // copies the payload
	if n <= r.br.Size() {
		r.br.Discard(n)
	}
	r.quiet()
	return rs, true
}

// setReadDeadline sets the reader's read deadline; false when the
// connection is being evicted (conn.retire), whose deadline in the past
// this one may have replaced: the reader stops. retire sets evicting
// before its deadline, so a deadline set after retire's sees it.
func (r *reader) setReadDeadline(d time.Time) bool {
	r.nc.SetReadDeadline(d)
	return !r.c.evicting.Load()
}

// readFailed ends a connection whose frame did not complete: cut (logged,
// counted) when the read timeout passed, quietly when the peer went away
// or the connection is being evicted (its reader was stopped).
func (t *netTransport) readFailed(r *reader, err error) {
	switch {
	case r.c.evicting.Load():
	case isTimeout(err):
		r.c.cut(cutReadTimeout)
	case !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF):
		t.s.log.Debug("front-end connection read failed", zap.Error(err))
	}
}

func (t *netTransport) stopAccepting() { t.once.Do(func() { t.ln.Close() }) }

func (t *netTransport) closeAll(ctx context.Context) {
	t.stopAccepting()
	t.mu.Lock()
	for c := range t.conns {
		c.close() // wakes a reader paused at its bounds, too
	}
	t.mu.Unlock()
	t.quitOnce.Do(func() { close(t.quit) })
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		<-done // readers end promptly once their connection is closed
	}
}
