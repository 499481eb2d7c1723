package keygen

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// FS is the file-system seam of FileStore and of the secret file: every file
// operation keygen performs goes through it, so tests inject ENOSPC, EIO or
// EROFS at any step. OSFS is the real one. Implementations must be safe for
// concurrent use.
type FS interface {
	// MkdirAll creates a directory and its parents (os.MkdirAll).
	MkdirAll(path string, perm fs.FileMode) error
	// Stat describes a file, following symlinks (os.Stat).
	Stat(name string) (fs.FileInfo, error)
	// ReadFile reads a whole file (os.ReadFile).
	ReadFile(name string) ([]byte, error)
	// CreateExcl creates a new file for writing with the given permissions,
	// failing if it exists (O_WRONLY|O_CREATE|O_EXCL).
	CreateExcl(name string, perm fs.FileMode) (File, error)
	// Rename atomically replaces newpath with oldpath (os.Rename).
	Rename(oldpath, newpath string) error
	// Remove removes a file (os.Remove).
	Remove(name string) error
	// SyncDir fsyncs a directory, making renames in it durable.
	SyncDir(dir string) error
	// Lock takes an exclusive, non-blocking advisory lock on name (created
	// if missing), held until the returned Closer is closed; ErrLocked if
	// another open file holds it.
	Lock(name string) (io.Closer, error)
}

// File is a file open for writing.
type File interface {
	io.Writer
	Sync() error
	Close() error
}

// OSFS is the operating system's file system. It is stateless and safe for
// concurrent use.
type OSFS struct{}

var _ FS = OSFS{}

// MkdirAll implements FS.
func (OSFS) MkdirAll(path string, perm fs.FileMode) error { return os.MkdirAll(path, perm) }

// Stat implements FS.
func (OSFS) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }

// ReadFile implements FS.
func (OSFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

// CreateExcl implements FS.
func (OSFS) CreateExcl(name string, perm fs.FileMode) (File, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
}

// Rename implements FS.
func (OSFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

// Remove implements FS.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// SyncDir implements FS.
func (OSFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

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

// writeReplace replaces path with data through a temporary file and a
// rename, without fsync: after a crash the file holds the old content, the
// new one, or (torn) neither — callers must tolerate all three.
func writeReplace(fsys FS, path string, data []byte, perm fs.FileMode) error {
	tmp := path + ".tmp"
	if err := fsys.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := fsys.CreateExcl(tmp, perm)
	if err != nil {
		return err
	}
	n, err := f.Write(data)
	if err == nil && n < len(data) {
		err = io.ErrShortWrite
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(tmp, path)
	}
	if err != nil {
		_ = fsys.Remove(tmp)
	}
	return err
}

// writeAtomic replaces path with data so that after a crash the file holds
// either the old or the new content, and the new content is durable when it
// returns nil: write a temporary file, fsync it, rename it over path, fsync
// the directory. A stale temporary file from a crash is removed first. The
// returned error names the failing step and wraps the OS error (errors.Is
// matches syscall.ENOSPC and the like).
func writeAtomic(fsys FS, path string, data []byte, perm fs.FileMode) error {
	tmp := path + ".tmp"
	if err := fsys.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale %s: %w", tmp, err)
	}
	f, err := fsys.CreateExcl(tmp, perm)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	fail := func(step string, err error) error {
		_ = f.Close()
		_ = fsys.Remove(tmp)
		return fmt.Errorf("%s %s: %w", step, tmp, err)
	}
	n, err := f.Write(data)
	if err == nil && n < len(data) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fail("write", err)
	}
	if err := f.Sync(); err != nil {
		return fail("fsync", err)
	}
	if err := f.Close(); err != nil {
		_ = fsys.Remove(tmp)
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := fsys.Rename(tmp, path); err != nil {
		_ = fsys.Remove(tmp)
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	if err := fsys.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("fsync directory of %s: %w", path, err)
	}
	return nil
}
