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

// Outcome is what one call to a telephony server met. classify is the one
// place that reads a call's error, and every decision of this package
// about an attempt or a follow-up reads what it returns (a result), never
// the error:
//
//   - for an allocation's RESERVE (Router.onTier): the tier's breaker
//     (verdict), the metric label of switchboard_tier_attempts_total
//     (String, through the TierObserver), whether the allocation waits for
//     a slot (OutcomeBusy), takes a fresh key (OutcomeKeyExists, and a key
//     the tier may hold: result.unknown, which also queues it as an
//     orphan) or tries the next tier;
//   - for a follow-up to the server holding a session (locate, Update,
//     Release, callServer, serverErr): whether the session is gone
//     (OutcomeNotFound), the call waits for a slot (OutcomeBusy), the
//     server is merely busy (OVERLOADED) or unreachable (UNAVAILABLE), and
//     whether a RELEASE is deferred to the orphan releaser;
//   - for the orphan releaser's RELEASE (orphans.work): whether the orphan
//     is done (OK, NOT_FOUND), kept for the next sweep, and whether its
//     server is gone so that its worker stops (OutcomeUnreachable, or the
//     pool closed: OutcomeLocal).
//
// The status of any request's error is StatusOf, below.
//
// The rule: only what the telephony server did, or failed to do in time,
// says anything about its tier. A local limit (the pool is full, has no
// connection, or is closing: nothing was sent) and the end of the request's
// own deadline say nothing, so they never open a breaker; a request that met
// only local limits is answered OVERLOADED (retry), never UNAVAILABLE.
//
// Several Outcomes share a metric label: the label set is the one
// docs/operations.md lists, and an Outcome finer than its label (busy,
// not found, unreachable) only says more to the router.
type Outcome int

const (
	OutcomeOK         Outcome = iota // RESERVE succeeded
	OutcomeCapacity                  // the tier was full (healthy answer)
	OutcomeKeyExists                 // the key was taken (healthy answer)
	OutcomeRejected                  // BAD_REQUEST from the tier (healthy answer)
	OutcomeTimeout                   // the attempt deadline passed: the tier did not answer in time
	OutcomeCallerGone                // the request's own deadline or cancellation came first
	OutcomeFailure                   // any other failure (connection lost, INTERNAL, DRAINING…)
	OutcomeLocal                     // a local limit: no connection, pool closing; not sent
	OutcomeStalled                   // timed out with the tier's bytes received and unread (mux.ErrLocalDelay): blames nobody
	// OutcomeBusy: every connection to the tier (or server) is at its
	// in-flight limit (mux.ErrBusy): a local limit, not sent, labelled
	// "local"; the caller waits briefly for a slot on the same tier.
	OutcomeBusy
	// OutcomeNotFound: the server has no reservation under the key, the
	// final answer to a follow-up (LOOKUP, UPDATE, RELEASE; follow-ups feed
	// neither a breaker nor the metric). RESERVE never gets it
	// (docs/protocol.md §6): a server that sends it anyway broke the
	// protocol, and the attempt is a failure (label, verdict).
	OutcomeNotFound
	// OutcomeUnreachable: the one server a follow-up must go to has no live
	// connection, or its pool does not know it (pool.ErrServerDown,
	// pool.ErrUnknownServer): not sent. Only follow-ups (RoundTripTo) get
	// it; as an attempt it would be a failure (label, verdict).
	OutcomeUnreachable
	NumOutcomes
)

var outcomeNames = [NumOutcomes]string{"ok", "capacity", "key_exists", "rejected", "timeout", "caller_gone", "failure", "local", "timeout_local",
	"local", "failure", "failure"}

// result is classify's reading of one call's result.
type result struct {
	// met is what the call met, read from its error alone: the server's
	// answer, a local limit, a timeout. A follow-up reads it: a server's
	// NOT_FOUND or BAD_REQUEST is final even when the request has ended.
	met Outcome
	// gone: the request ended (its context, or a cancellation) before the
	// call's result was known.
	gone bool
	// unknown: the request was sent and its outcome is unknown
	// (mux.ErrUnknownOutcome): the server may have executed it (for a
	// RESERVE: it may hold a bridge under the key).
	unknown bool
}

// Outcome is the call's Outcome as its tier sees it: the request's end
// comes first (an attempt that met anything once its request had ended is
// the caller's, OutcomeCallerGone: the attempt deadline is cut to the
// request's, so its timeout is the caller's).
func (r result) Outcome() Outcome {
	if r.gone {
		return OutcomeCallerGone
	}
	return r.met
}

// classify returns what a call that returned err met, made on behalf of a
// request whose context is ctx.
func classify(ctx context.Context, err error) result {
	if err == nil {
		return result{met: OutcomeOK}
	}
	return result{
		met:     met(err),
		gone:    ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, breaker.ErrCallerGone),
		unknown: errors.Is(err, mux.ErrUnknownOutcome),
	}
}

// met reads a call's non-nil error.
func met(err error) Outcome {
	switch {
	case errors.Is(err, mux.ErrBusy):
		// Nothing sent (mux.Sent): a slot may free at any reply.
		return OutcomeBusy
	case errors.Is(err, pool.ErrNoConn), errors.Is(err, pool.ErrClosed), errors.Is(err, mux.ErrClosed):
		// Each of these guarantees that nothing was sent (mux.Sent).
		return OutcomeLocal
	case errors.Is(err, pool.ErrServerDown), errors.Is(err, pool.ErrUnknownServer):
		return OutcomeUnreachable
	case errors.Is(err, wire.StatusCapacity):
		return OutcomeCapacity
	case errors.Is(err, wire.StatusKeyExists):
		return OutcomeKeyExists
	case errors.Is(err, wire.StatusBadRequest):
		return OutcomeRejected
	case errors.Is(err, wire.StatusNotFound):
		return OutcomeNotFound
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
	case OutcomeTimeout, OutcomeFailure, OutcomeNotFound, OutcomeUnreachable:
		return breaker.Unhealthy
	}
	return breaker.NoVerdict
}

// local reports whether o is a local limit: nothing was sent.
func (o Outcome) local() bool { return o == OutcomeLocal || o == OutcomeBusy }

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

// serverErr maps a failed call to the server that holds a session, by
// what classify read in it (r): a local limit (the pool full: nothing was
// sent) is OVERLOADED, "busy, retry", never UNAVAILABLE: the server did
// nothing.
func serverErr(ctx context.Context, t *Tier, serverID string, r result, err error) error {
	switch {
	case r.gone:
		return callerErr(ctx, err)
	case r.met.local():
		return errf(wire.StatusOverloaded, "server %s of tier %s holding the session is at its in-flight limit: %v", serverID, t.Name, err)
	case r.met == OutcomeRejected:
		_, msg := StatusOf(err)
		return errf(wire.StatusBadRequest, "server %s of tier %s: %s", serverID, t.Name, msg)
	}
	return errf(wire.StatusUnavailable, "server %s of tier %s holding the session: %v", serverID, t.Name, err)
}
