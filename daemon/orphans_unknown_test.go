package daemon

import (
	"testing"
	"time"

	"switchboard/wire"
)

// TestUnknownServerOrphanFollowsItsServerToAnotherTier: an orphan of
// unknown server (a SIGKILL mid-RESERVE: the in-flight table records the
// tier, not the server) is released on the servers of every tier, since a
// reload may have moved its server: here the daemon crashed with
// primary-large = [A, B] and restarted with primary-large = [A], nextgen =
// [B]. Before the fix it went to the servers of its own tier only: A
// answered NOT_FOUND, the orphan was done, and the bridge on B was held
// for ever.
func TestUnknownServerOrphanFollowsItsServerToAnotherTier(t *testing.T) {
	sa, addrA := startTCPSim(t, "primary-large", "mv-a")
	sb, addrB := startTCPSim(t, "primary-large", "mv-b")
	h := startDaemon(t, func(c *Config) {
		chaosConfig(c)
		c.Tiers[0].Servers = []string{addrA}
		c.Tiers[1].Servers = []string{addrB} // B was in primary-large when the RESERVE was sent
	})
	ctx := ctxT(t)
	ng := h.d.rt.Current().Tiers[1]
	rep, err := ng.Pool.RoundTripTo(ctx, "mv-b", wire.OpReserve, &wire.UpdateRequest{Key: 778, Spec: spec("moved")})
	if err != nil {
		t.Fatal(err)
	}
	rep.Release()
	h.d.rt.DeferRelease("primary-large", "", 778) // what the in-flight table replays
	waitFor(t, "the orphan done", 10*time.Second, func() bool { return h.d.rt.Stats().Orphans == 0 })
	time.Sleep(200 * time.Millisecond) // a RELEASE to B, if any, has landed
	if n := sb.Stats().Reservations; n != 0 {
		t.Fatalf("orphan 778 is done (A saw %d RELEASE, %d NOT_FOUND) but the bridge on mv-b, now in nextgen, is still held (%d reservations): never released",
			sa.Stats().Releases, sa.Stats().Errors.NotFound, n)
	}
}

// TestUnknownServerOrphanCompletesDespiteRefusedDuplicate: a server
// refused as the duplicate of another's HELLO id (TestTwoServersOneHelloID)
// has said who it is, so it does not hold back an orphan of unknown server:
// once released on every server that answered, the orphan is done. Before
// the fix an orphan waited until a tier had as many ids as addresses,
// which such a tier never has: it stayed pending for ever, uncounted, and
// was released again after every restart.
func TestUnknownServerOrphanCompletesDespiteRefusedDuplicate(t *testing.T) {
	sa, addrA := startTCPSim(t, "primary-large", "telsim-primary-large")
	sb, addrB := startTCPSim(t, "primary-large", "telsim-primary-large")
	h := startDaemon(t, func(c *Config) {
		chaosConfig(c)
		c.Tiers[0].Servers = []string{addrA, addrB}
	})
	ctx := ctxT(t)
	pl := h.d.rt.Current().Tiers[0]
	rep, err := pl.Pool.RoundTripTo(ctx, "telsim-primary-large", wire.OpReserve, &wire.UpdateRequest{Key: 779, Spec: spec("dup")})
	if err != nil {
		t.Fatal(err)
	}
	rep.Release()
	h.d.rt.DeferRelease("primary-large", "", 779)
	waitFor(t, "the bridge released", 10*time.Second, func() bool { return sa.Stats().Reservations+sb.Stats().Reservations == 0 })
	deadline := time.Now().Add(5 * time.Second)
	for h.d.rt.Stats().Orphans != 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n, s := h.d.rt.Stats().Orphans, h.d.rt.Stats().Stranded; n != 0 {
		t.Fatalf("the only server that can hold orphan 779 released it, yet %d orphan(s) still pending 5 s later (stranded %d): switchboard_orphans never returns to 0", n, s)
	}
}
