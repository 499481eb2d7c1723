package daemon

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/telsim"
	"switchboard/wire"
)

// TestDeferredReleaseNotResurrected: a RELEASE answered OK while its
// server is down is a promise, and later LOOKUPs answer NOT_FOUND
// (docs/protocol.md 9.4), for as long as the release is pending. The
// index's tombstone of a released session lasts sessionTombstoneTTL (2
// min) and a restart forgets it; the journaled orphan does not. Before the
// fix, a server down for longer came back still holding the session, and
// a LOOKUP or UPDATE that reached it before the releaser answered it as
// live and put it back in the index. The releaser's timing is taken out of
// the test by stopping its loop (a sweep that has not come yet).
func TestDeferredReleaseNotResurrected(t *testing.T) {
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	bin := telsimBin(t)
	s := startTelsimProc(t, bin, "primary-large", "pl-a")
	h := startDaemon(t, func(c *Config) {
		chaosConfig(c)
		c.Tiers[0].Servers = []string{s.addr}
		c.Tiers[0].AttemptTimeout = 2 * time.Second
		c.Server.RequestTimeout = 5 * time.Second
		c.Server.IdleTimeout = time.Hour
	}, WithClock(now))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	al, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("ends while its server is down")})
	if err != nil || al.Tier != "primary-large" {
		t.Fatalf("allocate: %+v %v", al, err)
	}
	s.fault(t, telsim.Fault{Mode: telsim.ModeDown})
	pl := func() *tier { return h.d.rt.Current().Tiers[0] }
	waitFor(t, "pl-a's connections gone", 10*time.Second, func() bool {
		_, err := pl().Pool.RoundTripTo(ctx, "pl-a", wire.OpTelPing, nil)
		return err != nil && !errors.Is(err, context.DeadlineExceeded)
	})
	if err := h.c.Release(ctx, al.Key); err != nil {
		t.Fatalf("release with its server down: %v (want it deferred and OK)", err)
	}
	if n := h.d.rt.Stats().Orphans; n != 1 {
		t.Fatalf("%d releases deferred, want 1", n)
	}
	// The releaser's next sweep has not come yet.
	h.d.rt.StopOrphanSweeps()
	skew.Store(int64(3 * time.Minute)) // the server stays down 3 minutes
	s.fault(t, telsim.Fault{})
	waitFor(t, "pl-a back", 10*time.Second, func() bool {
		rep, err := pl().Pool.RoundTripTo(ctx, "pl-a", wire.OpTelPing, nil)
		if err == nil {
			rep.Release()
		}
		return err == nil
	})
	r, lerr := h.c.Lookup(ctx, al.Key)
	s2 := spec("updated after the release")
	_, uerr := h.c.Update(ctx, al.Key, &s2, nil)
	if lerr == nil || uerr == nil {
		t.Fatalf("session %d, released (answered OK) while its server was down: after the server came back LOOKUP answered %+v, %v and UPDATE %v; want NOT_FOUND",
			al.Key, r, lerr, uerr)
	}
}
