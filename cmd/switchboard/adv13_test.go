package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"switchboard/internal/etcdtest"
	"switchboard/internal/testsupport"
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
	dir := testsupport.ShortTempDir(t)
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
	if !strings.Contains(errOut, "secret fingerprint") {
		t.Errorf("the refusal does not name the difference (the secret fingerprint):\n%s", errOut)
	}
}

// TestAdvPasswordFileExitCode (adversarial review of issue 13): a
// keys.etcd.password_file that is missing, or readable by others, or a
// missing keys.etcd.ca_file, is a bad configuration (the error says "invalid config"), but the daemon exits 1,
// the runtime-failure code that the unit restarts on, not 2 (bad
// configuration; secret missing or unsafe), which docs/operations.md's
// exit-code table promises and RestartPreventExitStatus=2 relies on: the
// daemon is restarted in a loop instead of waiting for a person.
func TestAdvPasswordFileExitCode(t *testing.T) {
	dir := testsupport.ShortTempDir(t)
	unsafe := filepath.Join(dir, "pw-0644")
	if err := os.WriteFile(unsafe, []byte("secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(unsafe, 0o644); err != nil { // past the umask
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, endpoint, fields string }{
		{"password file missing", "http://127.0.0.1:1", "    username: sb\n    password_file: " + filepath.Join(dir, "no-such-file") + "\n"},
		{"password file mode 0644", "http://127.0.0.1:1", "    username: sb\n    password_file: " + unsafe + "\n"},
		{"CA file missing", "https://127.0.0.1:1", "    ca_file: " + filepath.Join(dir, "no-such-ca") + "\n"},
	} {
		cfg := fleetConfig("fleet-pw", tc.endpoint, [3]string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"})
		cfg = strings.Replace(cfg, "    prefix: /fleet-test/keys/\n", "    prefix: /fleet-test/keys/\n"+tc.fields, 1)
		path := filepath.Join(dir, "pw.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, errOut := runBin(t, "-config", path, "-socket", filepath.Join(dir, "s.sock"), "-admin-socket", filepath.Join(dir, "a.sock"),
			"-data-dir", filepath.Join(dir, "data"), "-metrics-addr", "127.0.0.1:0")
		if code != 2 {
			t.Errorf("%s: exit %d, want 2 (bad configuration)\n%s", tc.name, code, errOut)
		}
	}
}
