package frontend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"switchboard/internal/deadline"
	"switchboard/internal/flushq"
	"switchboard/internal/unixsock"
	"switchboard/wire"
)

// maxPending bounds the response bytes queued on one connection while its
// peer does not read; past it the connection is cut. The reader pauses
// long before (server.max_conn_queued_bytes); only handlers already running
// when it paused can queue more.
const maxPending = 8 << 20

// reqState is one request's working memory, pooled: the copy of its frame,
// the handler's per-request state and the deadlines, so steady-state
// requests reuse memory instead of allocating it. The server writes it; the
// handler writes only hs, its own (Handler.NewState).
type reqState struct {
	h   wire.Header
	in  []byte // request payload (a copy: netpoll's buffer is released)
	out []byte // response frame
	hs  any    // the handler's state; nil until the first request uses it
	// dl bounds the whole request, wdl its wait for admission; both keep
	// their timer and channel from one request to the next.
	dl, wdl deadline.Deadline
	// wait is the request in admission's queue when it waits for a slot
	// (admission.go); its channel is kept from one request to the next.
	wait slotWaiter
}

// Handler serves the requests the front-end server admits: the server
// knows frames, connections and admission, the handler what a request
// means (the daemon's handler is the router, package route).
type Handler interface {
	// NewState returns the handler's per-request memory. The server keeps
	// it with its pooled request state and passes it to each Handle of the
	// requests that reuse that state, one at a time.
	NewState() any
	// Handle serves one request and appends its response payload to out.
	// req.Payload is valid during the call only. A nonzero held travels
	// with the response's bytes: once they are handed to the kernel the
	// server calls Settle(held, true), or Settle(held, false) when they
	// never will be (the connection died, the answer could not be framed).
	Handle(ctx context.Context, state any, req Request, out []byte) (_ []byte, held Held, _ error)
	// Settle ends a held answer (Handle).
	Settle(held Held, delivered bool)
	// StatusOf maps an error of Handle (or of admission) to the status and
	// message the client gets.
	StatusOf(err error) (wire.Status, string)
}

// Request is one admitted request, as the handler sees it.
type Request struct {
	Op      wire.Op
	Payload []byte
	// Polite: its connection had at most politeAt requests unanswered when
	// it reached admission; a handler may write its upstream call without
	// yielding.
	Polite bool
}

// Held identifies an answer whose delivery the handler must learn of
// (Handler.Handle); 0: none.
type Held uint64

// Observer is told of every answered front-end request (the daemon's
// metrics implement it). It is called on the request path: it must neither
// block nor allocate.
type Observer interface {
	Request(op wire.Op, st wire.Status, took time.Duration)
}

var reqPool = sync.Pool{New: func() any { return &reqState{out: make([]byte, 0, 512)} }}

// conn is one front-end connection. Requests on it run concurrently;
// responses are written by flush-combining (internal/flushq): whoever
// finds no flush running becomes the flusher and writes everything queued,
// so no goroutine waits for the socket while holding the lock and
// netpoll's writer is only ever used by one goroutine at a time
// (docs/libraries.md N2).
type conn struct {
	s  *Server
	tc transportConn

	inFlight atomic.Int32
	// waiters are its requests waiting for a tier slot, guarded by
	// tierSlots.mu (admission.go).
	waiters connWaiters

	// Read side (conns.go): requests read and not yet answered on the
	// socket, response bytes queued or being written, the coarse time of
	// the last request; resume wakes a reader paused at the bounds, done
	// is closed by close.
	unanswered atomic.Int32
	queued     atomic.Int64
	lastReq    atomic.Int64
	resume     chan struct{}
	paused     atomic.Bool // a reader waits on resume
	done       chan struct{}
	closeOnce  sync.Once
	cutOnce    atomic.Bool
	evicting   atomic.Bool // evicted with a GOODBYE: its reader stops (conn.retire)
	// The reaper's view, guarded by server.connMu: when the connection was
	// last seen active, and its lastReq then.
	goodAt, seenReq int64
	// writes counts the completed writes to the socket (conn.wrote): it
	// moves whenever the client reads. The reaper's and eviction's view of
	// it (conn.stalled), guarded by server.connMu: the count when responses
	// were first seen queued without it moving, and when (Unix ns; 0: not
	// stalled).
	writes      atomic.Uint32
	stallWrites uint32
	stallSince  int64
	// uid is the peer's; uidCounted when it counts in server.uidConns.
	uid        uint32
	uidCounted bool

	mu      sync.Mutex
	pending []byte // response frames not yet written, guarded by mu
	// q flush-combines pending, guarded by mu; the held answers in it
	// travel as its marks and are settled once their bytes are written
	// (Handler.Settle, conn.WriteBatch).
	q flushq.Queue[Held]
	// flushErr is the error of a failed write of the running flush: the
	// rest of that flush is settled, not written. Only the flusher
	// touches it.
	flushErr error
}

// Server is the front-end socket server: it accepts connections on a Unix
// socket, reads frames, admits requests and hands each to its Handler on
// its own goroutine, and writes the answers by flush-combining. It is safe
// for concurrent use.
type Server struct {
	log   *zap.Logger
	h     Handler
	tiers Tiers // admission's view of the tiers' capacity
	cfg   Config

	tr       transport
	path     string
	lim      atomic.Pointer[serverLimits] // the reloadable part of cfg
	m        Observer
	inFlight atomic.Int64
	open     atomic.Int64 // front-end connections counted against maxConns
	draining atomic.Bool
	handlers sync.WaitGroup
	// admitMu orders admissions against shutdown: a request is admitted
	// (draining checked, handlers.Add) under the read lock, draining is set
	// under the write lock, so once shutdown holds it no request can slip
	// in between the check and the Add and run past handlers.Wait.
	admitMu sync.RWMutex
	slots   *tierSlots // admission sized by the tiers' capacity (admission.go)
	// flushers are the goroutines writing answers the reader gave
	// (conn.writeNoWait); shutdown sets flushStop (under admitMu) and
	// waits for them once the connections are closed.
	flushers  sync.WaitGroup
	flushStop bool

	stats struct {
		requests, overloaded, badFrames, refusedConns atomic.Uint64
		pauses                                        atomic.Uint64
		notAllowed                                    atomic.Uint64 // refused by server.allow_uids/allow_gids
		keptAfterFailedWrite                          atomic.Uint64 // conns.go keptOnFailure
		cuts                                          [numCutReasons]atomic.Uint64
	}

	// Connection bookkeeping (conns.go): every open connection, for the
	// idle reaper and eviction; clock is the coarse time (Unix ns) the
	// reaper last ticked at.
	now      func() time.Time
	connMu   sync.Mutex
	conns    map[*conn]struct{} // guarded by connMu
	uidConns map[uint32]int     // connections by peer uid; guarded by connMu
	clock    atomic.Int64
	reapStop chan struct{}
	reapDone chan struct{}
}

// admitConn admits a new front-end connection over tc and returns it,
// counted and registered. First server.max_conns_per_uid, by the peer's
// uid (SO_PEERCRED): past it the connection is refused. Then
// server.max_conns: at the bound the longest-idle connection with no
// request running is cut to make room (it leaves the count once its
// transport notices), so idle or trickling connections cannot lock new
// clients out; only when every connection has a request running is the new
// one refused: it is sent a GOODBYE frame (nothing of it was read, so the
// client may resend whatever it wrote on it). False: the caller must close
// tc at once, without calling connClosed.
func (s *Server) admitConn(tc transportConn) (*conn, bool) {
	lim := s.lim.Load()
	uid, gid, hasUID := tc.peerCred()
	if !lim.allows(uid, gid, hasUID) {
		// Not a capacity refusal: no GOODBYE (a retry would be refused
		// again), the client reads EOF.
		s.stats.notAllowed.Add(1)
		if hasUID {
			s.log.Warn("front-end connection refused: peer not in server.allow_uids or server.allow_gids", zap.Uint32("uid", uid), zap.Uint32("gid", gid))
		} else {
			s.log.Warn("front-end connection refused: peer not in server.allow_uids or server.allow_gids", zap.String("uid", "unknown"))
		}
		return nil, false
	}
	// Connections are counted by uid whether or not the bound is set, so
	// that a reload setting it finds the counts right.
	perUID := hasUID
	if perUID {
		s.connMu.Lock()
		n := s.uidConns[uid]
		if lim.maxConnsPerUID > 0 && n >= lim.maxConnsPerUID {
			s.connMu.Unlock()
			s.stats.refusedConns.Add(1)
			s.log.Warn("front-end connection refused at server.max_conns_per_uid", zap.Uint32("uid", uid), zap.Int("max_conns_per_uid", lim.maxConnsPerUID))
			tc.goodbye(goodbyeMaxConnsPerUID)
			return nil, false
		}
		s.uidConns[uid] = n + 1 // reserved now: the connection keeps it, a refusal below drops it
		s.connMu.Unlock()
	}
	if s.open.Add(1) > lim.maxConns && !s.evict() {
		s.open.Add(-1)
		if perUID {
			s.connMu.Lock()
			s.dropUID(uid)
			s.connMu.Unlock()
		}
		s.stats.refusedConns.Add(1)
		s.log.Warn("front-end connection refused at server.max_conns", zap.Int64("max_conns", lim.maxConns))
		tc.goodbye(goodbyeMaxConns)
		return nil, false
	}
	return s.newConn(tc, uid, perUID), true
}

// dropUID uncounts a connection of uid; connMu held.
func (s *Server) dropUID(uid uint32) {
	if s.uidConns[uid] <= 1 {
		delete(s.uidConns, uid)
	} else {
		s.uidConns[uid]--
	}
}

// connClosed ends a connection admitConn admitted.
func (s *Server) connClosed(c *conn) {
	c.close()
	s.connMu.Lock()
	delete(s.conns, c)
	if c.uidCounted {
		s.dropUID(c.uid)
	}
	s.connMu.Unlock()
	s.open.Add(-1)
}

// transportConn is the part of a front-end connection that differs between
// transports: writing bytes and closing.
type transportConn interface {
	// writeAll writes b completely (bounded by the write timeout). On an
	// error, n is how much of b may have reached the peer: exact where the
	// transport knows it, else len(b) (an answer that may have been
	// delivered is kept, never released under a client that holds it).
	writeAll(b []byte) (n int, err error)
	close() error
	// unread returns the bytes written to the socket that the peer has
	// not read yet; false when the platform cannot tell.
	unread() (int, bool)
	// incoming returns the bytes the peer sent that the daemon has not
	// read yet; false when the platform cannot tell.
	incoming() (int, bool)
	// peerCred returns the connecting process's uid and gid
	// (SO_PEERCRED); false when the platform cannot tell.
	peerCred() (uid, gid uint32, ok bool)
	// goodbye writes what of b (a GOODBYE frame) the socket takes at once
	// and returns how much that was; it never blocks (admitConn calls it
	// on the accept path).
	goodbye(b []byte) int
}

// transport is a front-end socket server: it accepts connections, reads
// frames and hands each to server.dispatch. Two exist (transport_netpoll.go
// and transport_net.go) because netpoll is required for its scaling with
// many idle connections while the standard library wins single ping-pong
// latency on this hardware (docs/libraries.md N9); server.transport picks one.
type transport interface {
	serve() error
	// stopAccepting closes the listener.
	stopAccepting()
	// closeAll closes every connection and waits for the transport's
	// goroutines.
	closeAll(ctx context.Context)
	addr() net.Addr
}

// serverLimits are the server settings a reload may change; the request
// path loads them once per request.
type serverLimits struct {
	maxConns        int64
	maxInFlight     int64
	maxConnInFlight int32
	requestTimeout  time.Duration
	// Read side (conns.go).
	maxConnUnanswered int32
	maxConnQueued     int64
	idleTimeout       time.Duration
	maxConnsPerUID    int // 0: no bound
	// server.allow_uids and allow_gids; both empty: anyone.
	allowUIDs, allowGIDs []uint32
}

// allows reports whether a peer with uid and gid (known: ok) may connect:
// both lists empty, or its uid or gid listed.
func (l *serverLimits) allows(uid, gid uint32, ok bool) bool {
	if len(l.allowUIDs) == 0 && len(l.allowGIDs) == 0 {
		return true
	}
	return ok && (slices.Contains(l.allowUIDs, uid) || slices.Contains(l.allowGIDs, gid))
}

func limitsOf(cfg Config) *serverLimits {
	return &serverLimits{maxConns: int64(cfg.MaxConns), maxInFlight: int64(cfg.MaxInFlight), maxConnInFlight: int32(cfg.MaxConnInFlight), requestTimeout: cfg.RequestTimeout,
		maxConnUnanswered: int32(cfg.MaxConnUnanswered), maxConnQueued: int64(cfg.MaxConnQueuedBytes), idleTimeout: cfg.IdleTimeout, maxConnsPerUID: cfg.MaxConnsPerUID,
		allowUIDs: slices.Clone(cfg.AllowUIDs), allowGIDs: slices.Clone(cfg.AllowGIDs)}
}

// New listens on the Unix socket path (mode 0660) and returns the server,
// not yet serving (Serve). h serves the admitted requests, tiers bounds
// admission, m is told of every answered request; now is the reaper's clock.
func New(log *zap.Logger, h Handler, tiers Tiers, m Observer, cfg Config, path string, now func() time.Time) (*Server, error) {
	s := &Server{log: log, h: h, tiers: tiers, m: m, cfg: cfg, path: path, now: now, conns: map[*conn]struct{}{}, uidConns: map[uint32]int{}, slots: newTierSlots()}
	s.clock.Store(now().UnixNano())
	s.lim.Store(limitsOf(cfg))
	ln, err := unixsock.Listen(path, 0o660)
	if err != nil {
		return nil, err
	}
	switch cfg.Transport {
	case "net":
		s.tr = newNetTransport(s, ln)
	default:
		s.tr, err = newNetpollTransport(s, ln)
	}
	if err != nil {
		ln.Close()
		return nil, err
	}
	s.reapStop, s.reapDone = make(chan struct{}), make(chan struct{})
	go s.reap(s.reapStop, s.reapDone)
	return s, nil
}

// Serve runs the transport until Shutdown.
func (s *Server) Serve() error { return s.tr.serve() }

// dispatch handles one well-framed request: PING inline, protocol and
// admission checks, then the request on its own goroutine. payload is only
// valid during the call (it is copied).
func (s *Server) dispatch(c *conn, h wire.Header, payload []byte) {
	if rs := s.admit(c, h, payload); rs != nil {
		go s.handle(c, rs)
	}
}

// admit answers what needs no handler (PING, protocol errors, shedding) and
// returns the request state of one that does, counted in flight; the caller
// must run s.handle on it exactly once.
func (s *Server) admit(c *conn, h wire.Header, payload []byte) *reqState {
	if h.IsResponse() {
		s.stats.badFrames.Add(1)
		c.fatal(h, errors.New("response frame sent to the daemon"))
		return nil
	}
	s.stats.requests.Add(1)
	if h.Op == wire.OpPing {
		// Answered inline: no allocation, no goroutine.
		if len(payload) != 0 {
			s.m.Request(h.Op, wire.StatusBadRequest, 0)
			c.writeError(h, wire.StatusBadRequest, "PING carries no payload")
		} else {
			s.m.Request(h.Op, wire.StatusOK, 0)
			c.writePing(h)
		}
		return nil
	}
	if !h.Op.IsFrontEnd() {
		c.writeError(h, wire.StatusUnsupported, "unsupported op "+h.Op.String())
		return nil
	}
	s.admitMu.RLock()
	if s.draining.Load() {
		s.admitMu.RUnlock()
		s.m.Request(h.Op, wire.StatusUnavailable, 0)
		c.writeError(h, wire.StatusUnavailable, "daemon shutting down")
		return nil
	}
	s.handlers.Add(1)
	s.admitMu.RUnlock()
	lim := s.lim.Load()
	if s.inFlight.Add(1) > lim.maxInFlight {
		s.inFlight.Add(-1)
		s.handlers.Done()
		s.stats.overloaded.Add(1)
		s.m.Request(h.Op, wire.StatusOverloaded, 0)
		c.writeError(h, wire.StatusOverloaded, "daemon at its in-flight limit")
		return nil
	}
	if c.inFlight.Add(1) > lim.maxConnInFlight {
		c.inFlight.Add(-1)
		s.inFlight.Add(-1)
		s.handlers.Done()
		s.stats.overloaded.Add(1)
		s.m.Request(h.Op, wire.StatusOverloaded, 0)
		c.writeError(h, wire.StatusOverloaded, "connection at its in-flight limit")
		return nil
	}
	rs := reqPool.Get().(*reqState)
	rs.h = h
	rs.in = append(rs.in[:0], payload...)
	return rs
}

// handle runs one request to completion and writes its response.
func (s *Server) handle(c *conn, rs *reqState) {
	defer s.handlers.Done()
	t0 := time.Now()
	lim := s.lim.Load()
	rs.dl.Start(lim.requestTimeout)
	ctx := context.Context(&rs.dl)
	out, start := wire.BeginFrame(rs.out[:0], rs.h.Response(wire.StatusOK))
	// A slot at the tiers first (admission.go); without one, the answer is
	// OVERLOADED (or TIMEOUT), and nothing reaches a pool.
	polite := c.unanswered.Load() <= politeAt
	waited, shed := s.slots.take(ctx, s.tiers, c, lim.maxConnUnanswered/2, rs)
	admitted := t0
	if waited {
		admitted = time.Now()
	}
	if shed != nil && errors.Is(shed, wire.StatusOverloaded) {
		s.stats.overloaded.Add(1)
	}
	err := shed
	var held Held
	if err == nil {
		if rs.hs == nil {
			rs.hs = s.h.NewState()
		}
		out, held, err = s.h.Handle(ctx, rs.hs, Request{Op: rs.h.Op, Payload: rs.in, Polite: polite}, out)
		now := time.Now()
		s.slots.give(s.tiers, now, now.Sub(admitted))
	}
	rs.dl.Stop()
	if err == nil {
		out, err = wire.FinishFrame(out, start, s.cfg.MaxFrame)
	}
	st := wire.StatusOK
	if err != nil {
		var msg string
		st, msg = s.h.StatusOf(err)
		out = wire.AppendError(out[:0], rs.h, st, msg)
		if held != 0 { // an allocation whose answer could not be framed
			s.h.Settle(held, false)
			held = 0
		}
	}
	rs.out = out
	// The daemon-wide count drops, and the request is counted in the
	// metrics, before the response leaves, so a client (or a scrape) that
	// has its answer sees its request done. The connection's count drops after: the write's batching
	// reads it to know whether other responses are coming.
	s.inFlight.Add(-1)
	s.m.Request(rs.h.Op, st, time.Since(t0))
	c.writeHeld(out, held)
	c.inFlight.Add(-1)
	*rs = reqState{in: rs.in[:0], out: rs.out[:0], hs: rs.hs, dl: rs.dl, wdl: rs.wdl, wait: slotWaiter{ready: rs.wait.ready}}
	reqPool.Put(rs)
}

// write queues frame and flushes unless another goroutine is flushing; the
// frame is copied, so the caller may reuse it at once.
func (c *conn) write(frame []byte) { c.writeHeld(frame, 0) }

// writeHeld is write for a frame that carries a held answer (held, 0:
// none, Handler.Handle): held travels with the frame's bytes and is settled
// once they are handed to the kernel, or when they never will be
// (server.delivered).
func (c *conn) writeHeld(frame []byte, held Held) {
	if !c.queue(frame, held) {
		return
	}
	if c.inFlight.Load() > politeAt {
		// Not alone on the connection: yield once so that handlers about
		// to answer (woken by the same batch of telephony replies) append
		// their responses first and go out in this write (as mux does:
		// bench/results/mux-batching.txt). A lone request never yields,
		// nor does a polite connection's (politeAt in flight at most: an
		// allocation and a release): on a busy daemon the yield sends it
		// behind every runnable goroutine, for a batch of two at best
		// (bench/results/burst.txt, set 7).
		c.q.Yield()
	}
	c.flushPending()
}

// queue appends frame (carrying the held answer held, 0: none) to the
// pending bytes. True: no flush was running and the caller is now the
// flusher (c.q.Claim, c.mu held): it must call flushPending. False:
// a running flusher writes it (or the connection was cut at maxPending),
// c.mu released.
func (c *conn) queue(frame []byte, held Held) bool {
	c.mu.Lock()
	if len(c.pending)+len(frame) > maxPending {
		c.mu.Unlock()
		c.cut(cutQueueFull)
		if held != 0 {
			c.s.h.Settle(held, false)
		}
		return false
	}
	c.pending = append(c.pending, frame...)
	c.queued.Add(int64(len(frame)))
	if held != 0 {
		c.q.AddedMarked(held)
	} else {
		c.q.Added()
	}
	if !c.q.Claim() {
		c.mu.Unlock()
		return false
	}
	return true
}

// writeNoWait is write for the connection's reader (answers given without
// a handler: PONG, protocol errors, shedding): it never waits for the
// socket. If no flush is running, a flusher goroutine (counted in
// server.flushers) writes the frame. Were the reader the flusher, a client
// that does not read would hold it blocked on the full socket for up to
// server.write_timeout: the connection would stop being read at whatever
// had been read then, not at server.max_conn_unanswered or
// server.max_conn_queued_bytes, and the requests after it would never be
// read or answered (on netpoll, the input bound would go unchecked as
// well).
func (c *conn) writeNoWait(frame []byte) {
	if !c.queue(frame, 0) {
		return
	}
	c.mu.Unlock()
	if !c.s.startFlusher() {
		// Shutdown has closed the connections: the write fails at once,
		// and settles whatever handlers queued behind this frame.
		c.mu.Lock()
		c.flushPending()
		return
	}
	go func() {
		defer c.s.flushers.Done()
		c.mu.Lock()
		c.flushPending()
	}()
}

// startFlusher counts a flusher goroutine about to start (writeNoWait);
// false once shutdown waits for them (no Add may race with that Wait).
func (s *Server) startFlusher() bool {
	s.admitMu.RLock()
	defer s.admitMu.RUnlock()
	if s.flushStop {
		return false
	}
	s.flushers.Add(1)
	return true
}

// flushPending writes pending bytes until none is left; the caller is the
// flusher and holds c.mu, which is released on return.
func (c *conn) flushPending() {
	c.q.Flush(0) // WriteBatch never stops it
	c.flushErr = nil
	c.mu.Unlock()
}

// WriteBatch writes one batch of n responses for the flusher (the
// connection as the Writer of its queue, flushq.Writer) and settles the
// held answers in it. Once a write failed (the connection is closed), the
// rest of the flush is not written, only settled. It never stops the
// flush: every batch must be settled.
func (c *conn) WriteBatch(buf []byte, n int, held []flushq.Mark[Held]) (int, error) {
	err, written := c.flushErr, 0
	if err == nil {
		if written, err = c.flush(buf); err == nil {
			c.wrote(n, len(buf))
		}
	}
	if len(held) > 0 {
		c.s.delivered(held, written, err)
		if err != nil {
			c.keptOnFailure(held, written)
		}
	}
	c.flushErr = err
	return written, nil
}

// flush writes b; on an error it closes the connection and returns how
// much of b may have reached the peer (transportConn.writeAll).
func (c *conn) flush(b []byte) (int, error) {
	n, err := c.tc.writeAll(b)
	if err != nil {
		if isTimeout(err) {
			c.cut(cutWriteTimeout) // the client does not read its responses
		} else {
			c.close()
		}
		return n, err
	}
	return len(b), nil
}

// delivered settles the held answers of the frames of one write, of which
// written bytes may have reached the peer (all, when err is nil): a frame
// wholly within them counts as delivered (the client may hold its answer,
// even if the write failed later on); a frame beyond them, or cut by them,
// never reached the client whole.
func (s *Server) delivered(frames []flushq.Mark[Held], written int, err error) {
	for _, f := range frames {
		s.h.Settle(f.Val, err == nil || f.End <= written)
	}
}

// writePing answers a PING; it is called by the reader (writeNoWait).
func (c *conn) writePing(h wire.Header) {
	var b [wire.HeaderSize]byte
	out, start := wire.BeginFrame(b[:0], h.Response(wire.StatusOK))
	out, _ = wire.FinishFrame(out, start, wire.HeaderSize)
	c.writeNoWait(out)
}

// writeError answers h with an error; it is called by the reader
// (writeNoWait).
func (c *conn) writeError(h wire.Header, st wire.Status, msg string) {
	var b [256]byte
	c.writeNoWait(wire.AppendError(b[:0], h, st, msg))
}

// fatal answers a framing error (when the header was readable enough to
// carry an id) and closes the connection: after a bad frame the stream
// cannot be resynchronised.
func (c *conn) fatal(h wire.Header, err error) {
	if ce := c.s.log.Check(zap.InfoLevel, "closing a front-end connection after a bad frame"); ce != nil {
		ce.Write(zap.Error(err))
	}
	var b [256]byte
	c.write(wire.AppendError(b[:0], h, wire.StatusBadRequest, err.Error())) // the reader is done with c: it may wait
	c.close()
}

// Shutdown stops taking requests, waits (bounded by ctx) for in-flight ones
// to be answered, then closes the listener and every connection.
func (s *Server) Shutdown(ctx context.Context) error {
	s.admitMu.Lock()
	s.draining.Store(true)
	s.admitMu.Unlock()
	if s.reapStop != nil {
		close(s.reapStop)
		<-s.reapDone
	}
	if _, ok := s.tr.(*netTransport); ok {
		// The standard library's listener can stop at once; netpoll's
		// Shutdown closes it together with the connections, below.
		s.tr.stopAccepting()
	}
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
	s.tr.stopAccepting()
	s.tr.closeAll(sctx)
	os.Remove(s.path)
	<-done // handlers end by their own request deadline
	s.admitMu.Lock()
	s.flushStop = true
	s.admitMu.Unlock()
	s.flushers.Wait() // their connections are closed: their writes fail at once
	return err
}
