package telsim

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"

	"switchboard/wire"
)

// Buffer sizes of a connection. The read buffer is large enough for a burst
// of pipelined requests, so replies to them are flushed together.
const (
	readBufSize  = 32 << 10
	writeBufSize = 32 << 10
)

// Messages of error replies (constant, so nothing is formatted per request).
const (
	msgStatusInRequest = "request frame carries a non-OK status"
	msgZeroKey         = "session key 0 is not a valid key"
	msgKeyExists       = "a reservation already holds this key"
	msgTombstoned      = "this key was released before its reservation arrived"
	msgCapacity        = "server at capacity"
	msgNotFound        = "no reservation under this key"
	msgUnsupported     = "op not supported by the telephony protocol"
	msgTooLarge        = "reply exceeds the maximum frame size"
	msgInjectedErrors  = "injected fault: errors"
	msgInjectedFull    = "injected fault: full"
)

// bufPool holds the copies of replies sent late.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// conn is one accepted connection. Its reader goroutine (serve) owns the
// reader-side fields; any goroutine may call close, reset and write.
type conn struct {
	s   *Server
	nc  net.Conn
	log *zap.Logger

	closing   chan struct{} // closed by close: delayed replies give up
	closeOnce sync.Once
	sem       chan struct{}  // one token per delayed reply in flight
	delayed   sync.WaitGroup // delayed-reply goroutines

	wmu  sync.Mutex // serialises writes; held only across the write itself
	bw   *bufio.Writer
	werr error // sticky write error; guarded by wmu

	// Reader-owned: the goroutine running serve, nobody else.
	br      *bufio.Reader
	rng     *rand.Rand
	in      []byte // frame buffer reused by wire.ReadFrame
	out     []byte // reply being built
	pending bool   // replies written to bw but not yet flushed
	upd     wire.UpdateRequest
	key     wire.KeyRequest
	hello   wire.Hello
	helloR  wire.HelloResponse
	load    wire.Load
	rec     wire.Record
}

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{s: s, nc: nc, closing: make(chan struct{})}
}

// init allocates what a served connection needs (not done for connections
// refused at accept).
func (c *conn) init() {
	s := c.s
	c.log = s.log
	c.rng = s.newRand()
	c.sem = make(chan struct{}, s.cfg.MaxInFlight)
	c.br = bufio.NewReaderSize(c.nc, readBufSize)
	c.bw = bufio.NewWriterSize(c.nc, writeBufSize)
	c.out = make([]byte, 0, 512)
}

// close closes the connection (idempotent); the reader then stops and
// delayed replies are dropped.
func (c *conn) close() {
	c.closeOnce.Do(func() {
		close(c.closing)
		_ = c.nc.Close()
	})
}

// reset closes the connection with an RST (SO_LINGER 0) where the
// connection is TCP.
func (c *conn) reset() {
	if tc, ok := c.nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.close()
}

// serve runs the connection until the peer leaves, a protocol error, or
// close. On a clean EOF (the client half-closed after its last request) the
// replies still owed are sent before closing.
func (c *conn) serve() {
	defer c.s.workers.Done()
	err := c.readLoop()
	if ce := c.log.Check(zap.DebugLevel, "conn closed"); ce != nil {
		ce.Write(zap.Stringer("remote", c.nc.RemoteAddr()), zap.Error(err))
	}
	if errors.Is(err, io.EOF) {
		c.flushPending()
		c.delayed.Wait()
	}
	c.close()
	c.delayed.Wait()
	c.s.forget(c)
}

// readLoop reads and handles frames until an error. A frame over the
// maximum, a bad version or flags, a truncated frame or a response frame
// ends it (and so closes the connection).
func (c *conn) readLoop() error {
	maxFrame := c.s.cfg.MaxFrame
	for {
		if c.pending && !c.frameBuffered() {
			c.flushPending() // about to block on the socket: send what is owed
		}
		h, p, buf, err := wire.ReadFrame(c.br, c.in, maxFrame)
		c.in = buf
		if err != nil {
			return err
		}
		if h.IsResponse() {
			return errResponseFrame
		}
		c.handle(h, p)
		select {
		case <-c.closing:
			return errConnClosing
		default:
		}
	}
}

// frameBuffered reports whether a whole frame is already buffered, so that
// reading it will not block.
func (c *conn) frameBuffered() bool {
	n := c.br.Buffered()
	if n < wire.HeaderSize {
		return false
	}
	b, _ := c.br.Peek(wire.LengthSize)
	return uint64(n) >= uint64(binary.BigEndian.Uint32(b))+wire.LengthSize
}

// handle answers one request, applying the fault in force.
func (c *conn) handle(h wire.Header, p []byte) {
	s := c.s
	s.stats.countOp(h.Op)
	f := s.fault.Load()
	switch {
	case f.Mode == ModeErrors && c.rng.Float64() < f.Fraction:
		s.stats.internal.Add(1)
		c.fail(h, wire.StatusInternal, msgInjectedErrors)
	case f.Mode == ModeFull && h.Op == wire.OpReserve:
		s.stats.full.Add(1)
		c.fail(h, wire.StatusCapacity, msgInjectedFull)
	case f.Mode == ModeQueue && h.Op == wire.OpReserve && h.Status == wire.StatusOK:
		c.queue(h, p, f.Latency)
		return
	default:
		c.execute(h, p)
	}
	c.reply(h, f)
}

// execute performs the request and builds its reply in c.out.
func (c *conn) execute(h wire.Header, p []byte) {
	s := c.s
	if h.Status != wire.StatusOK {
		c.fail(h, wire.StatusBadRequest, msgStatusInRequest)
		return
	}
	switch h.Op {
	case wire.OpHello:
		if err := c.hello.Decode(p); err != nil {
			c.fail(h, wire.StatusBadRequest, err.Error())
			return
		}
		if ce := c.log.Check(zap.DebugLevel, "hello"); ce != nil {
			ce.Write(zap.Stringer("remote", c.nc.RemoteAddr()), zap.ByteString("client", c.hello.Client))
		}
		c.helloR = wire.HelloResponse{Server: s.serverID, Tier: s.tier, Load: s.tab.load()}
		c.ok(h, &c.helloR)
	case wire.OpTelPing:
		if err := (wire.Empty{}).Decode(p); err != nil {
			c.fail(h, wire.StatusBadRequest, err.Error())
			return
		}
		c.load = s.tab.load()
		c.ok(h, &c.load)
	case wire.OpReserve, wire.OpTelUpdate:
		if err := c.upd.Decode(p); err != nil {
			c.fail(h, wire.StatusBadRequest, err.Error())
			return
		}
		if c.upd.Key == 0 {
			c.fail(h, wire.StatusBadRequest, msgZeroKey)
			return
		}
		var r *record
		var st wire.Status
		if h.Op == wire.OpReserve {
			var tomb bool
			r, st, tomb = s.tab.reserve(c.upd.Key, &c.upd.Spec, c.upd.Meta, c.rng)
			if tomb {
				s.stats.tombstoned.Add(1)
				c.fail(h, st, msgTombstoned)
				return
			}
		} else {
			r, st = s.tab.update(c.upd.Key, &c.upd.Spec, c.upd.Meta)
		}
		if st != wire.StatusOK {
			c.fail(h, st, statusMessage(st))
			return
		}
		c.ok(h, &r.bridge)
	case wire.OpTelRelease:
		if err := c.key.Decode(p); err != nil {
			c.fail(h, wire.StatusBadRequest, err.Error())
			return
		}
		if st := s.tab.release(c.key.Key); st != wire.StatusOK {
			c.fail(h, st, statusMessage(st))
			return
		}
		c.ok(h, nil)
	case wire.OpTelLookup:
		if err := c.key.Decode(p); err != nil {
			c.fail(h, wire.StatusBadRequest, err.Error())
			return
		}
		r := s.tab.lookup(c.key.Key)
		if r == nil {
			c.fail(h, wire.StatusNotFound, msgNotFound)
			return
		}
		c.rec = wire.Record{Bridge: r.bridge, Spec: r.spec, Meta: r.meta}
		c.ok(h, &c.rec)
	default:
		c.fail(h, wire.StatusUnsupported, msgUnsupported)
	}
}

func statusMessage(st wire.Status) string {
	switch st {
	case wire.StatusKeyExists:
		return msgKeyExists
	case wire.StatusCapacity:
		return msgCapacity
	case wire.StatusNotFound:
		return msgNotFound
	}
	return st.String()
}

// ok builds a successful reply carrying p (nil: empty payload).
func (c *conn) ok(h wire.Header, p wire.Payload) {
	out, err := wire.AppendFrame(c.out[:0], h.Response(wire.StatusOK), p, c.s.cfg.MaxFrame)
	if err != nil {
		c.fail(h, wire.StatusInternal, msgTooLarge)
		return
	}
	c.out = out
}

// fail builds an error reply.
func (c *conn) fail(h wire.Header, st wire.Status, msg string) {
	c.s.stats.countStatus(st)
	c.out = wire.AppendError(c.out[:0], h, st, msg)
}

// isDataOp reports whether the configured service latency applies to op.
func isDataOp(op wire.Op) bool {
	return op >= wire.OpReserve && op <= wire.OpTelLookup
}

// reply sends c.out now or later, mangled as the fault requires.
func (c *conn) reply(h wire.Header, f *Fault) {
	s := c.s
	switch f.Mode {
	case ModeBlackhole:
		s.stats.dropped.Add(1)
		return
	case ModeGarbage:
		c.garble(h)
		s.stats.garbage.Add(1)
	}
	var d time.Duration
	if isDataOp(h.Op) {
		d = time.Duration(s.latency.Load()) + c.jitter(time.Duration(s.jitter.Load()))
	}
	if f.Mode == ModeSlow {
		d += f.Latency + c.jitter(f.Jitter)
	}
	cut := f.Mode == ModeCut
	if d > 0 {
		c.later(d, cut)
		return
	}
	if cut {
		c.cut(c.out)
		return
	}
	c.write(c.out, false)
	c.pending = true
}

func (c *conn) jitter(j time.Duration) time.Duration {
	if j <= 0 {
		return 0
	}
	return time.Duration(c.rng.Int64N(int64(j)))
}

// garble replaces c.out with an undecodable frame answering h: a bad
// version, bad flags, or a correct header with 1–3 junk bytes, which no
// telephony response decoder accepts (the shortest, Load, needs 8).
func (c *conn) garble(h wire.Header) {
	b, start := wire.BeginFrame(c.out[:0], h.Response(wire.StatusOK))
	for range 1 + c.rng.IntN(3) {
		b = append(b, byte(c.rng.Uint32()))
	}
	b, _ = wire.FinishFrame(b, start, c.s.cfg.MaxFrame)
	switch c.rng.IntN(3) {
	case 0:
		b[start+4] = wire.Version + 1 + byte(c.rng.IntN(200))
	case 1:
		b[start+6] |= 0x80
	}
	c.out = b
}

// later sends a copy of c.out after d from a goroutine of its own, bounded
// by MaxInFlight per connection: at the bound the reader blocks here.
func (c *conn) later(d time.Duration, cut bool) {
	select {
	case c.sem <- struct{}{}:
	default:
		c.flushPending()
		select {
		case c.sem <- struct{}{}:
		case <-c.closing:
			return
		}
	}
	c.s.stats.delayed.Add(1)
	bp := bufPool.Get().(*[]byte)
	*bp = append((*bp)[:0], c.out...)
	c.delayed.Add(1)
	go c.deliver(d, bp, cut)
}

// queue executes the RESERVE h, p after d, from a goroutine of its own
// (ModeQueue): it copies the request, takes a delayed-reply token (bounded
// by MaxInFlight, like later), and answers when it has executed.
func (c *conn) queue(h wire.Header, p []byte, d time.Duration) {
	select {
	case c.sem <- struct{}{}:
	default:
		c.flushPending()
		select {
		case c.sem <- struct{}{}:
		case <-c.closing:
			return
		}
	}
	req := append([]byte(nil), p...)
	rng := c.s.newRand()
	t := c.s.clock.NewTimer(d)
	c.s.stats.queued.Add(1)
	c.delayed.Add(1)
	go func() {
		defer c.delayed.Done()
		defer func() { <-c.sem }()
		select {
		case <-t.C():
		case <-c.closing:
			t.Stop()
			return
		}
		var out []byte
		var upd wire.UpdateRequest
		switch err := upd.Decode(req); {
		case err != nil:
			out = wire.AppendError(nil, h, wire.StatusBadRequest, err.Error())
		case upd.Key == 0:
			out = wire.AppendError(nil, h, wire.StatusBadRequest, msgZeroKey)
		default:
			r, st, tomb := c.s.tab.reserve(upd.Key, &upd.Spec, upd.Meta, rng)
			switch {
			case tomb:
				c.s.stats.tombstoned.Add(1)
				out = wire.AppendError(nil, h, st, msgTombstoned)
			case st != wire.StatusOK:
				out = wire.AppendError(nil, h, st, statusMessage(st))
			default:
				var err error
				if out, err = wire.AppendFrame(nil, h.Response(wire.StatusOK), &r.bridge, c.s.cfg.MaxFrame); err != nil {
					out = wire.AppendError(nil, h, wire.StatusInternal, msgTooLarge)
				}
			}
			if st != wire.StatusOK {
				c.s.stats.countStatus(st)
			}
		}
		c.write(out, true)
	}()
}

// deliver is the goroutine of one delayed reply; it gives up on close.
func (c *conn) deliver(d time.Duration, bp *[]byte, cut bool) {
	defer c.delayed.Done()
	t := c.s.clock.NewTimer(d)
	select {
	case <-t.C():
		if cut {
			c.cut(*bp)
		} else {
			c.write(*bp, true)
		}
	case <-c.closing:
		t.Stop()
	}
	bufPool.Put(bp)
	<-c.sem
}

// cut writes the first half of frame b and closes the connection.
func (c *conn) cut(b []byte) {
	c.write(b[:len(b)/2], true)
	c.s.stats.cut.Add(1)
	c.close()
}

// flushPending flushes replies the reader wrote without flushing.
func (c *conn) flushPending() {
	if c.pending {
		c.pending = false
		c.write(nil, true)
	}
}

// write appends b to the connection's buffer, flushing if asked (or if b
// does not fit). A write error closes the connection; later writes are
// no-ops.
func (c *conn) write(b []byte, flush bool) {
	c.wmu.Lock()
	err := c.werr
	if err == nil {
		if wt := c.s.cfg.WriteTimeout; wt > 0 && (flush || len(b) > c.bw.Available()) {
			err = c.nc.SetWriteDeadline(time.Now().Add(wt))
		}
		if err == nil {
			_, err = c.bw.Write(b)
		}
		if err == nil && flush {
			err = c.bw.Flush()
		}
		c.werr = err
	}
	c.wmu.Unlock()
	if err != nil {
		c.close()
	}
}
