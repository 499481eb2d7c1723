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
	"switchboard/keygen"
	"switchboard/wire"
)

// initKeys runs the operator's one-shot command that creates the key space
// of a data directory (switchboard -init-keys, with the daemon's -config and
// -data-dir) and fails the test unless it exits 0. Every test that starts
// the binary with -config on a new data directory calls it first.
func initKeys(t *testing.T, cfgPath, data string, extra ...string) {
	t.Helper()
	args := append([]string{"-init-keys", "-config", cfgPath, "-data-dir", data}, extra...)
	if code, out, errOut := runBin(t, args...); code != 0 {
		t.Fatalf("switchboard %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
}

// runBin runs the binary to completion (bounded) and returns its exit code
// and output.
func runBin(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, daemonBin, args...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errOut.String()
	case errors.As(err, &ee) && ee.Exited():
		return ee.ExitCode(), out.String(), errOut.String()
	}
	t.Fatalf("switchboard %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	return 0, "", ""
}

// keysConfig is a -config file with 6-digit keys (small enough that a repeat
// is likely when the counter restarts), small blocks and, unless secret is
// empty, a provisioned keys.secret.
func keysConfig(t *testing.T, dir, secret string) string {
	t.Helper()
	s := "log:\n  level: warn\nkeys:\n  digits: 6\n  block_size: 64\n"
	if secret != "" {
		s += "  secret: " + secret + "\n"
	}
	s += `pool:
  min_conns: 1
tiers:
  - name: primary-large
    servers: [sim://primary-large]
`
	path := filepath.Join(dir, "switchboard.yaml")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// provisioned is a secret as an operator provisions it for several nodes.
var provisioned = strings.TrimSpace(string(keygen.EncodeSecret([]byte("switchboard-keys-test-secret-0123"))))

// issue starts the daemon on cfgPath and data, allocates n keys, stops it
// with SIGTERM and returns the keys.
func issue(t *testing.T, cfgPath, sock, data string, n int) []uint64 {
	t.Helper()
	p := start(t, daemonBin, sock, data, "-config", cfgPath)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]uint64, 0, n)
	for i := range n {
		a, err := c.Allocate(ctx, &wire.AllocateRequest{Spec: wire.Spec{Name: []byte(fmt.Sprint("keys ", i))}})
		if err != nil {
			c.Close()
			t.Fatalf("allocation %d: %v", i, err)
		}
		keys = append(keys, a.Key)
	}
	c.Close()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit 15s after SIGTERM")
	}
	return keys
}

// refusedAtStart runs the daemon on cfgPath and data and checks that it
// exits 2 at once, without serving, naming the command that fixes it. A
// daemon that serves instead fails the test, after it allocated as many keys
// as before holds, with how many of them it issued again.
func refusedAtStart(t *testing.T, cfgPath, sock, data, fix string, before []uint64) {
	t.Helper()
	state := filepath.Join(data, keygen.StateFile)
	was, wasErr := os.ReadFile(state)
	cmd := exec.Command(daemonBin, "-config", cfgPath, "-socket", sock, "-data-dir", data)
	var errOut strings.Builder
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stop := make(chan struct{})
	up, watcher := serving(sock, stop)
	defer func() {
		close(stop)
		<-watcher
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("daemon neither refused nor served within 20s\n%s", errOut.String())
	case <-up:
		n := len(before)
		again := repeatsFrom(t, sock, before)
		cmd.Process.Kill()
		<-done
		t.Fatalf("daemon started on a missing, lost or stale key space, and issued %d of %d keys again", again, n)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("daemon start: %v, want exit 2 (refused)\n%s", err, errOut.String())
	}
	want := "switchboard " + fix + " -config " + cfgPath + " -data-dir " + data
	if !strings.Contains(errOut.String(), want) {
		t.Fatalf("refusal does not name the fix %q:\n%s", want, errOut.String())
	}
	if now, err := os.ReadFile(state); string(now) != string(was) || (err == nil) != (wasErr == nil) {
		t.Fatalf("a refused start changed %s (before: %v, after: %v)", keygen.StateFile, wasErr, err)
	}
}

// serving returns a channel closed once sock answers PING; its goroutine
// gives up when stop is closed, and closes done when it returns.
func serving(sock string, stop <-chan struct{}) (up, done <-chan struct{}) {
	upC, doneC := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(doneC)
		for {
			select {
			case <-stop:
				return
			default:
			}
			err := pingOnce(sock)
			if err == nil {
				close(upC)
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return upC, doneC
}

// repeatsFrom allocates len(before) keys from the daemon at sock and
// returns how many of them are in before.
func repeatsFrom(t *testing.T, sock string, before []uint64) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, sock)
	if err != nil {
		return 0
	}
	defer c.Close()
	seen := make(map[uint64]bool, len(before))
	for _, k := range before {
		seen[k] = true
	}
	again := 0
	for i := range before {
		a, err := c.Allocate(ctx, &wire.AllocateRequest{Spec: wire.Spec{Name: []byte(fmt.Sprint("again ", i))}})
		if err != nil {
			break
		}
		if seen[a.Key] {
			again++
		}
	}
	return again
}

func noRepeats(t *testing.T, what string, before, after []uint64) {
	t.Helper()
	seen := make(map[uint64]bool, len(before))
	for _, k := range before {
		seen[k] = true
	}
	for _, k := range after {
		if seen[k] {
			t.Fatalf("%s: key %d issued again", what, k)
		}
	}
}

// TestKeySpaceNeverStartedImplicitly: with -config, the daemon never creates
// a key space — not in a new directory, nor next to a provisioned secret,
// nor after its lease state or its whole directory was lost — and a lost one
// is refused instead of counting from 0 again (issue 10, point 2).
func TestKeySpaceNeverStartedImplicitly(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon binary")
	}
	t.Run("new directory, generated secret", func(t *testing.T) {
		dir := testsupport.ShortTempDir(t)
		cfg := keysConfig(t, dir, "")
		refusedAtStart(t, cfg, filepath.Join(dir, "sb.sock"), filepath.Join(dir, "data"), "-init-keys", nil)
		if _, err := os.Stat(filepath.Join(dir, "data", keygen.SecretFile)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a refused start generated a secret: %v", err)
		}
	})
	t.Run("new directory, provisioned secret file", func(t *testing.T) {
		dir := testsupport.ShortTempDir(t)
		cfg := keysConfig(t, dir, "")
		data := filepath.Join(dir, "data")
		if err := os.MkdirAll(data, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(data, keygen.SecretFile), []byte(provisioned+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		refusedAtStart(t, cfg, filepath.Join(dir, "sb.sock"), data, "-init-keys", nil)
	})
	for _, lose := range []string{"lease deleted", "directory lost"} {
		t.Run("config secret, "+lose, func(t *testing.T) {
			dir := testsupport.ShortTempDir(t)
			cfg := keysConfig(t, dir, provisioned)
			sock, data := filepath.Join(dir, "sb.sock"), filepath.Join(dir, "data")
			initKeys(t, cfg, data)
			before := issue(t, cfg, sock, data, 50)
			if lose == "lease deleted" {
				if err := os.Remove(filepath.Join(data, keygen.StateFile)); err != nil {
					t.Fatal(err)
				}
			} else if err := os.RemoveAll(data); err != nil {
				t.Fatal(err)
			}
			refusedAtStart(t, cfg, sock, data, "-init-keys -skip-keys N", before)
			// The way back: recreate it past every counter leased before
			// (one restart leased at most two blocks of 64 beyond the 50).
			initKeys(t, cfg, data, "-skip-keys", "1000")
			noRepeats(t, "after recreating the lost key space with a skip", before, issue(t, cfg, sock, data, 50))
		})
	}
	t.Run("generated secret, lease deleted", func(t *testing.T) {
		dir := testsupport.ShortTempDir(t)
		cfg := keysConfig(t, dir, "")
		sock, data := filepath.Join(dir, "sb.sock"), filepath.Join(dir, "data")
		initKeys(t, cfg, data)
		before := issue(t, cfg, sock, data, 10)
		if err := os.Remove(filepath.Join(data, keygen.StateFile)); err != nil {
			t.Fatal(err)
		}
		refusedAtStart(t, cfg, sock, data, "-init-keys -skip-keys N", before)
		// -init-keys without a skip is refused too: the secret generated
		// here says keys were issued.
		if code, _, errOut := runBin(t, "-init-keys", "-config", cfg, "-data-dir", data); code != 2 || !strings.Contains(errOut, "-skip-keys N") {
			t.Fatalf("-init-keys next to a generated secret without its lease: exit %d\n%s", code, errOut)
		}
	})
}

// TestInitKeysOnce: -init-keys creates the key space once and refuses an
// existing one, leaving its high-water mark where it was.
func TestInitKeysOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon binary")
	}
	dir := testsupport.ShortTempDir(t)
	cfg := keysConfig(t, dir, "")
	sock, data := filepath.Join(dir, "sb.sock"), filepath.Join(dir, "data")
	code, out, errOut := runBin(t, "-init-keys", "-config", cfg, "-data-dir", data)
	if code != 0 || !strings.Contains(out, "key space created") {
		t.Fatalf("-init-keys: exit %d\n%s%s", code, out, errOut)
	}
	fi, err := os.Stat(filepath.Join(data, keygen.SecretFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("generated secret: %v %v", fi, err)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("-init-keys served")
	}
	before := issue(t, cfg, sock, data, 50)
	code, _, errOut = runBin(t, "-init-keys", "-config", cfg, "-data-dir", data)
	if code != 2 || !strings.Contains(errOut, "already exists") {
		t.Fatalf("second -init-keys: exit %d, want 2 and \"already exists\"\n%s", code, errOut)
	}
	noRepeats(t, "after a refused second -init-keys", before, issue(t, cfg, sock, data, 50))
}

// TestBackupRestoreWithSkip: a data directory put back from a backup holds a
// high-water mark older than the keys issued since; -skip-keys moves it past
// them, durably, and never backwards.
func TestBackupRestoreWithSkip(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon binary")
	}
	dir := testsupport.ShortTempDir(t)
	cfg := keysConfig(t, dir, provisioned)
	sock, data := filepath.Join(dir, "sb.sock"), filepath.Join(dir, "data")
	backup := filepath.Join(dir, "backup")
	initKeys(t, cfg, data)
	before := issue(t, cfg, sock, data, 40)
	copyDir(t, data, backup)
	before = append(before, issue(t, cfg, sock, data, 40)...)
	before = append(before, issue(t, cfg, sock, data, 40)...)

	// Restore: the data directory is lost and the backup put back.
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	copyDir(t, backup, data)
	mark := func() string {
		b, err := os.ReadFile(filepath.Join(data, keygen.StateFile))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	restored := mark()
	for _, bad := range [][]string{
		{"-skip-keys", "0"},         // moves nothing
		{"-skip-keys", "-5"},        // backwards: not a count
		{"-skip-keys", "900000000"}, // past the end of the 6-digit space
	} {
		args := append(bad, "-config", cfg, "-data-dir", data)
		if code, _, errOut := runBin(t, args...); code != 2 {
			t.Fatalf("switchboard %s: exit %d, want 2\n%s", strings.Join(args, " "), code, errOut)
		}
		if mark() != restored {
			t.Fatalf("a refused %s changed the lease state", strings.Join(bad, " "))
		}
	}
	// Since the backup: 80 keys over two starts, each leasing at most two
	// blocks of 64 beyond what it issued.
	code, out, errOut := runBin(t, "-skip-keys", "400", "-config", cfg, "-data-dir", data)
	if code != 0 || !strings.Contains(out, "moved forward") {
		t.Fatalf("-skip-keys 400: exit %d\n%s%s", code, out, errOut)
	}
	if mark() == restored {
		t.Fatal("-skip-keys left the lease state as it was")
	}
	noRepeats(t, "after restoring a backup and skipping", before, issue(t, cfg, sock, data, 100))
}

// copyDir copies the regular files of src into a new directory dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRestoredLeaseRefused: keygen.lease alone put back from an older copy
// (the directory's own record of its mark is newer) is refused at start
// until -skip-keys has moved it past that record.
func TestRestoredLeaseRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon binary")
	}
	dir := testsupport.ShortTempDir(t)
	cfg := keysConfig(t, dir, provisioned)
	sock, data := filepath.Join(dir, "sb.sock"), filepath.Join(dir, "data")
	lease := filepath.Join(data, keygen.StateFile)
	initKeys(t, cfg, data)
	before := issue(t, cfg, sock, data, 40)
	old, err := os.ReadFile(lease)
	if err != nil {
		t.Fatal(err)
	}
	before = append(before, issue(t, cfg, sock, data, 100)...)
	if err := os.WriteFile(lease, old, 0o600); err != nil {
		t.Fatal(err)
	}
	refusedAtStart(t, cfg, sock, data, "-skip-keys N", before)
	// A skip too short to pass the record is still refused at start.
	if code, _, errOut := runBin(t, "-skip-keys", "1", "-config", cfg, "-data-dir", data); code != 0 {
		t.Fatalf("-skip-keys 1: exit %d\n%s", code, errOut)
	}
	refusedAtStart(t, cfg, sock, data, "-skip-keys N", before)
	if code, _, errOut := runBin(t, "-skip-keys", "1000", "-config", cfg, "-data-dir", data); code != 0 {
		t.Fatalf("-skip-keys 1000: exit %d\n%s", code, errOut)
	}
	noRepeats(t, "after putting back an older lease and skipping", before, issue(t, cfg, sock, data, 100))
}
