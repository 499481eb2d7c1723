package keygen

import (
	"go.uber.org/zap"

	"switchboard/internal/clock"
)

// Option is a test seam or an operational hook of New and NewFileStore: the
// logger, the clock and the file system. Configuration proper is Config.
type Option func(*options)

type options struct {
	log   *zap.Logger
	clock Clock
	fs    FS
	// Test seams of the refill loop: alloc returns the buffer for a block's
	// keys, fill computes them. Tests that issue a whole domain under the race
	// detector replace the permutation with a cheap stand-in, and the hot-path
	// benchmarks also reuse one buffer, so that the refill keeps up with a
	// loop that does nothing but call Next (the permutation and the lease have
	// their own benchmarks).
	lateBind bool
	alloc    func(n uint64) []uint64
	fill     func(p *Permutation, dst []uint64, c uint64)
}

func buildOptions(opts []Option) options {
	o := options{log: zap.NewNop(), clock: clock.Real{}, fs: OSFS{}, alloc: allocKeys, fill: (*Permutation).FillKeys}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

func allocKeys(n uint64) []uint64 { return make([]uint64, n) }

// WithLogger sets the logger (default: none). keygen logs lease failures and
// recoveries, the low-key-space warnings and exhaustion, never the secret.
func WithLogger(l *zap.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// WithLateBind lets New succeed while the lease store does not answer (its
// Bind or first Lease fails with an error wrapping ErrUnavailable, as a
// network store's does when it is unreachable): the refill loop binds and
// leases once it answers, and until then Next returns ErrUnavailable and
// Stats().Bound is false. Any other error (a changed binding, a missing key
// space) still fails New. Without it (the file store's way) New fails at once.
func WithLateBind() Option { return func(o *options) { o.lateBind = true } }

// WithClock sets the clock that times lease retries and lease durations
// (default: the system clock).
func WithClock(c Clock) Option {
	return func(o *options) {
		if c != nil {
			o.clock = c
		}
	}
}

// WithFS sets the file system used by the file store and the secret file
// (default OSFS); tests use it to inject disk faults.
func WithFS(fsys FS) Option {
	return func(o *options) {
		if fsys != nil {
			o.fs = fsys
		}
	}
}

// Clock is the time seam: the refill loop waits on a timer between failed
// leases, and lease failures are dated by Now. Implementations must be safe
// for concurrent use.
type Clock = clock.Clock
