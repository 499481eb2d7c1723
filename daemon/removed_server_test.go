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
// RELEASE must be accepted and kept for the server, as a possible orphan
// of a removed server is (kept, stranded, released once the server is
// configured again, docs/operations.md "What survives a reload") — or at
// least be refused with UNAVAILABLE so the front end retries. Instead the
// daemon drops the index entry, asks the servers still configured, answers
// NOT_FOUND, and forgets the session: when the tier comes back (here under
// a new name, with the same server), the bridge stays held for good.
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
			al.Key, relErr, n, h.d.svc.orphans.count())
	}
}
