package frontend

import (
	"errors"
	"slices"
	"syscall"
	"time"

	"go.uber.org/zap"

	"switchboard/internal/flushq"
	"switchboard/internal/testhook"
	"switchboard/wire"
)

// Connection hygiene on the front-end socket: why a connection is cut, the
// per-connection backpressure bound, the idle reaper and the eviction that
// keeps a slot for a new client. The write path (conn.write) reports what
// it wrote; everything here is the read side's bookkeeping.

// cutReason says why the daemon closed a front-end connection; it is the
// reason label of switchboard_connections_cut_total.
type cutReason int

const (
	cutIdle          cutReason = iota // no request, or written responses left unread, for server.idle_timeout
	cutReadTimeout                    // a frame started but did not complete within server.read_timeout
	cutWriteTimeout                   // a response could not be written within server.write_timeout: the client does not read
	cutQueueFull                      // responses queued past the hard per-connection cap (maxPending)
	cutInputOverflow                  // netpoll only: requests buffered past the bound while reading was paused
	cutEvicted                        // the longest-idle connection, closed to make room at server.max_conns
	numCutReasons
)

var cutNames = [numCutReasons]string{"idle", "read_timeout", "write_timeout", "queue_full", "input_overflow", "evicted"}

func (r cutReason) String() string { return cutNames[r] }

// cut closes c for reason: logged once (with the peer's pending work, never
// request contents) and counted. Later calls only close.
func (c *conn) cut(reason cutReason) {
	if !c.cutOnce.CompareAndSwap(false, true) {
		c.close()
		return
	}
	c.s.stats.cuts[reason].Add(1)
	c.s.log.Warn("front-end connection cut",
		zap.Stringer("reason", reason),
		zap.Int32("unanswered", c.unanswered.Load()),
		zap.Int64("queued_bytes", c.queued.Load()))
	c.close()
}

// close closes the connection and wakes a reader paused on it. It is safe
// to call more than once and from any goroutine.
func (c *conn) close() {
	c.closeOnce.Do(func() { close(c.done) })
	c.tc.close()
}

// received records a request frame read from c: it is unanswered until its
// response has been written (conn.write's flush calls wrote).
func (c *conn) received() {
	c.unanswered.Add(1)
	c.lastReq.Store(c.s.clock.Load())
}

// wrote records n responses (b bytes) written to the socket and wakes a
// reader paused on the bounds, or an evicted connection's sayGoodbye.
func (c *conn) wrote(n int, b int) {
	c.writes.Add(1) // first: conn.stalled reads queued, then writes
	c.unanswered.Add(int32(-n))
	c.queued.Add(int64(-b))
	if c.paused.Load() || c.evicting.Load() { // only then: a channel send takes a lock
		c.wake()
	}
}

// wake signals resume, without blocking (its one slot may be full).
func (c *conn) wake() {
	select {
	case c.resume <- struct{}{}:
	default:
	}
}

// overBounds reports whether c has reached server.max_conn_unanswered or
// server.max_conn_queued_bytes: its reader must pause.
func (c *conn) overBounds() bool {
	lim := c.s.lim.Load()
	return c.unanswered.Load() >= lim.maxConnUnanswered || c.queued.Load() >= lim.maxConnQueued
}

// waitReadable pauses the reader while c is over its bounds (so the kernel's
// socket buffers push back on the client instead of the daemon executing
// more of its requests). check, when not nil, runs every poll while paused
// and may cut the connection (netpoll, whose poller keeps reading). False:
// the connection is closed.
func (c *conn) waitReadable(check func() bool) bool {
	if !c.overBounds() {
		return true
	}
	c.s.stats.pauses.Add(1)
	// paused is set before the bounds are checked again, and wrote lowers
	// the counters before it reads paused: either this loop sees the lower
	// counts or wrote sees paused and sends on resume.
	c.paused.Store(true)
	defer c.paused.Store(false)
	var tick <-chan time.Time
	if check != nil {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		tick = t.C
	}
	for c.overBounds() {
		select {
		case <-c.resume:
			if c.evicting.Load() {
				// conn.retire: stop reading, say goodbye. On netpoll
				// sayGoodbye runs meanwhile and waits on resume too:
				// the wake-up may have been its own.
				c.wake()
				return false
			}
		case <-c.done:
			return false
		case <-tick:
			if c.evicting.Load() || !check() {
				// Evicted (netpoll: conn.retirePolled): what is buffered
				// is dropped, not held against the input bound, whose cut
				// would lose the running requests' answers.
				return false
			}
		}
	}
	return true
}

// keptOnFailure counts and logs the allocation answers of a failed write
// that still count as delivered (they keep their bridges, Server.delivered):
// on net exactly those the kernel took whole before the failure; on
// netpoll, which does not say how much of a failed flush reached the
// socket, every answer of the batch (docs/protocol.md §2.4).
func (c *conn) keptOnFailure(frames []flushq.Mark[Held], written int) {
	n := 0
	for _, f := range frames {
		if f.End <= written {
			n++
		}
	}
	if n == 0 {
		return
	}
	c.s.stats.keptAfterFailedWrite.Add(uint64(n))
	c.s.log.Warn("front-end write failed: answers it may have delivered keep their bridges",
		zap.Int("answers", n), zap.String("transport", c.s.cfg.Transport))
}

// GOODBYE frames (wire.OpGoodbye, docs/protocol.md §2.3): the only frame
// of a connection refused at accept, written before it is closed unread;
// and the last frame of a quiet connection evicted at max_conns, written
// after the answers to everything read from it (conn.retire).
var (
	goodbyeMaxConns       = goodbyeFrame("refused: at max_conns")
	goodbyeMaxConnsPerUID = goodbyeFrame("refused: at max_conns_per_uid")
	goodbyeEvicted        = goodbyeFrame("evicted: at max_conns")
)

// What testhook.Evict (tests only) sees of the connection chosen.
func (c *conn) Unanswered() int64 { return int64(c.unanswered.Load()) }
func (c *conn) Writes() int64     { return int64(c.writes.Load()) }
func (c *conn) Paused() bool      { return c.paused.Load() }

// retire evicts the quiet connection c (counted and logged as a cut) so
// that its client loses nothing (docs/protocol.md §2.3): its reader stops
// reading (a read deadline in the past wakes it), what it has read is
// answered, then a GOODBYE says that nothing left unanswered was read, and
// the connection closes (transport_net.go, sayGoodbye). A request the
// client wrote after the reader stopped stays unread in the socket and is
// dropped with it: the client sends it again. Only the net transport can
// stop its reader (netpoll's poller reads every connection into its own
// buffer); on netpoll, retirePolled drops what is read after the mark.
func (c *conn) retire() {
	nc, ok := c.tc.(netConn)
	if !ok {
		if _, polled := c.tc.(netpollConn); polled {
			c.retirePolled()
		} else {
			c.cut(cutEvicted) // a transport without a graceful eviction
		}
		return
	}
	if !c.markEvicted() {
		return // being cut already
	}
	// Set before the deadline: a reader that sets its own deadline after
	// this one then sees evicting (transport_net.go, setReadDeadline).
	c.evicting.Store(true)
	if err := nc.nc.SetReadDeadline(time.Unix(1, 0)); err != nil {
		c.close()
	}
	select { // a reader paused at its bounds (waitReadable) stops too
	case c.resume <- struct{}{}:
	default:
	}
}

// markEvicted claims c's one cut for a graceful eviction (counted and
// logged as cut would); false if c is being cut already.
func (c *conn) markEvicted() bool {
	if !c.cutOnce.CompareAndSwap(false, true) {
		return false
	}
	c.s.stats.cuts[cutEvicted].Add(1)
	c.s.log.Warn("front-end connection cut",
		zap.Stringer("reason", cutEvicted),
		zap.Int32("unanswered", c.unanswered.Load()),
		zap.Int64("queued_bytes", c.queued.Load()))
	return true
}

// retirePolled is retire on the netpoll transport, whose poller cannot
// stop reading one connection: from the moment evicting is set, the
// connection's onRequest drops every frame it takes (never executed; a
// frame counts as received before evicting is read, and evicting is set
// before the answers are counted, so each frame is either answered before
// the GOODBYE or dropped), and a goroutine of its own (counted with the
// flushers, waited for at shutdown) says the GOODBYE once the answers are
// written, then closes.
func (c *conn) retirePolled() {
	if !c.s.startFlusher() {
		c.cut(cutEvicted) // shutting down: the connections are closing
		return
	}
	if !c.markEvicted() {
		c.s.flushers.Done()
		return // being cut already
	}
	c.evicting.Store(true)
	go func() {
		defer c.s.flushers.Done()
		c.sayGoodbye()
		c.close()
	}()
}

// dropEvicted is what onRequest does with a frame it took from an evicted
// connection (conn.retirePolled) after counting it received: the frame is
// never executed, and it no longer waits for an answer.
func (c *conn) dropEvicted() {
	c.unanswered.Add(-1)
	c.wake() // sayGoodbye may be waiting for exactly this one
}

// sayGoodbye ends an evicted connection's reading (its reader calls it
// once it has stopped, so nothing more is read): it waits until every
// request read from c is answered on the socket, then writes the GOODBYE
// and waits for it to be written likewise. The reader closes c after it.
// An evicted connection still holds its slot, so the wait is short: it
// goes on while a request runs (at most server.request_timeout in all) or
// while answers are being written, and ends without a GOODBYE once answers
// have waited stallLimit with no write to the socket completing and no
// request running (a client that does not read, which would not read the
// GOODBYE either), or if c closes meanwhile.
//
// The GOODBYE is written at once if the socket takes it (no answer is
// being written then: all are). If not, what is left of it is queued like
// an answer (counted as one, so that the wait ends once it is written) and
// written by a flusher goroutine: the answers before it may have left the
// socket full, and the GOODBYE was lost when only the write at once was
// tried, so that a client still reading its answers got EOF instead, and
// failed the requests it had sent after the mark as lost
// (TestRev5GoodbyeAfterAnswersOnAFullSocket).
func (c *conn) sayGoodbye() {
	// wrote wakes resume while evicting is set (before this is called).
	// Not through paused: on netpoll the reader sets and clears that one
	// meanwhile, and a wake-up lost to it held the GOODBYE for the stall
	// timer (TestRev5EvictedGoodbyeFollowsTheLastAnswer).
	stall := c.s.stallLimit()
	end := time.Now().Add(c.s.lim.Load().requestTimeout + stall)
	t := time.NewTimer(stall)
	defer t.Stop()
	writes := c.writes.Load()
	written := func() bool { // every frame counted in unanswered written
		for c.unanswered.Load() > 0 {
			select {
			case <-c.resume:
			case <-c.done:
				return false
			case <-t.C:
				w := c.writes.Load()
				if w == writes && c.inFlight.Load() == 0 || time.Now().After(end) {
					return false
				}
				writes = w
				t.Reset(stall)
			}
		}
		return true
	}
	if !written() {
		return
	}
	n := c.tc.goodbye(goodbyeEvicted)
	if n == len(goodbyeEvicted) {
		return
	}
	c.unanswered.Add(1) // the rest of the GOODBYE: wrote counts it as written
	c.writeNoWait(goodbyeEvicted[n:])
	written()
}

func goodbyeFrame(msg string) []byte {
	f, err := wire.AppendFrame(nil, wire.Header{Op: wire.OpGoodbye, Flags: wire.FlagResponse, Status: wire.StatusOverloaded},
		&wire.ErrorMessage{Message: []byte(msg)}, wire.MinMaxFrame)
	if err != nil {
		panic(err) // a constant message: a programmer error
	}
	return f
}

// writeNow writes what of b the non-blocking socket fd takes at once (a
// fresh connection's empty buffer takes it whole) and returns how much
// that was.
func writeNow(fd int, b []byte) int {
	n, err := syscall.Write(fd, b)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// newConn creates, registers and returns the connection over tc (for
// admitConn); the transport calls s.connClosed(c) exactly once when it is
// gone.
func (s *Server) newConn(tc transportConn, uid uint32, uidCounted bool) *conn {
	now := s.clock.Load()
	c := &conn{s: s, tc: tc, resume: make(chan struct{}, 1), done: make(chan struct{}), goodAt: now, uid: uid, uidCounted: uidCounted}
	// A nanosecond before the tick: among connections last heard of in the
	// same tick, one that never sent a request is evicted first.
	c.lastReq.Store(now - 1)
	c.q.Init(&c.mu, &c.pending, c, 0)
	s.connMu.Lock()
	s.conns[c] = struct{}{}
	s.connMu.Unlock()
	return c
}

// stuckQueued is the response bytes queued on a connection past which its
// client is taken as not reading (a reading client's queue empties as fast
// as the socket takes it: a few frames at most).
const stuckQueued = 64 << 10

// maxStall bounds how long a connection may have responses queued without
// one write to its socket completing before eviction takes its client as
// not reading (conn.stalled); server.write_timeout/2 when that is shorter.
const maxStall = time.Second

// stallLimit is maxStall, or half of server.write_timeout when shorter (a
// write blocked that long is cut anyway).
func (s *Server) stallLimit() time.Duration {
	if wt := s.cfg.WriteTimeout; wt > 0 && wt/2 < maxStall {
		return wt / 2
	}
	return maxStall
}

// evictProbe bounds the quiet connections evict asks the kernel about.
const evictProbe = 8

// stalled returns how long c has had responses queued without a write to
// its socket completing, as far as the looks at it (the reaper's every
// tick, eviction's) tell, and records this look at time now (Unix ns).
// A client that reads lets every write complete as soon as the socket has
// room; one that never reads, even one whose answers are small (PONGs: the
// kernel holds thousands, the daemon a few bytes), leaves the write that
// filled its socket blocked and its count unmoved. Queued bytes only drop
// when a write completes, which moves the count: an unmoved count between
// two looks, queued bytes at both, means queued bytes all along.
// server.connMu held.
func (c *conn) stalled(now int64) time.Duration {
	if c.queued.Load() <= 0 {
		c.stallSince = 0
		return 0
	}
	w := c.writes.Load() // after queued: wrote moves it before queued
	if c.stallSince == 0 || w != c.stallWrites {
		c.stallWrites, c.stallSince = w, now
		return 0
	}
	return time.Duration(now - c.stallSince)
}

// evict closes a connection to make room for a new client at
// server.max_conns. False: none qualifies, and the new client is refused.
//
// First choice: a connection whose client does not read (stuckQueued
// bytes of responses waiting for it): it holds a slot and memory it does
// not use, even while a handler is blocked writing to it (its answer then
// never reaches the client and is released). Otherwise the connection
// quiet the longest, among those with nothing going on: no request running
// or unanswered, none received since the coarse clock's last tick, and no
// byte of a request waiting in the kernel (a request in transit would be
// lost with the connection). A request a client sends in the instant its
// connection is cut still fails; the Go client sends an idempotent one
// again on a new connection. Last, when no connection is quiet: the one
// stalled the longest, whose responses have waited at least stallLimit
// without a single write to its socket completing while the kernel holds
// bytes written to it that it has not read: a client that does not read
// even though its answers are too small to pile up in the daemon (a PING
// pipeliner). It comes after the quiet ones because its cut loses the
// answers it has not read (a quiet one's costs its client a redial only).
// A connection busy by those rules is never evicted: a new client is
// refused rather than an active one broken.
func (s *Server) evict() bool {
	tick := s.clock.Load()
	now := s.now().UnixNano()
	stallMin := s.stallLimit()
	var stuck *conn
	var quiet []*conn  // the oldest first, at most evictProbe
	var stalls []*conn // the longest stalled first, at most evictProbe
	var stallFor []time.Duration
	s.connMu.Lock()
	for c := range s.conns {
		if c.cutOnce.Load() {
			continue
		}
		if c.queued.Load() >= stuckQueued {
			if stuck == nil || c.queued.Load() > stuck.queued.Load() {
				stuck = c
			}
			continue
		}
		if d := c.stalled(now); d > 0 && d >= stallMin {
			i := len(stalls)
			for i > 0 && d > stallFor[i-1] {
				i--
			}
			if i < evictProbe {
				stalls, stallFor = slices.Insert(stalls, i, c), slices.Insert(stallFor, i, d)
				if len(stalls) > evictProbe {
					stalls, stallFor = stalls[:evictProbe], stallFor[:evictProbe]
				}
			}
			continue
		}
		if c.inFlight.Load() > 0 || c.unanswered.Load() > 0 || c.lastReq.Load() >= tick {
			continue
		}
		i := len(quiet)
		for i > 0 && c.lastReq.Load() < quiet[i-1].lastReq.Load() {
			i--
		}
		if i < evictProbe {
			quiet = slices.Insert(quiet, i, c)
			if len(quiet) > evictProbe {
				quiet = quiet[:evictProbe]
			}
		}
	}
	s.connMu.Unlock()
	if stuck != nil {
		stuck.cut(cutEvicted)
		return true
	}
	for _, c := range quiet {
		if n, ok := c.tc.incoming(); ok && n > 0 {
			continue // a request on its way in
		}
		if c.inFlight.Load() > 0 || c.unanswered.Load() > 0 {
			continue // it became busy meanwhile
		}
		if h := testhook.Evict.Load(); h != nil {
			(*h)(s, c)
		}
		c.retire()
		return true
	}
	for _, c := range stalls {
		if n, ok := c.tc.unread(); ok && n == 0 {
			// The client has read everything written to it: the daemon's
			// own flush is late (a stall of the host), not the client.
			continue
		}
		c.cut(cutEvicted)
		return true
	}
	return false
}

// reapPeriod is how often the reaper ticks (and the coarse clock moves)
// for an idle timeout of idle.
func reapPeriod(idle time.Duration) time.Duration {
	return min(max(idle/8, 10*time.Millisecond), time.Second)
}

// reap runs until stop is closed: every idle_timeout/8 (at most 1s) it
// advances the coarse clock the read path stamps requests with (so
// eviction tells connections apart to the second), and cuts idle
// connections. One goroutine per
// server, started by New and stopped by Shutdown.
func (s *Server) reap(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		idle := s.lim.Load().idleTimeout
		t := time.NewTimer(reapPeriod(idle))
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.C:
		}
		now := s.now().UnixNano()
		s.clock.Store(now)
		s.reapOnce(now, idle)
	}
}

// reapOnce cuts every connection idle for longer than idle at time now. A
// connection is active when, since it was last seen active, it sent a
// request (or has one running) and its peer has read everything written to
// it: writing a PONG proves nothing until the client reads it.
func (s *Server) reapOnce(now int64, idle time.Duration) {
	var cut []*conn
	s.connMu.Lock()
	for c := range s.conns {
		c.stalled(now) // a look for eviction, which may come between ticks
		req := c.lastReq.Load()
		if req != c.seenReq || c.inFlight.Load() > 0 {
			if n, ok := c.tc.unread(); !ok || n == 0 {
				c.goodAt, c.seenReq = now, req
			}
		}
		if time.Duration(now-c.goodAt) > idle {
			cut = append(cut, c)
		}
	}
	s.connMu.Unlock()
	for _, c := range cut { // outside the lock: cut logs and closes
		c.cut(cutIdle)
	}
}

// isTimeout reports whether err is a read or write deadline (the standard
// library's and netpoll's errors both say so with Timeout).
func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
