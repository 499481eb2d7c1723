package keygen

import "errors"

// Sentinel errors. Match them with errors.Is; returned errors wrap them with
// detail (and, for lease failures, the store's own error, so errors.Is also
// matches e.g. syscall.ENOSPC).
var (
	// ErrExhausted: every counter of this node's partition has been issued.
	// Final: the generator never wraps. The front end sees KEYS_EXHAUSTED.
	ErrExhausted = errors.New("keygen: key space exhausted")
	// ErrUnavailable: no key is buffered and the lease store is failing (or
	// has not delivered the next block yet). Transient: keys resume when the
	// store works again.
	ErrUnavailable = errors.New("keygen: no key available")
	// ErrStoreDown is wrapped, with ErrUnavailable, by Next's error while
	// the lease store is known to fail (its last lease or bind failed), as
	// opposed to a block that is merely late: a caller need not wait for
	// keys that cannot come before the store answers again.
	ErrStoreDown = errors.New("keygen: lease store failing")
	// ErrClosed: the generator or store was closed.
	ErrClosed = errors.New("keygen: closed")
	// ErrInvalidConfig: Config.Validate rejected the configuration.
	ErrInvalidConfig = errors.New("keygen: invalid config")
	// ErrBindingChanged: the data directory (or store) was initialised with a
	// different secret, digit count or node partition, and keys were issued
	// under it. Accepting the change would reissue keys.
	ErrBindingChanged = errors.New("keygen: key space changed on an existing data directory (would reissue keys)")
	// ErrSecret: the secret is missing, unreadable, malformed or stored with
	// permissions wider than 0600.
	ErrSecret = errors.New("keygen: unusable secret")
	// ErrStateCorrupt: the lease state file cannot be parsed or fails its
	// checksum. The generator refuses to guess a high-water mark.
	ErrStateCorrupt = errors.New("keygen: lease state corrupt")
	// ErrStateMissing: the store holds no key space (no lease state, or no
	// secret anywhere). Either it was never created — Init creates it, once —
	// or its high-water mark was lost, and starting again from the partition's
	// first counter would reissue keys: nothing but Init creates a key space,
	// and Init refuses what looks like a lost one unless told to skip past
	// every key issued.
	ErrStateMissing = errors.New("keygen: no key space (lease state missing)")
	// ErrStateStale: the lease state is older than a mark this data
	// directory recorded earlier (MarkFile): it was put back from a backup
	// or copied over, and starting from it would reissue the keys issued
	// since. Skip moves it forward.
	ErrStateStale = errors.New("keygen: lease state older than keys already issued")
	// ErrKeySpaceExists: Init was asked to create a key space where one
	// already exists. Init never overwrites a high-water mark.
	ErrKeySpaceExists = errors.New("keygen: key space already exists")
	// ErrLocked: another process holds the data directory's lock.
	ErrLocked = errors.New("keygen: data directory in use by another process")
	// ErrNotBound: Lease was called before Bind.
	ErrNotBound = errors.New("keygen: lease store not bound")
	// ErrBadLease: a store returned a range outside its partition, overlapping
	// an earlier lease or larger than asked; the range is never used.
	ErrBadLease = errors.New("keygen: lease store returned an invalid range")
)
