package route

import (
	"context"
	"errors"
	"fmt"

	"switchboard/breaker"
	"switchboard/keygen"
	"switchboard/mux"
	"switchboard/pool"
	"switchboard/wire"
)

// Outcome classifies one attempt on a tier. classify is the one place that
// decides what an attempt's result means, and everything else reads the
// Outcome, never the error: the tier's breaker (verdict), the metric label
// of switchboard_tier_attempts_total (String, through the TierObserver),
// whether an allocation tries the next tier (Router.onTier), and the status
// the client gets for a follow-up (serverErr). The status of any request's
// error is StatusOf, below.
//
// The rule: only what the telephony server did, or failed to do in time,
// says anything about its tier. A local limit (the pool is full, has no
// connection, or is closing: nothing was sent) and the end of the request's
// own deadline say nothing, so they never open a breaker; a request that met
// only local limits is answered OVERLOADED (retry), never UNAVAILABLE.
type Outcome int

const (
	OutcomeOK         Outcome = iota // RESERVE succeeded
	OutcomeCapacity                  // the tier was full (healthy answer)
	OutcomeKeyExists                 // the key was taken (healthy answer)
	OutcomeRejected                  // BAD_REQUEST from the tier (healthy answer)
	OutcomeTimeout                   // the attempt deadline passed: the tier did not answer in time
	OutcomeCallerGone                // the request's own deadline or cancellation came first
	OutcomeFailure                   // any other failure (connection lost, INTERNAL, DRAINING…)
	OutcomeLocal                     // a local limit: pool full, no connection, pool closing; not sent
	OutcomeStalled                   // timed out with the tier's bytes received and unread (mux.ErrLocalDelay): blames nobody
	NumOutcomes
)

var outcomeNames = [NumOutcomes]string{"ok", "capacity", "key_exists", "rejected", "timeout", "caller_gone", "failure", "local", "timeout_local"}

// classify returns the Outcome of an attempt that returned err, made on
// behalf of a request whose context is ctx.
func classify(ctx context.Context, err error) Outcome {
	switch {
	case err == nil:
		return OutcomeOK
	case ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, breaker.ErrCallerGone):
		// Whatever the attempt met, the request ended first: the attempt
		// deadline is cut to the request's, so its timeout is the caller's.
		return OutcomeCallerGone
	case errors.Is(err, mux.ErrBusy), errors.Is(err, pool.ErrNoConn), errors.Is(err, pool.ErrClosed),
		errors.Is(err, mux.ErrClosed):
		// Each of these guarantees that nothing was sent (mux.Sent).
		return OutcomeLocal
	case errors.Is(err, wire.StatusCapacity):
		return OutcomeCapacity
	case errors.Is(err, wire.StatusKeyExists):
		return OutcomeKeyExists
	case errors.Is(err, wire.StatusBadRequest):
		return OutcomeRejected
	case errors.Is(err, mux.ErrLocalDelay):
		// The attempt timed out while its connection held bytes from the
		// tier that this process had not read yet: the tier answered, we
		// were behind (a CPU stall of the host). It fails over as a
		// timeout does, but says nothing about the tier to its breaker.
		return OutcomeStalled
	case errors.Is(err, context.DeadlineExceeded):
		return OutcomeTimeout
	}
	return OutcomeFailure
}

// verdict is what the Outcome tells the tier's breaker.
func (o Outcome) verdict() breaker.Verdict {
	switch o {
	case OutcomeOK, OutcomeCapacity, OutcomeKeyExists, OutcomeRejected:
		return breaker.Healthy
	case OutcomeTimeout, OutcomeFailure:
		return breaker.Unhealthy
	}
	return breaker.NoVerdict
}

// String names the Outcome as its metric label does.
func (o Outcome) String() string {
	if o >= 0 && o < NumOutcomes {
		return outcomeNames[o]
	}
	return "unknown"
}

// StatusOf is the status and message the client gets for a request that
// ended with err: the one place that decides it. A request the front end
// could not decode is BAD_REQUEST.
func StatusOf(err error) (wire.Status, string) {
	var re *wire.RemoteError
	switch {
	case errors.Is(err, wire.ErrTruncated), errors.Is(err, wire.ErrTrailing), errors.Is(err, wire.ErrFieldTooLong), errors.Is(err, wire.ErrBadValue):
		return wire.StatusBadRequest, err.Error()
	case errors.As(err, &re):
		return re.Status, re.Message
	case errors.Is(err, context.DeadlineExceeded):
		return wire.StatusTimeout, "request deadline passed"
	case errors.Is(err, keygen.ErrExhausted):
		return wire.StatusKeysExhausted, "session key space exhausted"
	case errors.Is(err, keygen.ErrUnavailable):
		return wire.StatusKeysExhausted, "no session keys available: the key lease store is failing or too slow"
	}
	var s wire.Status
	if errors.As(err, &s) {
		return s, ""
	}
	return wire.StatusInternal, "internal error"
}

// errf builds a front-end error: status plus a message for the client.
func errf(s wire.Status, format string, args ...any) error {
	return &wire.RemoteError{Status: s, Message: fmt.Sprintf(format, args...)}
}

// callerErr is the error of a request that ended during an attempt that
// failed with err.
func callerErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

// serverErr maps a failed call to the server that holds a session, by its
// Outcome (classify): a local limit (the pool full: nothing was sent) is
// OVERLOADED, "busy, retry", never UNAVAILABLE: the server did nothing.
func serverErr(ctx context.Context, t *Tier, serverID string, err error) error {
	switch classify(ctx, err) {
	case OutcomeCallerGone:
		return callerErr(ctx, err)
	case OutcomeLocal:
		return errf(wire.StatusOverloaded, "server %s of tier %s holding the session is at its in-flight limit: %v", serverID, t.Name, err)
	}
	var re *wire.RemoteError
	if errors.As(err, &re) && re.Status == wire.StatusBadRequest {
		return errf(wire.StatusBadRequest, "server %s of tier %s: %s", serverID, t.Name, re.Message)
	}
	return errf(wire.StatusUnavailable, "server %s of tier %s holding the session: %v", serverID, t.Name, err)
}
