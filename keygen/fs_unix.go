//go:build unix

package keygen

import (
	"errors"
	"io"
	"os"
	"syscall"
)

// Lock implements FS with flock(2) on an open file description: a second
// FileStore on the same directory fails, in this process or another, and the
// kernel drops the lock when the process dies.
func (OSFS) Lock(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, err
	}
	return f, nil
}
