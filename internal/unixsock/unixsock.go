// Package unixsock creates the daemon's Unix sockets (the front-end socket,
// the admin socket, a metrics socket) safely: it is its own package because
// the front-end server and the daemon's admin and metrics servers each need
// it and neither owns the others.
package unixsock

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Errors of Listen, wrapped in an *os.PathError.
var (
	ErrNotSocket   = errors.New("exists and is not a socket")
	ErrSocketInUse = errors.New("another daemon is serving this socket")
)

// Listen creates the Unix socket at path, refusing to steal one a live daemon serves,
// with its final mode from the start: 0660 for the front-end socket (owner
// and group, i.e. the XML front end's account), 0600 for the admin socket.
// It binds in a fresh private directory (0700, beside path), sets the mode
// there, where nobody else can reach the socket, then renames it into place:
// there is no window in which the socket exists at path with the umask's
// mode. The temporary name is about 14 bytes longer than path, which must
// fit a socket address (107 bytes).
func Listen(path string, mode os.FileMode) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, &os.PathError{Op: "listen", Path: path, Err: ErrNotSocket}
		}
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, &os.PathError{Op: "listen", Path: path, Err: ErrSocketInUse}
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	priv, err := os.MkdirTemp(dir, ".s")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(priv)
	tmp := filepath.Join(priv, "s")
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, err
	}
	// The path is ours to remove at shutdown, not the listener's at Close
	// (netpoll duplicates the descriptor).
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, mode); err != nil {
		ln.Close()
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
