// Package mux multiplexes many concurrent request/response calls over one
// framed connection that speaks the wire protocol.
//
// Both the daemon's telephony pools (pool) and the Go client of the daemon's
// socket (client) need the same thing: one long-lived connection shared by
// many goroutines, each request tagged with a fresh id and its answer matched
// by that id, in any order. Getting that right — no lock across a syscall,
// every waiter failed at once when the connection dies, no allocation per
// call — is subtle enough that it exists exactly once, here.
//
// # Design
//
// Writes use flush-combining instead of a writer goroutine (the scheme is
// internal/flushq, shared with the daemon's front-end server): a caller
// encodes its frame into a shared pending buffer under a mutex; if nobody
// is writing, it becomes the flusher, swaps the pending buffer for a spare
// one, unlocks, writes, re-locks and repeats until nothing is pending.
// Concurrent callers thus share one write syscall, no lock is held across
// I/O, and there is no goroutine handoff on the request path. What is
// mux's own is below: when the flusher yields, how long a caller flushes
// for others, deadlines, and what a failed write means; flushq calls back
// only to write a batch, with no lock held.
//
// Frames rarely queue during a write on few cores: a caller usually finds no
// write running, while the goroutines about to call wait in the run queue
// behind its syscall. So a caller that becomes the flusher while other calls
// are in flight first yields the processor once (runtime.Gosched); callers
// runnable at that moment append their frames, and one write carries them
// all. A lone caller never yields and never waits for company. (Figures:
// bench/results/mux-batching.txt.) Nor does a caller of CallNow: on a busy
// process the yield puts it behind every runnable goroutine, which a
// latency-sensitive call (a polite client's beside a burst) should not pay
// for a batch.
//
// Under sustained load there is always more pending, so a caller writes at
// most a few batches for others and then hands the flush to a short-lived
// helper goroutine (Close waits for it) and goes back to its own reply. Each
// write has a deadline (Config.WriteTimeout), so a peer that never reads
// cannot wedge the flusher; a write error kills the connection.
//
// The daemon's front-end server (package frontend) writes its answers
// through the same flushq, with its own choices around it: it carries the
// in-flight slots of the answers as per-frame marks with their byte
// offsets and settles them by how much of a write reached the peer, counts
// completed writes for its stall detection, cuts a connection at its queue
// bound, never lets the connection's reader become the flusher, and
// neither takes a frame back nor hands the flush to a helper.
//
// A caller never writes past its own deadline: its writes have the deadline
// min(WriteTimeout, its context's deadline). A caller whose deadline has
// passed by the time it gets to write (it waited for the processor) takes
// its frame back out (the call fails with its context's bare error: not
// sent) and writes the rest for the others. A write cut by a caller's
// deadline kills the connection, as any write error does: a frame may be
// cut in the middle, and nothing the connection holds is handed on to be
// written after its callers gave up (a RESERVE reaching the peer after the
// RELEASE of its orphan, sent on another connection, would leak a bridge).
// If the caller's own frame had not begun, its call is not sent. So against
// a peer that stops reading an attempt costs its own deadline, not the
// write timeout, and the heartbeat behind it finds the connection dead at
// once instead of queueing behind the stuck write.
//
// One reader goroutine per connection reads frames (wire.ReadFrame over a
// bufio.Reader, the length checked against Config.MaxFrame before the
// payload is read) straight into pooled reply buffers and hands each reply to
// its waiter through the waiter's 1-buffered channel.
//
// # What the reader tolerates and what kills the connection
//
//   - A response whose id no longer has a waiter, but which this connection
//     did issue, is a late reply to a call that timed out: expected, counted
//     (Conn.LateReplies) and dropped.
//   - A response to an id never issued, a response whose op differs from the
//     request's, or a request frame from the peer (mux is the requesting side
//     only) is a protocol violation: ErrProtocol kills the connection.
//   - With WithGoodbye (the Go client of the daemon's socket; not the
//     telephony pools), a GOODBYE frame (wire.OpGoodbye: id 0, a response
//     with an error status) is the peer refusing the connection before
//     reading from it:
//     the connection dies with ErrRefused, and every call on it, in flight
//     included, fails as not sent (ErrClosed), since none was read (a
//     GOODBYE after replies says the peer answered all it read: the calls
//     still unanswered were not read either); the
//     error wraps the GOODBYE's status too. A write that fails because the
//     peer closed (EPIPE, ECONNRESET) first lets the reader read what the
//     peer sent before closing (at most a second), so a refusal that
//     races the write is still reported as one.
//   - Any framing error (a frame over MaxFrame, a bad version or flags, a
//     truncated frame) and any read error kill the connection.
//
// On death the connection is marked dead (an atomic the callers read), every
// in-flight call fails at once with an error matching ErrConnLost, and the
// OnClose callback runs exactly once, on the reader goroutine.
//
// # Outcomes
//
// Call's errors say whether the request may have reached the peer, which a
// caller needs to decide whether a retry is safe (Sent). ErrBusy, ErrClosed,
// encoding errors and a context that ended before the write guarantee that
// nothing was sent. ErrConnLost and a context that ended after the write
// leave the outcome unknown and match ErrUnknownOutcome. An error response
// from the peer is a *wire.RemoteError that matches its wire.Status.
//
// A call that times out after its write also matches ErrLocalDelay when
// the delay may have been this process's rather than the peer's: its
// connection's socket held received bytes the reader had not read yet
// (SIOCINQ, Linux: a reply waiting for a reader goroutine that was not
// scheduled). The call fails all the same; the mark only tells a circuit
// breaker not to blame the peer for a stall of the host. The check costs
// one ioctl on that failure path only.
package mux
