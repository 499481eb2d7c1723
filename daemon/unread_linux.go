package daemon

import "golang.org/x/sys/unix"

// unreadFd returns the bytes a Unix stream socket has sent that its peer
// has not read yet: SIOCOUTQ counts them until the receiver consumes them.
func unreadFd(fd int) (int, bool) {
	n, err := unix.IoctlGetInt(fd, unix.SIOCOUTQ)
	return n, err == nil
}
