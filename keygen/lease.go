package keygen

import "context"

// LeaseStore hands out counters in blocks and remembers, durably, how far it
// got. It is the only thing that makes keys unique across restarts: a counter
// it returned from Lease must never be returned again, by this process or any
// later one, whatever crashes in between.
//
// The file store (FileStore) serves one machine; several daemons share a key
// space through a static NodeConfig partition, or through the etcd store
// (package etcdstore: a transaction on a high-water-mark key) — never a
// home-made protocol. Implementations must be safe for concurrent use.
type LeaseStore interface {
	// Create makes a new key space: on a store with no state it records b
	// with the high-water mark at the partition's first counter, durably,
	// and returns the partition (Created set); Bind is then done. It never
	// starts a key space that exists: on a store holding state it fails with
	// ErrKeySpaceExists, unless no counter was ever leased under a different
	// binding (an interrupted Init), which it may replace (Rebound set): the
	// file store does; a store shared by several daemons (etcd) refuses it,
	// since a daemon may already be bound to it. Only Init calls it, on an
	// operator's explicit command.
	Create(ctx context.Context, b Binding) (Partition, error)
	// Bind attaches the store to an existing key space, once, before any
	// Lease. On a store with no state it fails with ErrStateMissing (it
	// never creates one); on one that holds state for a different binding
	// it fails with ErrBindingChanged, unless no counter was ever leased
	// under the old binding (then it may record b and report Rebound). It
	// returns the counter range this node leases from.
	Bind(ctx context.Context, b Binding) (Partition, error)
	// Lease durably reserves the next counters of the partition, at most n
	// (fewer only at the partition's end), and returns them as [start, end).
	// The reservation must be durable before Lease returns. When the
	// partition is used up it returns an error wrapping ErrExhausted.
	Lease(ctx context.Context, n uint64) (start, end uint64, err error)
	// Close releases the store. It is idempotent.
	Close() error
}

// Binding is the key space a store serves: everything that, if it changed,
// would map the same counter to a different key. The secret itself never
// reaches the store, only its fingerprint.
type Binding struct {
	Digits      int
	Node        NodeConfig
	Fingerprint Fingerprint
}

// Partition is what Bind reports: the counters [Lo, Hi) this node may lease
// and the next one the store will hand out.
type Partition struct {
	Lo, Hi uint64
	// Next is the durable high-water mark: every counter below it may have
	// been issued, none at or above it has.
	Next uint64
	// Created is true when the store held no state and Create recorded the
	// binding now.
	Created bool
	// Rebound is true when the store held a different binding under which no
	// counter was ever leased, and Bind replaced it.
	Rebound bool
}
