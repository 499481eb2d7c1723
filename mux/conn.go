package mux

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"switchboard/internal/flushq"
	"switchboard/wire"
)

const (
	// readBufSize is the bufio.Reader size of the reader goroutine: enough
	// for many small pipelined replies per read syscall.
	readBufSize = 32 << 10
	// maxKeptBuf is the largest write or reply buffer kept for reuse; a burst
	// that grew one beyond it gives the memory back instead.
	maxKeptBuf = 256 << 10
	// callerFlushRounds is how many writes a caller does on behalf of others
	// before it hands the rest to a helper goroutine and goes back to
	// waiting for its own reply: under sustained load there is always more
	// pending, and one caller must not write forever.
	callerFlushRounds = 4
)

// Option customises a Conn; options are seams for the owner, not tuning
// (tuning lives in Config). Options are applied once, by New.
type Option func(*options)

type options struct {
	onClose func(error)
	log     *zap.Logger
	goodbye bool
}

// WithGoodbye makes the connection take a GOODBYE frame (wire.OpGoodbye)
// from the peer as a refusal of the connection unread (ErrRefused: every
// call on it not sent). Only for a peer whose protocol defines it, the
// daemon's front-end socket; without it a GOODBYE is a reply to an id never
// issued (ErrProtocol), so a telephony server cannot make a call it may
// have executed look unsent.
func WithGoodbye() Option { return func(o *options) { o.goodbye = true } }

// WithOnClose registers f to run exactly once when the connection dies, with
// the cause of death (Err). It runs on the reader goroutine after the
// connection is marked dead and every in-flight call has been failed, and
// before Close returns. f must be quick and must not call Close or
// CloseWithError (they wait for the reader goroutine, which is running f).
func WithOnClose(f func(error)) Option { return func(o *options) { o.onClose = f } }

// WithLogger sets the logger (default: no logging). The connection logs only
// through Check, at Debug level, with constant messages.
func WithLogger(l *zap.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// Reply is a successful response. Payload aliases a pooled buffer that is
// valid until Release; copy what must outlive it. A Reply is owned by one
// goroutine at a time (not safe for concurrent use).
type Reply struct {
	// Header is the response's frame header (Status is always StatusOK).
	Header wire.Header
	// Payload is the response's payload, valid until Release.
	Payload []byte

	buf []byte
}

var replyPool = sync.Pool{New: func() any { return new(Reply) }}

// Release returns the reply's buffer for reuse. Call it exactly once, after
// the last use of Payload. A nil Reply is ignored.
func (r *Reply) Release() {
	if r == nil {
		return
	}
	r.Header, r.Payload = wire.Header{}, nil
	if cap(r.buf) > maxKeptBuf {
		r.buf = nil
	}
	replyPool.Put(r)
}

// result is what a waiter receives: a reply or an error.
type result struct {
	rep *Reply
	err error
}

// call is one waiting request. Pooled: ch is 1-buffered and exactly one
// result is sent to it per registration, by whoever removes the call from
// Conn.calls.
type call struct {
	op wire.Op
	ch chan result
}

var callPool = sync.Pool{New: func() any { return &call{ch: make(chan result, 1)} }}

// Conn is one multiplexed request/response connection. It is safe for
// concurrent use: any number of goroutines may Call at once.
type Conn struct {
	nc      net.Conn
	cfg     Config
	log     *zap.Logger
	onClose func(error)
	goodbye bool // WithGoodbye

	alive       atomic.Bool
	inFlight    atomic.Int64
	maxInFlight atomic.Int64
	late        atomic.Uint64

	// deadlineSet is when the flusher last armed the write deadline;
	// ownDeadline is the calling flusher's deadline for its first write
	// (zero: none), which that write consumes. Only the current flusher
	// touches them.
	deadlineSet time.Time
	ownDeadline time.Time

	mu sync.Mutex
	// Guarded by mu.
	nextID    uint64                 // last id issued; ids start at 1
	calls     map[uint64]*call       // waiting calls by id
	pending   []byte                 // encoded frames not yet handed to Write
	q         flushq.Queue[struct{}] // flush-combines pending (flushLocked)
	err       error                  // cause of death; nil while alive
	lostErr   error                  // what in-flight calls get: matches ErrConnLost
	closedErr error                  // what later calls get: matches ErrClosed

	readerDone chan struct{}
	helpers    sync.WaitGroup // flush helpers; none starts after death
}

// New wraps nc and starts the connection's single reader goroutine, which
// runs until the connection dies; Close waits for it. Zero fields of cfg mean
// their defaults; an invalid cfg panics (validate it first: a programmer
// error).
func New(nc net.Conn, cfg Config, opts ...Option) *Conn {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	o := options{log: zap.NewNop()}
	for _, opt := range opts {
		opt(&o)
	}
	c := &Conn{
		nc:         nc,
		cfg:        cfg.withDefaults(),
		log:        o.log,
		onClose:    o.onClose,
		goodbye:    o.goodbye,
		calls:      make(map[uint64]*call),
		readerDone: make(chan struct{}),
	}
	c.q.Init(&c.mu, &c.pending, (*connWriter)(c), maxKeptBuf)
	c.maxInFlight.Store(int64(c.cfg.MaxInFlight))
	c.alive.Store(true)
	go c.readLoop()
	return c
}

// Alive reports whether the connection is usable (an atomic load).
func (c *Conn) Alive() bool { return c.alive.Load() }

// InFlight returns the number of calls currently waiting for a reply.
func (c *Conn) InFlight() int { return int(c.inFlight.Load()) }

// LateReplies returns how many replies arrived for calls that had already
// given up (timed out or cancelled); they were dropped.
func (c *Conn) LateReplies() uint64 { return c.late.Load() }

// SetMaxInFlight changes the in-flight limit live; n ≤ 0 means the default.
// Calls already waiting are not affected.
func (c *Conn) SetMaxInFlight(n int) {
	if n <= 0 {
		n = DefaultMaxInFlight
	}
	c.maxInFlight.Store(int64(n))
}

// Err returns why the connection died, or nil while it is alive.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close kills the connection (if alive), fails every in-flight call with
// ErrConnLost and waits for the reader goroutine (and so for OnClose). It is
// idempotent; it returns the error of closing the underlying connection the
// first time and nil afterwards.
func (c *Conn) Close() error { return c.CloseWithError(ErrClosed) }

// CloseWithError is Close with a cause of death other than ErrClosed, e.g. a
// missed heartbeat; Err and the errors of failed calls unwrap to it.
func (c *Conn) CloseWithError(cause error) error {
	if cause == nil {
		cause = ErrClosed
	}
	var err error
	c.mu.Lock()
	first := c.killLocked(cause)
	c.mu.Unlock()
	if first {
		err = c.nc.Close()
	}
	<-c.readerDone
	c.helpers.Wait()
	return err
}

// kill is CloseWithError without waiting for the reader.
func (c *Conn) kill(cause error) {
	c.mu.Lock()
	first := c.killLocked(cause)
	c.mu.Unlock()
	if first {
		_ = c.nc.Close()
	}
}

// killLocked marks the connection dead with cause and fails every waiting
// call at once (a non-blocking send: each call's channel has room for its
// one result). It reports whether this was the first death; the caller then
// closes nc after unlocking.
func (c *Conn) killLocked(cause error) bool {
	if c.err != nil {
		return false
	}
	c.err = cause
	c.lostErr = &lostError{cause: cause}
	if errors.Is(cause, ErrClosed) {
		c.closedErr = cause
	} else {
		c.closedErr = &closedError{cause: cause}
	}
	c.alive.Store(false)
	failed := c.lostErr
	if errors.Is(cause, ErrRefused) {
		failed = c.closedErr // the peer read nothing: not sent
	}
	for _, cl := range c.calls {
		cl.ch <- result{err: failed}
	}
	clear(c.calls)
	c.q.Discard()
	return true
}

// Call sends a request with a fresh id and waits for its reply, ctx's end or
// the connection's death. On success the caller owns the Reply and must
// Release it. An error response from the peer is returned as a
// *wire.RemoteError (errors.Is matches its wire.Status). See Sent and the
// package documentation for which errors mean "not sent".
func (c *Conn) Call(ctx context.Context, op wire.Op, req wire.Payload) (*Reply, error) {
	return c.call(ctx, op, req, false)
}

// CallNow is Call for a caller that must not wait for others: if it finds
// no write in progress it writes at once, without first yielding the
// processor to let other callers' frames join its write (flushLocked). On
// a busy process that yield sends the caller to the back of the
// scheduler's queue, behind every runnable goroutine; a caller that is
// the only one of its client waiting (a polite client beside a burst)
// pays that wait and gains nothing from the batching.
func (c *Conn) CallNow(ctx context.Context, op wire.Op, req wire.Payload) (*Reply, error) {
	return c.call(ctx, op, req, true)
}

func (c *Conn) call(ctx context.Context, op wire.Op, req wire.Payload, now bool) (*Reply, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !c.alive.Load() {
		return nil, c.deadErr()
	}
	if c.inFlight.Add(1) > c.maxInFlight.Load() {
		c.inFlight.Add(-1)
		return nil, ErrBusy
	}
	cl := callPool.Get().(*call)
	cl.op = op

	c.mu.Lock()
	if c.err != nil {
		err := c.closedErr
		c.mu.Unlock()
		c.finish(cl)
		return nil, err
	}
	var err error
	c.nextID++
	id := c.nextID
	own := ownFrame{id: id, start: len(c.pending), now: now}
	c.pending, err = wire.AppendFrame(c.pending, wire.Header{Op: op, ID: id}, req, c.cfg.MaxFrame)
	if err != nil {
		c.mu.Unlock()
		c.finish(cl)
		return nil, fmt.Errorf("mux: encode %v request: %w", op, err)
	}
	own.end = len(c.pending)
	c.q.Added()
	c.calls[id] = cl
	if !c.q.Claim() {
		c.mu.Unlock()
	} else {
		own.deadline, _ = ctx.Deadline()
		if !c.flushLocked(callerFlushRounds, &own) {
			// Not sent: the caller's deadline passed before its frame
			// was written (the frame was taken back), or a write failed
			// before the frame began (the connection is dead: ErrClosed,
			// which callers retry elsewhere).
			c.finish(cl)
			err := ctx.Err()
			if d, ok := ctx.Deadline(); err == nil && ok && !time.Now().Before(d) {
				err = context.DeadlineExceeded // the clock got there before ctx's timer
			}
			if err == nil {
				err = c.deadErr()
			}
			if err == nil {
				err = context.DeadlineExceeded
			}
			return nil, err
		}
	}

	select {
	case res := <-cl.ch:
		c.finish(cl)
		return res.rep, res.err
	case <-ctx.Done():
	}
	c.mu.Lock()
	if c.calls[id] == cl {
		delete(c.calls, id)
		c.mu.Unlock()
		c.finish(cl)
		return nil, &afterSendError{cause: ctx.Err(), local: c.behind(ctx)}
	}
	c.mu.Unlock()
	// The reader or a kill already took the call: its result is on the way
	// (sent right after removal, without blocking), so take it.
	res := <-cl.ch
	c.finish(cl)
	return res.rep, res.err
}

// behind reports whether a call whose context ended after its request was
// sent timed out while this process was behind (ErrLocalDelay): the
// deadline passed (not a cancellation) and the connection holds received
// bytes its reader has not read: the peer spoke, we did not listen in
// time. Only on that failure path, never on a success.
//
// A caller woken late by its timer is no such sign: a peer that is dead
// and a process that is merely loaded would then never be blamed, and a
// breaker would never open on a loaded host.
func (c *Conn) behind(ctx context.Context) bool {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return false
	}
	n, ok := c.unreadIn()
	return ok && n > 0
}

// unreadIn returns the bytes the connection's socket has received that the
// reader has not read (SIOCINQ); false when the connection has no
// descriptor or the platform cannot tell.
func (c *Conn) unreadIn() (n int, ok bool) {
	switch nc := c.nc.(type) {
	case syscall.Conn:
		rc, err := nc.SyscallConn()
		if err != nil {
			return 0, false
		}
		if rc.Control(func(fd uintptr) { n, ok = inqFd(int(fd)) }) != nil {
			return 0, false
		}
		return n, ok
	case interface{ Fd() int }:
		return inqFd(nc.Fd())
	}
	return 0, false
}

func (c *Conn) deadErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closedErr
}

// finish returns a call whose channel is empty to the pool.
func (c *Conn) finish(cl *call) {
	c.inFlight.Add(-1)
	cl.op = 0
	callPool.Put(cl)
}

// flushLocked is the flusher's part (the caller won c.q.Claim, or is a
// helper): it writes pending buffers until none is left, unlocking around
// each write (flushq.Queue.Flush). After rounds writes (0: no limit) it
// hands what is still pending to a helper goroutine. Called with c.mu
// held; returns with c.mu released.
//
// A caller (rounds > 0) that is not alone on the connection yields the
// processor once before its first write. Without that, frames only combine
// when they queue during a write, which with few cores is rare: a caller
// usually finds no write in progress and writes its frame alone, while
// the goroutines that are about to call (woken by the same batch of replies
// or requests) wait in the run queue behind its syscall. Yielding lets them
// run first; they find a flush running (c.q), append and park, and the flusher
// then sends their frames with its own in one write. A lone caller
// (inFlight == 1) never yields, so its latency is unchanged; a yield with
// nobody runnable costs a trip through the scheduler, far less than the
// write. Helpers do not yield: they exist only because more was pending;
// nor does a CallNow caller.
//
// A caller (own != nil) never writes past its own deadline (issue 10
// point 6): its writes have the deadline min(WriteTimeout, its context's
// deadline), armed exactly. If that deadline has already passed when the
// caller gets to write (it waited for the processor), its own frame is
// taken out of the buffer (not sent: flushLocked returns false) and the
// rest is written as usual. If the caller's deadline cuts a write, the
// connection dies at once (ErrConnLost for the calls in flight): a frame
// may have been cut in the middle, and nothing left in the buffer is ever
// sent after its callers gave up. No frame is handed on to be written
// later, so a RELEASE the orphan releaser sends for a lost call on another
// connection cannot be overtaken by a frame this connection still holds.
// If the caller's own frame was not begun when a write failed (for any
// reason), the call is not sent.
func (c *Conn) flushLocked(rounds int, own *ownFrame) (sent bool) {
	sent = true
	if rounds > 0 && !own.now && c.inFlight.Load() > 1 {
		c.q.Yield()
		// A kill during the yield emptied pending: Flush does nothing.
	}
	if own != nil && !own.deadline.IsZero() && c.err == nil && c.calls[own.id] != nil {
		c.ownDeadline = own.deadline
		if !time.Now().Before(own.deadline) {
			// Late already: take the frame back and write the rest
			// for the others, as a helper would.
			c.q.TakeBack(own.start, own.end)
			delete(c.calls, own.id)
			sent, c.ownDeadline = false, time.Time{}
		}
	}
	r := c.q.Flush(rounds)
	c.ownDeadline = time.Time{} // consumed by the first write, if there was one
	switch {
	case r.More:
		// Still flushing: the helper inherits the role. Pending is
		// non-empty, so the connection is alive and Close has not
		// started waiting for helpers.
		c.helpers.Add(1)
		go c.flushHelper()
	case r.Err != nil:
		if r.Batch == 0 && sent && own != nil && r.Written <= own.start && c.err == nil && c.calls[own.id] != nil {
			// The write failed (its deadline, or the peer gone: EPIPE)
			// before the caller's own frame began: not sent, so the
			// caller may retry it elsewhere.
			delete(c.calls, own.id)
			sent = false
		}
		if c.goodbye && c.err == nil && peerGone(r.Err) {
			c.awaitGoodbye()
		}
		c.q.End()
		first := c.killLocked(fmt.Errorf("mux: write: %w", r.Err))
		c.mu.Unlock()
		if first {
			_ = c.nc.Close()
		}
		return sent
	}
	c.mu.Unlock()
	return sent
}

// connWriter is the Conn as its queue's Writer (flushq.Writer), kept out
// of Conn's exported methods.
type connWriter Conn

// WriteBatch writes one batch for the flusher: the first write of a
// calling flusher under its own deadline, the others under WriteTimeout.
func (w *connWriter) WriteBatch(b []byte, _ int, _ []flushq.Mark[struct{}]) (int, error) {
	c := (*Conn)(w)
	d := c.ownDeadline
	c.ownDeadline = time.Time{}
	return c.write(b, d)
}

// goodbyeWait bounds how long a write that found the peer gone waits for
// the reader to read what the peer sent before it went (awaitGoodbye).
const goodbyeWait = time.Second

// peerGone reports whether a write failed because the peer closed the
// connection.
func peerGone(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// awaitGoodbye lets the reader finish before a write error kills the
// connection. A peer refusing a connection writes a GOODBYE and closes it
// at once, so a write racing that close fails (EPIPE) while the GOODBYE
// that explains it is still unread: the calls would fail with the write's
// error (a daemon gone) instead of as refused ("busy, retry"). The peer is
// gone, so the reader reads what it sent, then EOF, at once; goodbyeWait
// bounds the wait for a peer that only stopped reading. Called by the
// flusher with c.mu held (released during the wait); the flush stays
// running (c.q), so other callers only append, and a kill by the reader
// fails them.
func (c *Conn) awaitGoodbye() {
	c.mu.Unlock()
	t := time.NewTimer(goodbyeWait)
	select {
	case <-c.readerDone:
	case <-t.C:
	}
	t.Stop()
	c.mu.Lock()
}

// ownFrame is a calling flusher's own request: its id, where its frame lies
// in the pending buffer, the caller's deadline (zero: none), and whether the
// caller writes without yielding first (CallNow).
type ownFrame struct {
	id         uint64
	start, end int
	deadline   time.Time
	now        bool
}

// flushHelper finishes a flush a caller handed over. Owner: the Conn
// (helpers); stop: nothing left pending, or the connection's death (a write
// error, or Close making the write fail); done: helpers.
func (c *Conn) flushHelper() {
	defer c.helpers.Done()
	c.mu.Lock()
	c.flushLocked(0, nil)
}

// write writes b under the write deadline and returns how much of it was
// written. A caller's deadline earlier than WriteTimeout from now is armed
// exactly (and the next write re-arms); otherwise the deadline is re-armed
// only when a quarter of WriteTimeout has passed since it was last armed, so
// each write gets between 3/4 and all of WriteTimeout without a timer update
// per write.
func (c *Conn) write(b []byte, callerDeadline time.Time) (int, error) {
	if wt := c.cfg.WriteTimeout; wt > 0 {
		now := time.Now()
		switch {
		case !callerDeadline.IsZero() && callerDeadline.Before(now.Add(wt)):
			if err := c.nc.SetWriteDeadline(callerDeadline); err != nil {
				return 0, err
			}
			c.deadlineSet = time.Time{} // the next write re-arms
		case c.deadlineSet.IsZero() || now.Sub(c.deadlineSet) > wt/4:
			if err := c.nc.SetWriteDeadline(now.Add(wt)); err != nil {
				return 0, err
			}
			c.deadlineSet = now
		}
	}
	return c.nc.Write(b)
}

// readLoop is the connection's reader goroutine: it dispatches replies until
// a read or protocol error, kills the connection with that error, runs
// OnClose and exits. Owner: the Conn; stop: the connection's death (Close
// closes nc); done: readerDone.
func (c *Conn) readLoop() {
	defer close(c.readerDone)
	br := bufio.NewReaderSize(c.nc, readBufSize)
	rep := replyPool.Get().(*Reply)
	for {
		h, payload, buf, err := wire.ReadFrame(br, rep.buf, c.cfg.MaxFrame)
		rep.buf = buf
		if err != nil {
			c.kill(fmt.Errorf("mux: read: %w", err))
			break
		}
		if !h.IsResponse() {
			c.kill(fmt.Errorf("%w: request frame %v id %d from the peer", ErrProtocol, h.Op, h.ID))
			break
		}
		if c.goodbye && h.Op == wire.OpGoodbye && h.ID == 0 && h.Status != wire.StatusOK {
			// The status is wrapped too (errors.Is(err, wire.StatusOverloaded):
			// "busy, retry"); Sent still says "not sent": the error
			// matches ErrClosed.
			c.kill(fmt.Errorf("%w: %w", ErrRefused, wire.DecodeError(h.Status, payload)))
			break
		}
		c.mu.Lock()
		cl := c.calls[h.ID]
		if cl != nil && cl.op == h.Op {
			delete(c.calls, h.ID)
		}
		issued := c.nextID
		c.mu.Unlock()
		if cl == nil {
			if h.ID == 0 || h.ID > issued {
				c.kill(fmt.Errorf("%w: reply to id %d, never issued", ErrProtocol, h.ID))
				break
			}
			c.late.Add(1)
			if ce := c.log.Check(zap.DebugLevel, "mux: late reply dropped"); ce != nil {
				ce.Write(zap.Stringer("op", h.Op), zap.Uint64("id", h.ID), zap.Stringer("status", h.Status))
			}
			continue
		}
		if cl.op != h.Op {
			c.kill(fmt.Errorf("%w: reply op %v to a %v request (id %d)", ErrProtocol, h.Op, cl.op, h.ID))
			break
		}
		if h.Status != wire.StatusOK {
			cl.ch <- result{err: wire.DecodeError(h.Status, payload)}
			continue
		}
		rep.Header, rep.Payload = h, payload
		cl.ch <- result{rep: rep}
		rep = replyPool.Get().(*Reply)
	}
	rep.Release()
	cause := c.Err()
	if ce := c.log.Check(zap.DebugLevel, "mux: connection dead"); ce != nil {
		ce.Write(zap.Error(cause), zap.Uint64("late_replies", c.late.Load()))
	}
	if c.onClose != nil {
		c.onClose(cause)
	}
}
