package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"switchboard/internal/testsupport"
	"switchboard/telsim"
	"switchboard/wire"
)

// TestKillNineThenTierRenamedOneBridgePerToken is
// TestKillNineDuringReserveOneBridgePerToken with one change an operator
// may well make while the daemon is down: the restart's configuration
// names the tier differently (same server). The INTENT settled at start
// becomes an orphan with no server id (the in-flight table records the
// tier only), released on every server of every tier. Before the fix the
// releaser found such an orphan's servers by its tier name alone: under
// the new name it was stranded for good, and the token's retry left the
// server holding two bridges for one token.
func TestKillNineThenTierRenamedOneBridgePerToken(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the daemon and telsim binaries")
	}
	dir := testsupport.ShortTempDir(t)
	addr, cc := startTelsim(t, dir, "-tier", "primary-large", "-latency", "600ms")
	cfg := func(tier string) string {
		return fmt.Sprintf(`log: {level: warn}
server: {request_timeout: 5s}
pool: {min_conns: 1, heartbeat_interval: 1s, heartbeat_timeout: 2s}
tiers:
  - name: %s
    servers: [tcp://%s]
    attempt_timeout: 3s
`, tier, addr)
	}
	req := &wire.AllocateRequest{Token: []byte("issue-10-renamed"), Spec: wire.Spec{Name: []byte("crash, then a renamed tier")}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := startCrashRun(ctx, t, dir, cfg("primary-large"), req)
	waitStats(t, cc, 10*time.Second, "the first RESERVE to arrive", func(st telsim.Stats) bool { return st.Reserves >= 1 })
	r.kill9(t)

	r.writeConfig(t, cfg("primary-xl")) // same server, new tier name
	c := r.restart(ctx, t)
	a, err := c.Allocate(ctx, req)
	if err != nil {
		t.Fatalf("retry after the restart: %v", err)
	}
	if a.Tier != "primary-xl" {
		t.Fatalf("retry served by tier %q", a.Tier)
	}
	// The same bound as the original test: a sweep every 500 ms and a
	// 600 ms RELEASE are well under 10 s.
	waitStats(t, cc, 10*time.Second, "exactly one reservation for the token", func(st telsim.Stats) bool { return st.Reservations == 1 })
}
