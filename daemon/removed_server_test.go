package daemon

import (
	"testing"
	"time"

	"switchboard/wire"
)

// TestReleaseWhileHolderRemovedByReload: the index knows which server
// holds a session; a reload takes that server's tier out (maintenance),
// and the meeting ends meanwhile. Only that server holds the session, so
// another server's NOT_FOUND is no answer (docs/protocol.md 9.4): the
// RELEASE is accepted and kept for that server (a stranded orphan,
// released once the server is configured again, in any tier). Before the
// fix the daemon dropped the index entry, asked the servers still
// configured, answered NOT_FOUND and forgot the session: when the server
// came back (here under a renamed tier), its bridge stayed held for good.
func TestReleaseWhileHolderRemovedByReload(t *testing.T) {
	srv, addr := startTCPSim(t, "primary-large", "s1")
	h := startDaemon(t, func(c *Config) {
		chaosConfig(c)
		c.Tiers[0].Servers = []string{addr}
	})
	ctx := reloadCtx(t)
	al, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("meeting")})
	if err != nil || al.Tier != "primary-large" {
		t.Fatalf("allocate: %+v %v", al, err)
	}
	base := h.d.Config()
	without := *base
	without.Tiers = append([]TierConfig(nil), base.Tiers[1:]...)
	if err := h.d.Reload(ctx, &without); err != nil {
		t.Fatal(err)
	}
	relErr := h.c.Release(ctx, al.Key)
	renamed := *base
	renamed.Tiers = append([]TierConfig(nil), base.Tiers...)
	renamed.Tiers[0].Name = "primary-xl"
	if err := h.d.Reload(ctx, &renamed); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for srv.Stats().Reservations != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := srv.Stats().Reservations; n != 0 {
		t.Fatalf("RELEASE of session %d while its server's tier was out of the configuration answered %v; 10 s after the server came back it still holds %d bridge(s), %d orphans pending",
			al.Key, relErr, n, h.d.rt.Stats().Orphans)
	}
}
