package mux

import "golang.org/x/sys/unix"

// inqFd returns the bytes a socket has received that nobody has read yet
// (SIOCINQ).
func inqFd(fd int) (int, bool) {
	n, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
	return n, err == nil
}
