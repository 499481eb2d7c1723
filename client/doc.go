// Package client is the Go client of the switchboard daemon's front-end
// socket (a Unix socket speaking the front-end wire protocol).
//
// The daemon is built to serve many requests per connection at once, so a
// Client pipelines: it is safe for concurrent use, every call gets its own
// request id on a shared connection (mux.Conn) and replies are matched by id
// in any order. WithConns spreads calls round-robin over several
// connections, which helps a load harness use more than one daemon worker.
//
// Results are plain Go values (strings, copied bytes): nothing returned
// aliases a network buffer.
//
// # Errors
//
// An error answered by the daemon is a *wire.RemoteError: match it with
// errors.Is(err, wire.StatusNotFound), wire.StatusUnavailable, and so on.
// Invalid arguments are refused before anything is sent (the error wraps
// wire.ErrFieldTooLong or wire.ErrBadValue). Transport errors are the
// connection layer's (package mux), exported here under the client's name so
// that callers need not import mux: Sent(err) tells whether the request may
// have reached the daemon, and errors.Is(err, ErrUnknownOutcome) marks a call
// whose effect is unknown (retry an Allocate with the same idempotency token
// to learn its result).
//
// # Dead connections
//
// A connection that dies is not redialed in the background: the next call
// that picks it redials it (once, concurrent callers share the dial) and a
// call that found it dead before sending anything is retried once on the new
// connection. A call that was in flight when it died (ErrConnLost: it
// may have been executed) is sent once more on a new connection only when
// sending it twice does what sending it once does: LOOKUP, UPDATE, PING and
// an ALLOCATE with an idempotency token (answered with the first result).
// A RELEASE or a tokenless ALLOCATE fails with ErrConnLost.
//
// A connection the daemon refuses at its max_conns (or max_conns_per_uid)
// is answered with a GOODBYE frame and closed unread: nothing written on
// it was executed (ErrRefused, not sent). The call is then sent again,
// whatever the request, on a new connection after a backoff (1 ms doubling
// up to 100 ms, jittered) until ctx ends; a call still refused at its
// deadline fails, not sent, with an error matching ErrRefused and the
// GOODBYE's status, wire.StatusOverloaded ("busy, retry"), and the
// context's error too when the deadline passed during a try. A connection
// found dead without a GOODBYE (closed unread) is retried the same way but
// at most 64 times in a row. After Close every call fails with ErrClosed.
package client
