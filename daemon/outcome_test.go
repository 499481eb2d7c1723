package daemon

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
		want outcome
		v    breaker.Verdict
	}{
		{live, nil, outcomeOK, breaker.Healthy},
		{live, &wire.RemoteError{Status: wire.StatusCapacity}, outcomeCapacity, breaker.Healthy},
		{live, &wire.RemoteError{Status: wire.StatusKeyExists}, outcomeKeyExists, breaker.Healthy},
		{live, &wire.RemoteError{Status: wire.StatusBadRequest}, outcomeRejected, breaker.Healthy},
		{live, fmt.Errorf("pool: %w", mux.ErrBusy), outcomeLocal, breaker.NoVerdict},
		{live, pool.ErrNoConn, outcomeLocal, breaker.NoVerdict},
		{live, pool.ErrClosed, outcomeLocal, breaker.NoVerdict},
		{live, mux.ErrClosed, outcomeLocal, breaker.NoVerdict},
		{live, context.DeadlineExceeded, outcomeTimeout, breaker.Unhealthy},
		{live, localDelay{}, outcomeStalled, breaker.NoVerdict},
		{gone, localDelay{}, outcomeCallerGone, breaker.NoVerdict},
		{live, mux.ErrConnLost, outcomeFailure, breaker.Unhealthy},
		{live, &wire.RemoteError{Status: wire.StatusInternal}, outcomeFailure, breaker.Unhealthy},
		{live, &wire.RemoteError{Status: wire.StatusDraining}, outcomeFailure, breaker.Unhealthy},
		{live, errors.New("reset"), outcomeFailure, breaker.Unhealthy},
		{gone, context.DeadlineExceeded, outcomeCallerGone, breaker.NoVerdict},
		{gone, mux.ErrConnLost, outcomeCallerGone, breaker.NoVerdict},
		{live, context.Canceled, outcomeCallerGone, breaker.NoVerdict},
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
