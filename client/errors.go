package client

import "switchboard/mux"

// Transport errors, the sentinels of the connection layer (package mux)
// under the client's name, so that callers import client alone. They are
// the same values as mux's: errors.Is matches either name. Match them with
// errors.Is; Sent tells whether a failed call may have reached the daemon.
var (
	// ErrUnknownOutcome is matched by every error that leaves it open
	// whether the daemon received and executed the request: ErrConnLost,
	// and a context that ended after the write. Retry an Allocate with the
	// same idempotency token to learn its result.
	ErrUnknownOutcome = mux.ErrUnknownOutcome
	// ErrConnLost: the connection died after the request was written and
	// before its reply arrived; the outcome is unknown (it also matches
	// ErrUnknownOutcome).
	ErrConnLost = mux.ErrConnLost
	// ErrRefused: the daemon refused the connection with a GOODBYE frame
	// (at its max_conns or max_conns_per_uid) and read nothing from it. Not
	// sent.
	ErrRefused = mux.ErrRefused
	// ErrBusy: the connection already had its maximum of calls in flight
	// (DefaultMaxInFlight). Not sent.
	ErrBusy = mux.ErrBusy
	// ErrConnClosed: the connection was already dead when the call started.
	// Not sent. (ErrClosed, in contrast, means the Client was closed.)
	ErrConnClosed = mux.ErrClosed
)

// DefaultMaxInFlight is how many calls one connection carries at once
// (mux.DefaultMaxInFlight); WithConns multiplies it.
const DefaultMaxInFlight = mux.DefaultMaxInFlight

// Sent reports whether a call that returned err may have reached the daemon
// (mux.Sent): true for nil, for an answer of the daemon (*wire.RemoteError)
// and for an unknown outcome; false for an error raised before anything was
// written. A call that was not sent is safe to retry.
func Sent(err error) bool { return mux.Sent(err) }
