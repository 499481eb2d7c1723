package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"switchboard/client"
	"switchboard/telsim"
	"switchboard/wire"
)

// TestKillNineThenServerMovedTierReleasesOrphan is
// TestKillNineThenTierRenamedOneBridgePerToken with another change an
// operator may make while the daemon is down: the tier keeps its name, but
// its server moves to another tier (primary-large gets new hardware, the
// old server becomes nextgen). An orphan "belongs to the server that holds
// it, so it is released through whichever tier now has that server"
// (docs/operations.md). The INTENT settled at start becomes an orphan of
// unknown server of primary-large; the releaser sends its RELEASE to the
// servers of primary-large only (its name still exists), the new server
// answers NOT_FOUND, the orphan is done, and the bridge on the old server
// is held for ever.
func TestKillNineThenServerMovedTierReleasesOrphan(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the daemon and telsim binaries")
	}
	dir := shortDir(t)
	oldAddr, oldCC := startTelsim(t, dir, "-tier", "primary-large", "-id", "old-pl", "-latency", "600ms")
	newAddr, newCC := startTelsim(t, dir, "-tier", "primary-large", "-id", "new-pl")
	cfgPath := filepath.Join(dir, "sb.yaml")
	writeCfg := func(pl, ng string) {
		cfg := fmt.Sprintf(`log: {level: warn}
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
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg(oldAddr, newAddr)
	sock := filepath.Join(dir, "sb.sock")
	data := filepath.Join(dir, "data")
	req := &wire.AllocateRequest{Spec: wire.Spec{Name: []byte("crash, then the server moved tier")}}

	initKeys(t, cfgPath, data)
	p := start(t, daemonBin, sock, data, "-config", cfgPath)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() {
		_, err := c.Allocate(ctx, req)
		first <- err
	}()
	waitStats(t, oldCC, 10*time.Second, "the first RESERVE to arrive", func(st telsim.Stats) bool { return st.Reserves >= 1 })
	p.kill9(t)
	if err := <-first; err == nil {
		t.Fatal("the first allocation was answered although the daemon was killed before the server replied")
	}
	c.Close()
	waitStats(t, oldCC, 5*time.Second, "the bridge reserved on the old server", func(st telsim.Stats) bool { return st.Reservations == 1 })

	writeCfg(newAddr, oldAddr) // primary-large is now the new server; the old one serves nextgen
	start(t, daemonBin, sock, data, "-config", cfgPath)
	waitStats(t, newCC, 10*time.Second, "the orphan's RELEASE on primary-large's new server", func(st telsim.Stats) bool { return st.Releases >= 1 })
	// A sweep every 500 ms and a 600 ms RELEASE are well under 10 s.
	waitStats(t, oldCC, 10*time.Second, "the orphaned bridge released on the old server, now in nextgen", func(st telsim.Stats) bool { return st.Reservations == 0 })
}
