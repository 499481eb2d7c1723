package daemon

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/keygen"
	"switchboard/route"
	"switchboard/wire"
)

// lateKeys is a key source whose lease store is late: ErrUnavailable until
// ready is closed, then keys.
type lateKeys struct {
	ready chan struct{}
	next  atomic.Uint64
	fails atomic.Int64
}

func (k *lateKeys) Next() (uint64, error) {
	select {
	case <-k.ready:
		return 300000000 + k.next.Add(1), nil
	default:
		k.fails.Add(1)
		return 0, fmt.Errorf("%w: the next block is not leased yet", keygen.ErrUnavailable)
	}
}

// TestAllocationWaitsForLateKeys: a key supply that runs dry for a moment
// (a slow fsync) costs the requests caught in it latency, not an error; one
// that stays dry fails them within route.KeyWaitMax with KEYS_EXHAUSTED.
func TestAllocationWaitsForLateKeys(t *testing.T) {
	keys := &lateKeys{ready: make(chan struct{})}
	h := startDaemon(t, nil, withKeySource(keys))
	ctx := ctxT(t)

	time.AfterFunc(50*time.Millisecond, func() { close(keys.ready) })
	t0 := time.Now()
	a, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("late keys")})
	if err != nil {
		t.Fatalf("allocation while the key store was 50ms late: %v", err)
	}
	if a.Key != 300000001 || time.Since(t0) < 40*time.Millisecond {
		t.Fatalf("allocated %d after %v: want the first late key after the wait", a.Key, time.Since(t0))
	}
	if keys.fails.Load() < 2 || h.d.rt.Stats().KeyWaits != 1 {
		t.Fatalf("%d polls, %d waits: want several polls within one wait", keys.fails.Load(), h.d.rt.Stats().KeyWaits)
	}
	mfs, err := h.d.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var waits float64 = -1
	for _, mf := range mfs {
		if mf.GetName() == "switchboard_key_waits_total" {
			waits = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if waits != 1 {
		t.Fatalf("switchboard_key_waits_total = %v, want 1", waits)
	}
}

func TestAllocationFailsWhenKeysStayUnavailable(t *testing.T) {
	keys := &lateKeys{ready: make(chan struct{})} // never ready
	h := startDaemon(t, nil, withKeySource(keys))
	t0 := time.Now()
	_, err := h.c.Allocate(ctxT(t), &wire.AllocateRequest{Spec: spec("no keys")})
	if !errors.Is(err, wire.StatusKeysExhausted) {
		t.Fatalf("allocation without keys: %v, want KEYS_EXHAUSTED", err)
	}
	if d := time.Since(t0); d < route.KeyWaitMax || d > route.KeyWaitMax+2*time.Second {
		t.Fatalf("failed after %v, want about route.KeyWaitMax (%v)", d, route.KeyWaitMax)
	}
}
