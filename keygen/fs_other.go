//go:build !unix

package keygen

import (
	"errors"
	"io"
)

// Lock implements FS; without flock(2) the file store cannot guarantee a
// single owner of its directory, so it refuses to run.
func (OSFS) Lock(name string) (io.Closer, error) {
	return nil, errors.New("keygen: file locking is not supported on this system")
}
