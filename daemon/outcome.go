package daemon

import (
	"context"
	"errors"

	"switchboard/breaker"
	"switchboard/mux"
	"switchboard/pool"
	"switchboard/wire"
)

// outcome classifies one attempt on a tier. classify is the one place that
// decides what an attempt's result means; the tier's breaker (verdict),
// switchboard_tier_attempts_total (outcomeNames) and the request's answer
// (allocateOnce) all read the outcome, never the error.
//
// The rule: only what the telephony server did, or failed to do in time,
// says anything about its tier. A local limit (the pool is full, has no
// connection, or is closing: nothing was sent) and the end of the request's
// own deadline say nothing, so they never open a breaker; a request that met
// only local limits is answered OVERLOADED (retry), never UNAVAILABLE.
type outcome int

const (
	outcomeOK         outcome = iota // RESERVE succeeded
	outcomeCapacity                  // the tier was full (healthy answer)
	outcomeKeyExists                 // the key was taken (healthy answer)
	outcomeRejected                  // BAD_REQUEST from the tier (healthy answer)
	outcomeTimeout                   // the attempt deadline passed: the tier did not answer in time
	outcomeCallerGone                // the request's own deadline or cancellation came first
	outcomeFailure                   // any other failure (connection lost, INTERNAL, DRAINING…)
	outcomeLocal                     // a local limit: pool full, no connection, pool closing; not sent
	outcomeStalled                   // timed out while this process was behind (mux.ErrLocalDelay): not failed over, blames nobody
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"ok", "capacity", "key_exists", "rejected", "timeout", "caller_gone", "failure", "local", "timeout_local"}

// classify returns the outcome of an attempt that returned err, made on
// behalf of a request whose context is ctx.
func classify(ctx context.Context, err error) outcome {
	switch {
	case err == nil:
		return outcomeOK
	case ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, breaker.ErrCallerGone):
		// Whatever the attempt met, the request ended first: the attempt
		// deadline is cut to the request's, so its timeout is the caller's.
		return outcomeCallerGone
	case errors.Is(err, mux.ErrBusy), errors.Is(err, pool.ErrNoConn), errors.Is(err, pool.ErrClosed),
		errors.Is(err, mux.ErrClosed):
		// Each of these guarantees that nothing was sent (mux.Sent).
		return outcomeLocal
	case errors.Is(err, wire.StatusCapacity):
		return outcomeCapacity
	case errors.Is(err, wire.StatusKeyExists):
		return outcomeKeyExists
	case errors.Is(err, wire.StatusBadRequest):
		return outcomeRejected
	case errors.Is(err, mux.ErrLocalDelay):
		// The attempt timed out with the reply already received and
		// unread, or its caller woke long after the deadline: a local
		// stall, not the tier's: it counts for neither side of the
		// breaker, and the allocation is not failed over into the same
		// stall (allocateOnce: once more on this tier, then OVERLOADED).
		return outcomeStalled
	case errors.Is(err, context.DeadlineExceeded):
		return outcomeTimeout
	}
	return outcomeFailure
}

// verdict is what the outcome tells the tier's breaker.
func (o outcome) verdict() breaker.Verdict {
	switch o {
	case outcomeOK, outcomeCapacity, outcomeKeyExists, outcomeRejected:
		return breaker.Healthy
	case outcomeTimeout, outcomeFailure:
		return breaker.Unhealthy
	}
	return breaker.NoVerdict
}

// String names the outcome as its metric label does.
func (o outcome) String() string {
	if o >= 0 && o < numOutcomes {
		return outcomeNames[o]
	}
	return "unknown"
}
