package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// syncDirFails is OS whose directory fsync fails.
type syncDirFails struct{ OS }

func (syncDirFails) SyncDir(string) error { return syscall.EIO }

func TestWriteReplacesAndLeavesNoTemp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	for _, want := range []string{"old", "new"} {
		if err := Write(OS{}, path, []byte(want), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
	}
	if _, err := os.Stat(TempName(path)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("temporary file left: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", fi.Mode(), err)
	}
}

func TestWriteRemovesStaleTemp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(TempName(path), []byte("crash"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(OS{}, path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Replace(OS{}, path, []byte("y"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "y" {
		t.Fatalf("read %q, want y", got)
	}
}

func TestWriteReportsDirectoryFsync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	err := Write(syncDirFails{}, path, []byte("x"), 0o600)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("err = %v, want EIO", err)
	}
	// Replace does not fsync: the same file system succeeds.
	if err := Replace(syncDirFails{}, path, []byte("y"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestSyncDirMissing(t *testing.T) {
	if err := SyncDir(filepath.Join(t.TempDir(), "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
}
