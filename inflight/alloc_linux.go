package inflight

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// allocate gives f its size blocks now. A shared mapping of a sparse file
// gets its blocks when a page is first stored into, and on a full file
// system that store is a SIGBUS, which kills the process: with the blocks
// allocated here, a full disk is an error at Open instead. A file system
// without fallocate keeps the sparse file.
func allocate(f *os.File, size int64) error {
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return nil
	}
	return err
}
