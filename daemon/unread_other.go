//go:build !linux

package daemon

// unreadFd cannot tell on this platform: the idle reaper then judges a
// connection by its requests alone.
func unreadFd(int) (int, bool) { return 0, false }

// incomingFd cannot tell on this platform: eviction then judges a
// connection by its requests alone.
func incomingFd(int) (int, bool) { return 0, false }

// peerUIDFd cannot tell on this platform: server.max_conns_per_uid does
// not apply.
func peerUIDFd(int) (uint32, bool) { return 0, false }
