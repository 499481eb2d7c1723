package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"switchboard/internal/etcdtest"
	"switchboard/internal/testsupport"
	"switchboard/keygen/etcdstore"
)

// TestSameInstanceRefusedAtStart: a second daemon of the fleet configured
// with the instance name of a running one (another socket) exits 2 with a
// message that names the instance and says to set `instance`; the running
// daemon stays listed. The first daemon, killed and restarted on its own
// socket, is not refused (its entry is its own).
func TestSameInstanceRefusedAtStart(t *testing.T) {
	srv := etcdtest.Start(t)
	dir := testsupport.ShortTempDir(t)
	tiers := [3]string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}
	cfg := filepath.Join(dir, "a.yaml")
	if err := os.WriteFile(cfg, []byte(fleetConfig("dup", srv.Endpoint(), tiers)), 0o600); err != nil {
		t.Fatal(err)
	}
	initKeys(t, cfg, filepath.Join(dir, "da"))
	cli, err := etcdstore.Dial(etcdstore.ClientConfig{Endpoints: []string{srv.Endpoint()}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	listed := func(sock string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ms, err := etcdstore.Fleet(ctx, cli, "/fleet-test/keys/")
		return err == nil && len(ms) == 1 && ms[0].Instance == "dup" && ms[0].Socket == sock
	}
	waitListed := func(sock string) {
		t.Helper()
		for end := time.Now().Add(30 * time.Second); !listed(sock); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("daemon on %s not listed in the fleet after 30 s", sock)
			}
		}
	}
	sockA := filepath.Join(dir, "a.sock")
	a := start(t, daemonBin, sockA, filepath.Join(dir, "da"), "-config", cfg, "-admin-socket", filepath.Join(dir, "aa.sock"), "-metrics-addr", "127.0.0.1:0")
	waitListed(sockA)

	code, out, errOut := runBin(t, "-config", cfg, "-socket", filepath.Join(dir, "b.sock"), "-admin-socket", filepath.Join(dir, "ab.sock"),
		"-data-dir", filepath.Join(dir, "db"), "-metrics-addr", "127.0.0.1:0")
	if code != 2 || !strings.Contains(errOut, `\"dup\"`) || !strings.Contains(errOut, "instance") {
		t.Errorf("a second daemon with the running one's instance: exit %d, want 2 naming the instance\n%s%s", code, out, errOut)
	}
	if !listed(sockA) {
		t.Errorf("the running daemon is no longer listed")
	}

	a.kill9(t) // its entry stays until its lease expires (10 s)
	start(t, daemonBin, sockA, filepath.Join(dir, "da"), "-config", cfg, "-admin-socket", filepath.Join(dir, "aa.sock"), "-metrics-addr", "127.0.0.1:0")
	waitListed(sockA)
}
