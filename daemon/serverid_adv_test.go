package daemon

import (
	"strings"
	"testing"

	"switchboard/wire"
)

// TestTwoServersOneHelloID: two servers of one tier that report the same
// HELLO server id — what two telsim processes started without -id do (the
// default id is "telsim-" + tier) — must not make follow-ups reach the
// server that does not hold the session. Sessions are bound to a server
// through its HELLO id (docs/protocol.md 9.3), so the pool refuses the
// second server's connections (pool.ErrDuplicateServerID, shown as the
// server's last error in the status) and every session stays on the first.
// Before that, a RELEASE of a live session went to whichever of the two a
// connection picked, the wrong one answered NOT_FOUND, the front end was
// told the session did not exist, and the bridge stayed held.
func TestTwoServersOneHelloID(t *testing.T) {
	sa, addrA := startTCPSim(t, "primary-large", "telsim-primary-large")
	sb, addrB := startTCPSim(t, "primary-large", "telsim-primary-large")
	h := startDaemon(t, func(c *Config) {
		chaosConfig(c)
		c.Tiers[0].Servers = []string{addrA, addrB}
	})
	ctx := ctxT(t)
	const n = 40
	var keys []uint64
	for range n {
		al, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("dup id")})
		if err != nil || al.Tier != "primary-large" {
			t.Fatalf("allocate: %+v %v", al, err)
		}
		keys = append(keys, al.Key)
	}
	var lookupErrs, releaseErrs int
	for _, k := range keys {
		h.d.svc.idx.forgetSession(k) // the index lost it: the servers are asked
		if _, err := h.c.Lookup(ctx, k); err != nil {
			if lookupErrs == 0 {
				t.Logf("lookup %d: %v", k, err)
			}
			lookupErrs++
		}
		if err := h.c.Release(ctx, k); err != nil {
			if releaseErrs == 0 {
				t.Logf("release %d: %v", k, err)
			}
			releaseErrs++
		}
	}
	st, err := h.d.Status()
	if err != nil {
		t.Fatal(err)
	}
	dup := false
	for _, ts := range st.Tiers {
		for _, ss := range ts.Servers {
			if strings.Contains(ss.LastError, "duplicate server id") {
				dup = true
			}
		}
	}
	if !dup {
		t.Errorf("no server of the status reports the duplicate HELLO id: %+v", st.Tiers)
	}
	ra, rb := sa.Stats().Reservations, sb.Stats().Reservations
	if lookupErrs != 0 || releaseErrs != 0 || ra+rb != 0 {
		t.Fatalf("%d sessions on two servers sharing one HELLO id: %d lookups and %d releases failed; %d + %d bridges still held after every release",
			n, lookupErrs, releaseErrs, ra, rb)
	}
}
