//go:build !linux

package frontend

// unreadFd cannot tell on this platform: the idle reaper then judges a
// connection by its requests alone.
func unreadFd(int) (int, bool) { return 0, false }

// incomingFd cannot tell on this platform: eviction then judges a
// connection by its requests alone.
func incomingFd(int) (int, bool) { return 0, false }

// peerCredFd cannot tell on this platform: server.max_conns_per_uid does
// not apply, and a non-empty server.allow_uids or allow_gids refuses every
// connection.
func peerCredFd(int) (uid, gid uint32, ok bool) { return 0, 0, false }
