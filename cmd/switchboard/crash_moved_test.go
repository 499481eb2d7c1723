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

// TestKillNineThenServerMovedTierReleasesOrphan is
// TestKillNineThenTierRenamedOneBridgePerToken with another change an
// operator may make while the daemon is down: the tier keeps its name, but
// its server moves to another tier (primary-large gets new hardware, the
// old server becomes nextgen). The INTENT settled at start becomes an
// orphan of unknown server, released on the servers of every tier. Before
// the fix it went to primary-large's servers only: the new server answered
// NOT_FOUND, the orphan was done, and the old server held its bridge for
// ever.
func TestKillNineThenServerMovedTierReleasesOrphan(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the daemon and telsim binaries")
	}
	dir := testsupport.ShortTempDir(t)
	oldAddr, oldCC := startTelsim(t, dir, "-tier", "primary-large", "-id", "old-pl", "-latency", "600ms")
	newAddr, newCC := startTelsim(t, dir, "-tier", "primary-large", "-id", "new-pl")
	cfg := func(pl, ng string) string {
		return fmt.Sprintf(`log: {level: warn}
server: {request_timeout: 5s}
pool: {min_conns: 1, heartbeat_interval: 1s, heartbeat_timeout: 2s}
tiers:
  - name: primary-large
    servers: [tcp://%s]
    attempt_timeout: 3s
  - name: nextgen
    servers: [tcp://%s]
    attempt_timeout: 3s
`, pl, ng)
	}
	req := &wire.AllocateRequest{Spec: wire.Spec{Name: []byte("crash, then the server moved tier")}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := startCrashRun(ctx, t, dir, cfg(oldAddr, newAddr), req)
	waitStats(t, oldCC, 10*time.Second, "the first RESERVE to arrive", func(st telsim.Stats) bool { return st.Reserves >= 1 })
	r.kill9(t)
	waitStats(t, oldCC, 5*time.Second, "the bridge reserved on the old server", func(st telsim.Stats) bool { return st.Reservations == 1 })

	r.writeConfig(t, cfg(newAddr, oldAddr)) // primary-large is now the new server; the old one serves nextgen
	r.restart(ctx, t)
	waitStats(t, newCC, 10*time.Second, "the orphan's RELEASE on primary-large's new server", func(st telsim.Stats) bool { return st.Releases >= 1 })
	// A sweep every 500 ms and a 600 ms RELEASE are well under 10 s.
	waitStats(t, oldCC, 10*time.Second, "the orphaned bridge released on the old server, now in nextgen", func(st telsim.Stats) bool { return st.Reservations == 0 })
}
