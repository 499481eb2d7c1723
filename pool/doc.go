// Package pool keeps warm pools of multiplexed connections to the telephony
// servers of one tier, so that the request path never dials, never waits for
// a handshake and learns that a tier is down from an atomic load.
//
// A Pool dials MinConns connections per server ahead of need, handshakes
// each with HELLO, and publishes the handshaken ones as an immutable slice
// behind an atomic.Pointer. RoundTrip reads that slice, picks a connection
// (round robin, the less loaded of two neighbours) and calls it through
// mux.Conn; it never takes a lock and never dials: with no live connection it
// fails at once with ErrNoConn, which is the daemon's cue to try the next
// tier.
//
// # Routing to one server
//
// A reservation lives on the one server that executed its RESERVE; the
// other servers of the tier do not know it. RoundTripOn reports which
// server (its HELLO server id) carried a call, and RoundTripTo sends a
// follow-up only to the live connections of a given server, from a second
// snapshot (connections by server id) published with the first. ServerIDs
// lists every server id the pool has handshaken with, live or not, so a
// caller can tell "that server is down" (ErrServerDown) from "no server of
// this pool has that id" (ErrUnknownServer).
//
// # Goroutines
//
// Each Pool owns:
//   - one maintenance goroutine (reconcile loop): it decides when to dial
//     (warm-up, replacement of dead or aged connections, reconnect backoff
//     with full jitter, MinConns changes) and starts each dial on
//   - one short-lived goroutine per dial (dial + HELLO, bounded by
//     DialTimeout), so a slow server never delays the others;
//   - per live connection, mux's reader goroutine and one connection
//     goroutine that sends heartbeats (TPING every HeartbeatInterval, the
//     connection is killed when no PONG arrives within HeartbeatTimeout) and
//     closes the connection once it is retired and drained.
//
// Shutdown stops them all and waits for them.
//
// # Death and recovery
//
// A connection that dies (EOF, RST, write error, missed heartbeat) is
// removed from the live set by mux's OnClose callback, on the event itself:
// its in-flight calls fail at once with mux.ErrConnLost, Live drops in the
// same instant and the maintenance goroutine is woken (a non-blocking send)
// to redial. Consecutive failed dials back off exponentially from
// BackoffBase to BackoffMax with full jitter (a uniform delay in
// [0, min(BackoffMax, BackoffBase·2^(n-1))]); while a server is failing only
// one probe dial is in flight for it. A connection that dies within
// HeartbeatInterval of its handshake counts as a failed dial, so a server
// that accepts and drops connections is backed off too.
//
// Nothing on the way from a peer's close to Live dropping waits on a timer,
// a deadline or a heartbeat, only on the reader goroutine getting a
// processor. LiveChanged returns a channel closed at each change of the live
// set, for a caller that waits for one without polling: a goroutine that
// spins on Live without ever blocking keeps Go's scheduler from polling the
// network, and so delays the very EOF it waits for.
//
// Connections older than MaxAge (plus a per-connection random jitter of up
// to MaxAgeJitter) are recycled: the replacement is dialed first, and only
// when it is live is the old one removed from the live set and closed once
// its in-flight calls finish.
//
// # Errors
//
// RoundTrip returns mux's errors unchanged (see mux.Sent for which ones mean
// "not sent") plus ErrNoConn and ErrClosed, neither of which was sent;
// RoundTripTo adds ErrServerDown and ErrUnknownServer, not sent either.
// Telephony error responses arrive as *wire.RemoteError.
package pool
