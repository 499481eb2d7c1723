package daemon

import (
	"net"
	"strings"
	"testing"
	"time"

	"switchboard/telsim"
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
		h.d.rt.ForgetSession(k) // the index lost it: the servers are asked
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

// TestServerRestartedOnItsStandbyAddress: a server's HELLO id is "stable
// across its restarts" (docs/protocol.md 9.3). A tier lists a server's two
// addresses (its host and a standby, or the old and the new address during
// a move); the server, dead on the first, comes back on the second with
// its id. The pool refuses it there for ever: the first address's server
// still carries the id from its last HELLO though it has no connection, so
// the tier stays without that server (its sessions UNAVAILABLE, its
// orphans never released, its capacity gone) until the daemon restarts.
func TestServerRestartedOnItsStandbyAddress(t *testing.T) {
	sa, addrA := startTCPSim(t, "primary-large", "ha-1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	standby := ln.Addr().String()
	ln.Close()
	h := startDaemon(t, func(c *Config) {
		chaosConfig(c)
		c.Tiers[0].Servers = []string{addrA, "tcp://" + standby}
	})
	ctx := ctxT(t)
	sa.Close() // the server dies on its first address...
	waitFor(t, "primary-large without a live connection", 10*time.Second, func() bool {
		al, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("failover")})
		return err == nil && al.Tier != "primary-large"
	})
	sb, err := telsim.New(telsim.Config{Tier: "primary-large", ServerID: "ha-1"}) // ...and comes back on its standby
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Start(standby); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	deadline := time.Now().Add(5 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		al, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("failover")})
		if err == nil && al.Tier == "primary-large" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	st, _ := h.d.Status()
	for _, ts := range st.Tiers {
		for _, ss := range ts.Servers {
			if ss.LastError != "" {
				last = ss.LastError
			}
		}
	}
	t.Fatalf("server ha-1, back on its standby address %s, still takes no allocation 5 s later; last error: %s", standby, last)
}
