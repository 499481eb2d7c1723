package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"switchboard/internal/testsupport"
	"switchboard/xmlapi"
)

// A listen address that cannot work is a configuration error, exit 2, so
// that systemd (RestartPreventExitStatus=2) stops instead of restarting
// forever: a -listen port out of range is refused before the daemon is
// waited for, and a metrics.addr socket path that is a regular file is
// refused at start. An exit 1 here would be restarted every RestartSec.
func TestListenConfigErrorsExitTwo(t *testing.T) {
	var out, errb bytes.Buffer
	c := run(context.Background(), []string{"-listen", "127.0.0.1:99999", "-socket", "/nonexistent.sock"}, nil, &out, &errb, nil)
	if c != 2 || !strings.Contains(errb.String(), "-listen") {
		t.Errorf("-listen 127.0.0.1:99999: exit %d, stderr %q; want 2 naming -listen", c, errb.String())
	}

	sock := startDaemon(t)
	dir := testsupport.ShortTempDir(t)
	notSock := filepath.Join(dir, "m.sock")
	if err := os.WriteFile(notSock, []byte("a regular file"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "x.yaml")
	cfg := strings.Replace(string(xmlapi.DefaultYAML), `  addr: ""`, "  addr: unix:"+notSock, 1)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stderr testsupport.Buffer
	c = run(ctx, []string{"-listen", "127.0.0.1:0", "-socket", sock, "-config", cfgPath}, nil, &bytes.Buffer{}, &stderr, nil)
	if ctx.Err() != nil {
		t.Fatalf("xmlapi still running after 60s with metrics.addr a regular file: %s", stderr.String())
	}
	if c != 2 || !strings.Contains(stderr.String(), "not a socket") {
		t.Errorf("metrics.addr naming a regular file: exit %d, stderr %s; want 2", c, stderr.String())
	}
	if b, err := os.ReadFile(notSock); err != nil || string(b) != "a regular file" {
		t.Errorf("the regular file at metrics.addr was touched: %q, %v", b, err)
	}
}
