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

// TestClassify pins the one table of what an attempt's result means: local
// limits and the caller's own end never count against a tier.
func TestClassify(t *testing.T) {
	live := context.Background()
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		ctx  context.Context
		err  error
		want Outcome
		v    breaker.Verdict
	}{
		{live, nil, OutcomeOK, breaker.Healthy},
		{live, &wire.RemoteError{Status: wire.StatusCapacity}, OutcomeCapacity, breaker.Healthy},
		{live, &wire.RemoteError{Status: wire.StatusKeyExists}, OutcomeKeyExists, breaker.Healthy},
		{live, &wire.RemoteError{Status: wire.StatusBadRequest}, OutcomeRejected, breaker.Healthy},
		{live, fmt.Errorf("pool: %w", mux.ErrBusy), OutcomeLocal, breaker.NoVerdict},
		{live, pool.ErrNoConn, OutcomeLocal, breaker.NoVerdict},
		{live, pool.ErrClosed, OutcomeLocal, breaker.NoVerdict},
		{live, mux.ErrClosed, OutcomeLocal, breaker.NoVerdict},
		{live, context.DeadlineExceeded, OutcomeTimeout, breaker.Unhealthy},
		{live, mux.ErrConnLost, OutcomeFailure, breaker.Unhealthy},
		{live, &wire.RemoteError{Status: wire.StatusInternal}, OutcomeFailure, breaker.Unhealthy},
		{live, &wire.RemoteError{Status: wire.StatusDraining}, OutcomeFailure, breaker.Unhealthy},
		{live, errors.New("reset"), OutcomeFailure, breaker.Unhealthy},
		{gone, context.DeadlineExceeded, OutcomeCallerGone, breaker.NoVerdict},
		{gone, mux.ErrConnLost, OutcomeCallerGone, breaker.NoVerdict},
		{live, context.Canceled, OutcomeCallerGone, breaker.NoVerdict},
		{live, localDelay{}, OutcomeStalled, breaker.NoVerdict},
		{gone, localDelay{}, OutcomeCallerGone, breaker.NoVerdict},
	}
	for _, c := range cases {
		o := classify(c.ctx, c.err)
		if o != c.want || o.verdict() != c.v {
			t.Errorf("classify(%v) = %v (verdict %v), want %v (verdict %v)", c.err, o, o.verdict(), c.want, c.v)
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
