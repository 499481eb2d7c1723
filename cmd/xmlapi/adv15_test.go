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
