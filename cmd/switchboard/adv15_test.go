package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"switchboard/internal/testsupport"
)

// adv15EtcdConfig is a config whose only problem is that the files its
// keys.etcd section names do not exist.
func adv15EtcdConfig(t *testing.T, dir string) string {
	t.Helper()
	missing := filepath.Join(dir, "missing")
	conf := "keys:\n  store: etcd\n  etcd:\n    endpoints: [\"https://127.0.0.1:1\"]\n" +
		"    ca_file: " + filepath.Join(missing, "ca.pem") + "\n" +
		"    cert_file: " + filepath.Join(missing, "cert.pem") + "\n" +
		"    key_file: " + filepath.Join(missing, "key.pem") + "\n" +
		"    username: sb\n    password_file: " + filepath.Join(missing, "pw") + "\n" +
		"tiers:\n  - name: primary-large\n    servers: [tcp://127.0.0.1:1]\n"
	p := filepath.Join(dir, "etcd.yaml")
	if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Issue 15 point 6 (adversarial review): -check-config reports every error
// of a file. keys.etcd's ca_file, cert_file, key_file and password_file
// name files that do not exist: -check-config (the unit's ExecStartPre)
// says "ok", and the daemon started on the same file fails at once
// ("etcd CA file: open ...: no such file or directory"). xmlapi's
// -check-config reads the file its config names (auth.ticket_secret_file);
// the daemon's does not.
func TestAdv15CheckConfigMissingEtcdFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon binary")
	}
	dir := testsupport.ShortTempDir(t)
	cfg := adv15EtcdConfig(t, dir)
	var out, errb bytes.Buffer
	cmd := exec.Command(daemonBin, "-check-config", cfg)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Errorf("switchboard -check-config on a config naming missing etcd files: %v, stdout %q, stderr %q; want exit 2", err, out.String(), errb.String())
	}
	for _, want := range []string{"ca_file", "cert_file", "key_file", "password_file"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("switchboard -check-config: report lacks %q (the file it names does not exist): stderr %q", want, errb.String())
		}
	}
}

// Issue 15 point 3/6 (adversarial review): the unit has
// RestartPreventExitStatus=2 and the usage says exit 2 is "bad flags or
// configuration". A daemon started on a config whose keys.etcd files do not
// exist fails with "keygen: invalid config: etcd CA file: ..." and exit 1,
// so systemd restarts it every RestartSec forever instead of stopping on a
// configuration error.
func TestAdv15MissingEtcdFilesExitTwo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon binary")
	}
	dir := testsupport.ShortTempDir(t)
	cfg := adv15EtcdConfig(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var errb bytes.Buffer
	cmd := exec.CommandContext(ctx, daemonBin, "-config", cfg, "-data-dir", filepath.Join(dir, "data"), "-socket", filepath.Join(dir, "s.sock"))
	cmd.Stderr = &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("daemon still running after 60s on a config naming missing etcd files (stderr %q)", errb.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Errorf("daemon on a config naming missing etcd files: %v, want exit status 2 (configuration); stderr %q", err, errb.String())
	}
}
