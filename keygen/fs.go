package keygen

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"switchboard/internal/atomicfile"
)

// FS is the file-system seam of FileStore and of the secret file: every file
// operation keygen performs goes through it, so tests inject ENOSPC, EIO or
// EROFS at any step. OSFS is the real one. Implementations must be safe for
// concurrent use.
type FS interface {
	// FS is what atomicfile needs: CreateExcl, Rename, Remove, SyncDir.
	atomicfile.FS
	// MkdirAll creates a directory and its parents (os.MkdirAll).
	MkdirAll(path string, perm fs.FileMode) error
	// Stat describes a file, following symlinks (os.Stat).
	Stat(name string) (fs.FileInfo, error)
	// ReadFile reads a whole file (os.ReadFile).
	ReadFile(name string) ([]byte, error)
	// Lock takes an exclusive, non-blocking advisory lock on name (created
	// if missing), held until the returned Closer is closed; ErrLocked if
	// another open file holds it.
	Lock(name string) (io.Closer, error)
}

// File is a file open for writing.
type File = atomicfile.File

// OSFS is the operating system's file system. It is stateless and safe for
// concurrent use.
type OSFS struct {
	atomicfile.OS // CreateExcl, Rename, Remove, SyncDir
}

var _ FS = OSFS{}

// MkdirAll implements FS.
func (OSFS) MkdirAll(path string, perm fs.FileMode) error { return os.MkdirAll(path, perm) }

// Stat implements FS.
func (OSFS) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }

// ReadFile implements FS.
func (OSFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

// mkdirDurable creates dir and any missing parents with mode 0700, like
// MkdirAll, and fsyncs the parent of every directory it created, so that
// after a crash the new directory still exists and the files written into it
// (the lease state, whose rename is fsynced in dir itself) are not orphaned
// with it. An existing dir costs one Stat.
func mkdirDurable(fsys FS, dir string) error {
	dir = filepath.Clean(dir)
	// Walk up to the deepest existing ancestor; missing lists the
	// directories to create, deepest first.
	var missing []string
	for p := dir; ; p = filepath.Dir(p) {
		if _, err := fsys.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			// Exists, or cannot tell: what comes next (the lock, the
			// files) reports a directory that is not usable.
			break
		}
		missing = append(missing, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if err := fsys.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// Top-down: each new directory's entry in its parent is made durable
	// once the parent's own entry is.
	for i := len(missing) - 1; i >= 0; i-- {
		if err := fsys.SyncDir(filepath.Dir(missing[i])); err != nil {
			return fmt.Errorf("fsync %s after creating %s: %w", filepath.Dir(missing[i]), missing[i], err)
		}
	}
	return nil
}
