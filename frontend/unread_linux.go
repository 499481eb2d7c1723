package frontend

import "golang.org/x/sys/unix"

// unreadFd returns the bytes a Unix stream socket has sent that its peer
// has not read yet: SIOCOUTQ counts them until the receiver consumes them.
func unreadFd(fd int) (int, bool) {
	n, err := unix.IoctlGetInt(fd, unix.SIOCOUTQ)
	return n, err == nil
}

// incomingFd returns the bytes a socket has received that the daemon has
// not read yet (SIOCINQ): a request on its way in.
func incomingFd(fd int) (int, bool) {
	n, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
	return n, err == nil
}

// peerCredFd returns the uid and gid of the process that connected a Unix
// socket (as they were when it connected).
func peerCredFd(fd int) (uid, gid uint32, ok bool) {
	cr, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return 0, 0, false
	}
	return cr.Uid, cr.Gid, true
}
