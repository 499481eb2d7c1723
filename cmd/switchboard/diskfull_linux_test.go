package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"switchboard/client"
	"switchboard/internal/testsupport"
	"switchboard/wire"
)

// fullDataDir mounts a small tmpfs under a short temporary directory,
// creates a key space in it and fills it, leaving about free bytes. It
// skips the test where mounting is not permitted (not root).
func fullDataDir(t *testing.T, cfgPath string, free int64) string {
	t.Helper()
	mnt := filepath.Join(testsupport.ShortTempDir(t), "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=6m"); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (needs root): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	data := filepath.Join(mnt, "data")
	initKeys(t, cfgPath, data)
	f, err := os.Create(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(max(0, st.Size()-free)); err != nil {
		t.Fatal(err)
	}
	return data
}

// TestDataDirFullNoFault: a data directory whose file system is full must
// make the daemon refuse to start with a message, or serve; never crash.
// The in-flight table is mapped shared; its blocks are now allocated
// (fallocate) when it is opened. Before the fix the file was sparse, so
// the first store into a page on a full file system took SIGBUS ("fatal
// error: fault"): the daemon reported READY, then died, and died again at
// every restart.
func TestDataDirFullNoFault(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs and runs the daemon binary")
	}
	dir := testsupport.ShortTempDir(t)
	cfgPath := filepath.Join(dir, "sb.yaml")
	cfg := `log: {level: warn}
server: {request_timeout: 5s}
tiers:
  - name: primary-large
    servers: ["sim://pl"]
`
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	data := fullDataDir(t, cfgPath, 64<<10)
	sock := filepath.Join(dir, "sb.sock")
	cmd := exec.Command(daemonBin, "-socket", sock, "-data-dir", data, "-config", cfgPath)
	logs := &testsupport.Buffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-done
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Allocate while it runs, for up to 3 s after the first success.
	var served time.Time
	for served.IsZero() || time.Since(served) < 3*time.Second {
		select {
		case err := <-done:
			done <- err
			out := logs.String()
			if strings.Contains(out, "fatal error") || strings.Contains(out, "unexpected fault address") {
				i := strings.Index(out, "unexpected fault address")
				t.Fatalf("daemon crashed on a full data directory (%v):\n%s", err, out[max(0, i):min(len(out), max(0, i)+1200)])
			}
			if !strings.Contains(out, "no space left") {
				t.Fatalf("daemon exited (%v) on a full data directory without saying the disk is full:\n%s", err, out)
			}
			return // refused to start, with the reason: fine
		case <-ctx.Done():
			t.Fatalf("neither served nor exited in 20 s:\n%s", logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		c, err := client.Dial(ctx, sock)
		if err != nil {
			continue
		}
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = c.Allocate(actx, &wire.AllocateRequest{Spec: wire.Spec{Name: []byte(fmt.Sprintf("full disk %d", time.Now().UnixNano()))}})
		acancel()
		c.Close()
		if err == nil && served.IsZero() {
			served = time.Now()
		}
	}
}
