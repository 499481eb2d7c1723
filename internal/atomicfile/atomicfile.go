package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// File is a file open for writing.
type File interface {
	io.Writer
	Sync() error
	Close() error
}

// FS is the part of a file system Write and Replace use. Implementations
// must be safe for concurrent use.
type FS interface {
	// CreateExcl creates a new file for writing with the given permissions,
	// failing if it exists (O_WRONLY|O_CREATE|O_EXCL).
	CreateExcl(name string, perm fs.FileMode) (File, error)
	// Rename atomically replaces newpath with oldpath (os.Rename).
	Rename(oldpath, newpath string) error
	// Remove removes a file (os.Remove).
	Remove(name string) error
	// SyncDir fsyncs a directory, making renames in it durable.
	SyncDir(dir string) error
}

// OS is the operating system's file system. It is stateless and safe for
// concurrent use.
type OS struct{}

var _ FS = OS{}

// CreateExcl implements FS.
func (OS) CreateExcl(name string, perm fs.FileMode) (File, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
}

// Rename implements FS.
func (OS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

// Remove implements FS.
func (OS) Remove(name string) error { return os.Remove(name) }

// SyncDir implements FS with the package's SyncDir.
func (OS) SyncDir(dir string) error { return SyncDir(dir) }

// SyncDir fsyncs the directory dir, making the creations, renames and
// removals of entries in it durable.
func SyncDir(dir string) error {
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

// TempName is the temporary file Write and Replace write beside path.
func TempName(path string) string { return path + ".tmp" }

// Write replaces path with data so that after a crash the file holds either
// the old or the new content, and the new content is durable when it returns
// nil: write a temporary file, fsync it, rename it over path, fsync the
// directory. A stale temporary file from a crash is removed first. The
// returned error names the failing step and wraps the OS error (errors.Is
// matches syscall.ENOSPC and the like).
func Write(fsys FS, path string, data []byte, perm fs.FileMode) error {
	tmp := TempName(path)
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
	if err := writeAll(f, data); err != nil {
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

// Replace replaces path with data through a temporary file and a rename,
// without fsync: after a crash the file holds the old content, the new one,
// or (torn) neither — callers must tolerate all three. It is for hints whose
// loss costs only work, written where an fsync would cost too much.
func Replace(fsys FS, path string, data []byte, perm fs.FileMode) error {
	tmp := TempName(path)
	if err := fsys.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := fsys.CreateExcl(tmp, perm)
	if err != nil {
		return err
	}
	err = writeAll(f, data)
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

func writeAll(f File, data []byte) error {
	n, err := f.Write(data)
	if err == nil && n < len(data) {
		err = io.ErrShortWrite
	}
	return err
}
