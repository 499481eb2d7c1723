package mux

import (
	"context"
	"errors"

	"switchboard/wire"
)

// Sentinel errors. Match them with errors.Is: Call wraps them with detail.
var (
	// ErrBusy: the connection already has MaxInFlight calls waiting. Not sent.
	ErrBusy = errors.New("mux: too many calls in flight")
	// ErrClosed: the connection was already dead (closed by us or lost)
	// when the call started. Not sent.
	ErrClosed = errors.New("mux: connection closed")
	// ErrConnLost: the connection died after the request was queued or
	// written and before its reply arrived. The outcome is unknown: every
	// such error also matches ErrUnknownOutcome, and none matches ErrClosed
	// (even when the death was a local Close).
	ErrConnLost = errors.New("mux: connection lost before the reply")
	// ErrUnknownOutcome is matched by every error that leaves it open
	// whether the peer received and executed the request: ErrConnLost and a
	// context that ended after the write.
	ErrUnknownOutcome = errors.New("mux: request outcome unknown")
	// ErrRefused: the peer refused the connection with a GOODBYE frame
	// (wire.OpGoodbye): it read nothing from it, so no call made on it was
	// executed. Every call on the connection, in flight or later, fails
	// with an error matching ErrClosed and ErrRefused, and the GOODBYE's
	// status (wire.StatusOverloaded from the daemon: "busy, retry"): not
	// sent, safe to send again on another connection. Also when a write
	// raced the peer's close (EPIPE) and the GOODBYE was read after it.
	// A GOODBYE after replies (the daemon evicting a served connection)
	// means the same for the calls still unanswered: the peer answered
	// everything it read, so those it did not answer were never read.
	ErrRefused = errors.New("mux: connection refused by the peer before it read anything")
	// ErrLocalDelay: a call timed out while this process, not the peer,
	// may have been what was late: when the call gave up, the connection
	// had received bytes its reader had not read yet (SIOCINQ, Linux: the
	// reply may be among them, held up by a reader goroutine not
	// scheduled). It is matched in addition to ErrUnknownOutcome and the context's
	// error: the call still failed and may have been executed; only the
	// blame differs (a breaker should not count it against the peer).
	ErrLocalDelay = errors.New("mux: timed out while this process was behind")
	// ErrProtocol: the peer broke the protocol (a request frame, a reply
	// to an id never issued, a reply with the wrong op). Kills the
	// connection.
	ErrProtocol = errors.New("mux: protocol violation by the peer")
)

// lostError is what in-flight calls get when the connection dies. It
// matches ErrConnLost and ErrUnknownOutcome and unwraps to the cause of
// death, except when that cause is a local Close: an error that matches
// ErrConnLost never matches ErrClosed, which means "not sent".
type lostError struct{ cause error }

func (e *lostError) Error() string { return ErrConnLost.Error() + ": " + e.cause.Error() }
func (e *lostError) Unwrap() error {
	if errors.Is(e.cause, ErrClosed) {
		return nil
	}
	return e.cause
}
func (e *lostError) Is(target error) bool {
	return target == ErrConnLost || target == ErrUnknownOutcome
}

// closedError is what calls on an already dead connection get. It matches
// ErrClosed and unwraps to the cause of death.
type closedError struct{ cause error }

func (e *closedError) Error() string        { return ErrClosed.Error() + ": " + e.cause.Error() }
func (e *closedError) Unwrap() error        { return e.cause }
func (e *closedError) Is(target error) bool { return target == ErrClosed }

// afterSendError is what a call gets when its context ends after the
// request was queued for writing. It matches ErrUnknownOutcome (and
// ErrLocalDelay when local is set) and unwraps to the context's error
// (context.DeadlineExceeded or context.Canceled).
type afterSendError struct {
	cause error
	local bool // the timeout may be this process's delay (ErrLocalDelay)
}

func (e *afterSendError) Error() string {
	if e.local {
		return "mux: no reply before the context ended (outcome unknown; this process was behind): " + e.cause.Error()
	}
	return "mux: no reply before the context ended (outcome unknown): " + e.cause.Error()
}
func (e *afterSendError) Unwrap() error { return e.cause }
func (e *afterSendError) Is(target error) bool {
	return target == ErrUnknownOutcome || e.local && target == ErrLocalDelay
}

// Timeout reports whether the context's deadline passed (net.Error style).
func (e *afterSendError) Timeout() bool { return errors.Is(e.cause, context.DeadlineExceeded) }

// Sent reports whether the request behind err, an error returned by Call,
// may have reached the peer: true for nil (success), for an error response
// from the peer (*wire.RemoteError) and for every error matching
// ErrUnknownOutcome; false for errors that guarantee nothing was written
// (ErrBusy, ErrClosed, an encoding error, a context that ended before the
// write). A request that was not sent is always safe to retry elsewhere.
func Sent(err error) bool {
	if err == nil || errors.Is(err, ErrUnknownOutcome) {
		return true
	}
	if errors.Is(err, ErrClosed) {
		return false // a refusal wraps the peer's RemoteError, yet nothing was read
	}
	var re *wire.RemoteError
	return errors.As(err, &re)
}
