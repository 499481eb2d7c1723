package route

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"switchboard/breaker"
	"switchboard/mux"
	"switchboard/pool"
	"switchboard/wire"
)

// TestClassify pins the one table of what a call's result means: local
// limits and the caller's own end never count against a tier, the metric
// labels of an allocation's attempts are the documented ones, and what a
// follow-up decides on (met, unknown) is read whatever the caller's state.
func TestClassify(t *testing.T) {
	live := context.Background()
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	notFound := &wire.RemoteError{Status: wire.StatusNotFound}
	cases := []struct {
		ctx     context.Context
		err     error
		want    Outcome // as the tier sees it
		label   string
		v       breaker.Verdict
		met     Outcome // what the call met
		unknown bool
	}{
		{live, nil, OutcomeOK, "ok", breaker.Healthy, OutcomeOK, false},
		{gone, nil, OutcomeOK, "ok", breaker.Healthy, OutcomeOK, false},
		{live, &wire.RemoteError{Status: wire.StatusCapacity}, OutcomeCapacity, "capacity", breaker.Healthy, OutcomeCapacity, false},
		{live, &wire.RemoteError{Status: wire.StatusKeyExists}, OutcomeKeyExists, "key_exists", breaker.Healthy, OutcomeKeyExists, false},
		{live, &wire.RemoteError{Status: wire.StatusBadRequest}, OutcomeRejected, "rejected", breaker.Healthy, OutcomeRejected, false},
		{gone, &wire.RemoteError{Status: wire.StatusBadRequest}, OutcomeCallerGone, "caller_gone", breaker.NoVerdict, OutcomeRejected, false},
		{live, fmt.Errorf("pool: %w", mux.ErrBusy), OutcomeBusy, "local", breaker.NoVerdict, OutcomeBusy, false},
		{live, pool.ErrNoConn, OutcomeLocal, "local", breaker.NoVerdict, OutcomeLocal, false},
		{live, pool.ErrClosed, OutcomeLocal, "local", breaker.NoVerdict, OutcomeLocal, false},
		{live, mux.ErrClosed, OutcomeLocal, "local", breaker.NoVerdict, OutcomeLocal, false},
		{live, fmt.Errorf("%w: %q", pool.ErrServerDown, "s1"), OutcomeUnreachable, "failure", breaker.Unhealthy, OutcomeUnreachable, false},
		{live, fmt.Errorf("%w: %q", pool.ErrUnknownServer, "s1"), OutcomeUnreachable, "failure", breaker.Unhealthy, OutcomeUnreachable, false},
		{live, context.DeadlineExceeded, OutcomeTimeout, "timeout", breaker.Unhealthy, OutcomeTimeout, false},
		{live, mux.ErrConnLost, OutcomeFailure, "failure", breaker.Unhealthy, OutcomeFailure, false},
		{live, fmt.Errorf("%w: lost", mux.ErrUnknownOutcome), OutcomeFailure, "failure", breaker.Unhealthy, OutcomeFailure, true},
		{live, &wire.RemoteError{Status: wire.StatusInternal}, OutcomeFailure, "failure", breaker.Unhealthy, OutcomeFailure, false},
		{live, &wire.RemoteError{Status: wire.StatusDraining}, OutcomeFailure, "failure", breaker.Unhealthy, OutcomeFailure, false},
		// A RESERVE never gets NOT_FOUND; a server that sends it is failing.
		{live, notFound, OutcomeNotFound, "failure", breaker.Unhealthy, OutcomeNotFound, false},
		{gone, notFound, OutcomeCallerGone, "caller_gone", breaker.NoVerdict, OutcomeNotFound, false},
		{live, errors.New("reset"), OutcomeFailure, "failure", breaker.Unhealthy, OutcomeFailure, false},
		{gone, context.DeadlineExceeded, OutcomeCallerGone, "caller_gone", breaker.NoVerdict, OutcomeTimeout, false},
		{gone, mux.ErrConnLost, OutcomeCallerGone, "caller_gone", breaker.NoVerdict, OutcomeFailure, false},
		{live, context.Canceled, OutcomeCallerGone, "caller_gone", breaker.NoVerdict, OutcomeFailure, false},
		{live, localDelay{}, OutcomeStalled, "timeout_local", breaker.NoVerdict, OutcomeStalled, true},
		{gone, localDelay{}, OutcomeCallerGone, "caller_gone", breaker.NoVerdict, OutcomeStalled, true},
	}
	for _, c := range cases {
		r := classify(c.ctx, c.err)
		o := r.Outcome()
		if o != c.want || o.String() != c.label || o.verdict() != c.v || r.met != c.met || r.unknown != c.unknown {
			t.Errorf("classify(%v, ctx err %v) = %+v: %v (label %s, verdict %v); want %v (label %s, verdict %v), met %v, unknown %v",
				c.err, c.ctx.Err(), r, o, o, o.verdict(), c.want, c.label, c.v, c.met, c.unknown)
		}
	}
}

// TestOutcomeLabelsAreTheDocumentedOnes: a finer Outcome shares a label;
// the label set of switchboard_tier_attempts_total does not grow.
func TestOutcomeLabelsAreTheDocumentedOnes(t *testing.T) {
	documented := map[string]bool{"ok": true, "capacity": true, "key_exists": true, "rejected": true, "timeout": true,
		"caller_gone": true, "failure": true, "local": true, "timeout_local": true}
	for o := Outcome(0); o < NumOutcomes; o++ {
		if !documented[o.String()] {
			t.Errorf("Outcome %d has label %q, not one docs/operations.md lists", o, o)
		}
	}
}

// localDelay is a mux timeout while the process was behind: it matches
// mux.ErrLocalDelay, mux.ErrUnknownOutcome and context.DeadlineExceeded,
// as mux's own error does.
type localDelay struct{}

func (localDelay) Error() string { return "timed out while this process was behind" }
func (localDelay) Is(target error) bool {
	return target == mux.ErrLocalDelay || target == mux.ErrUnknownOutcome || target == context.DeadlineExceeded
}
