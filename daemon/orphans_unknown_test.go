package daemon

import (
	"testing"
	"time"

	"switchboard/wire"
)

// TestUnknownServerOrphanFollowsItsServerToAnotherTier: an orphan belongs
// to the server that holds it and is released through whichever tier now
// has that server (docs/operations.md, reloads). An orphan of unknown
// server — a SIGKILL mid-RESERVE: the in-flight table records the tier, not
// the server — whose tier still exists but whose server was moved to
// another tier (the daemon restarted with primary-large = [A], nextgen =
// [B], where it crashed with primary-large = [A, B]) is released on A only:
// A answers NOT_FOUND, the orphan is complete and dropped, and the bridge
// on B is held for ever.
func TestUnknownServerOrphanFollowsItsServerToAnotherTier(t *testing.T) {
	sa, addrA := startTCPSim(t, "primary-large", "mv-a")
	sb, addrB := startTCPSim(t, "primary-large", "mv-b")
	h := startDaemon(t, func(c *Config) {
		chaosConfig(c)
		c.Tiers[0].Servers = []string{addrA}
		c.Tiers[1].Servers = []string{addrB} // B was in primary-large when the RESERVE was sent
	})
	ctx := ctxT(t)
	ng := h.d.svc.set.Load().tiers[1]
	rep, err := ng.pool.RoundTripTo(ctx, "mv-b", wire.OpReserve, &wire.UpdateRequest{Key: 778, Spec: spec("moved")})
	if err != nil {
		t.Fatal(err)
	}
	rep.Release()
	h.d.svc.orphans.add("primary-large", "", 778) // what the in-flight table replays
	waitFor(t, "the orphan done", 10*time.Second, func() bool { return h.d.svc.orphans.count() == 0 })
	time.Sleep(200 * time.Millisecond) // a RELEASE to B, if any, has landed
	if n := sb.Stats().Reservations; n != 0 {
		t.Fatalf("orphan 778 is done (A saw %d RELEASE, %d NOT_FOUND) but the bridge on mv-b, now in nextgen, is still held (%d reservations): never released",
			sa.Stats().Releases, sa.Stats().Errors.NotFound, n)
	}
}

// TestUnknownServerOrphanCompletesDespiteRefusedDuplicate: two servers of
// a tier answering HELLO with one id (the refused duplicate of
// TestTwoServersOneHelloID, or one server listed under two addresses) make
// the tier have fewer ids than addresses for ever, so an orphan of unknown
// server of that tier is never complete: released on the only server that
// can hold it, it still stays pending for ever (switchboard_orphans never
// returns to 0, not counted as stranded), and is released again after each
// restart. The refused server never took a connection: it cannot hold the
// bridge.
func TestUnknownServerOrphanCompletesDespiteRefusedDuplicate(t *testing.T) {
	sa, addrA := startTCPSim(t, "primary-large", "telsim-primary-large")
	sb, addrB := startTCPSim(t, "primary-large", "telsim-primary-large")
	h := startDaemon(t, func(c *Config) {
		chaosConfig(c)
		c.Tiers[0].Servers = []string{addrA, addrB}
	})
	ctx := ctxT(t)
	pl := h.d.svc.set.Load().tiers[0]
	rep, err := pl.pool.RoundTripTo(ctx, "telsim-primary-large", wire.OpReserve, &wire.UpdateRequest{Key: 779, Spec: spec("dup")})
	if err != nil {
		t.Fatal(err)
	}
	rep.Release()
	h.d.svc.orphans.add("primary-large", "", 779)
	waitFor(t, "the bridge released", 10*time.Second, func() bool { return sa.Stats().Reservations+sb.Stats().Reservations == 0 })
	deadline := time.Now().Add(5 * time.Second)
	for h.d.svc.orphans.count() != 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n, s := h.d.svc.orphans.count(), h.d.svc.orphans.strandedCount(); n != 0 {
		t.Fatalf("the only server that can hold orphan 779 released it, yet %d orphan(s) still pending 5 s later (stranded %d): switchboard_orphans never returns to 0", n, s)
	}
}
