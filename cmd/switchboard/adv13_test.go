package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"switchboard/internal/etcdtest"
)

// TestAdvInitKeysOtherSecretOnFreshFleet (adversarial review of issue 13):
// two operators run the one-shot -init-keys for one fleet prefix, each with
// another secret (two hosts provisioned apart, or two fleets pointed at one
// prefix by mistake). The second is not refused: etcd's key space, its
// mark still 0, is silently rebound to the second secret (exit 0, the same
// "created" as the first), so the first operator's hosts are refused at
// start although their -init-keys succeeded, and a daemon already bound
// to the first binding keeps leasing under it
// (keygen/etcdstore TestAdvRebindUnderABoundDaemon). Promise 1/2: the key
// space is created once, never implicitly; a daemon with another secret is
// refused.
func TestAdvInitKeysOtherSecretOnFreshFleet(t *testing.T) {
	srv := etcdtest.Start(t)
	dir := shortDir(t)
	tiers := [3]string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}
	first := filepath.Join(dir, "a.yaml")
	second := filepath.Join(dir, "b.yaml")
	cfg := fleetConfig("fleet-a", srv.Endpoint(), tiers)
	other := strings.Replace(strings.Replace(cfg, "00112233445566778899aabbccddeeff0011223344556677", "ffeeddccbbaa99887766554433221100ffeeddccbbaa9988", 1), "fleet-a", "fleet-b", 1)
	if other == cfg {
		t.Fatal("the second config has the same secret")
	}
	if err := os.WriteFile(first, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(second, []byte(other), 0o600); err != nil {
		t.Fatal(err)
	}
	initKeys(t, first, filepath.Join(dir, "da"))
	code, out, errOut := runBin(t, "-init-keys", "-config", second, "-data-dir", filepath.Join(dir, "db"))
	if code != 2 {
		t.Errorf("-init-keys with another secret on the fleet's new key space: exit %d, want 2 (refused: etcd already holds a key space)\n%s%s", code, out, errOut)
	}
}
