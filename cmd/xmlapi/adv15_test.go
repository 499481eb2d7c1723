package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 15 point 6 (adversarial review): -check-config reports every error
// of a file in one pass. A file with a malformed password hash and a
// ticket_secret_file that does not exist has two problems; one pass must
// name both, not the hash first and the secret file only once the hash is
// fixed.
func TestAdv15CheckConfigOnePassIncludesTicketSecret(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	conf := "auth:\n  ticket_secret_file: " + filepath.Join(dir, "no-such-secret") + "\n" +
		"accounts:\n  - web_ex_id: a\n    site_id: \"1\"\n    password_hash: \"nothash\"\n"
	if err := os.WriteFile(bad, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	c := run(context.Background(), []string{"-check-config", bad}, nil, &out, &errb, nil)
	if c != 2 {
		t.Fatalf("-check-config: exit %d, want 2 (stderr %q)", c, errb.String())
	}
	for _, want := range []string{"password_hash", "ticket_secret_file"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("-check-config on a file with two errors: report lacks %q (one pass must report them all):\n%s", want, errb.String())
		}
	}
}

// Issue 15 point 6 (adversarial review): -check-config (the unit's
// ExecStartPre) must catch what stops xmlapi at start. metrics.addr
// "127.0.0.1:99999" passes it ("ok"), and xmlapi started on the file fails
// with "metrics listener: listen tcp: address 99999: invalid port", exit
// 1, which systemd restarts forever (RestartPreventExitStatus=2). The
// daemon's -check-config refuses the same address ("port "99999" not in
// 0..65535").
func TestAdv15CheckConfigMetricsPortOutOfRange(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.yaml")
	conf := "metrics:\n  addr: \"127.0.0.1:99999\"\n" +
		"accounts:\n  - web_ex_id: a\n    site_id: \"1\"\n    password_hash: \"$2a$10$0zQJr6Pu6lsaEqtJRipz.OoBgtU6uGhQvtdVM2oV03OgkBIJeqgg6\"\n"
	if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	c := run(context.Background(), []string{"-check-config", p}, nil, &out, &errb, nil)
	if c != 2 || !strings.Contains(errb.String(), "metrics.addr") {
		t.Errorf("-check-config with metrics.addr 127.0.0.1:99999: exit %d, stdout %q, stderr %q; want exit 2 naming metrics.addr", c, out.String(), errb.String())
	}
}
