// Package keygen issues switchboard's session keys: D-digit decimal numbers
// (6–18 digits, never a leading zero) that are unique among every key the
// deployment ever issued, that reveal nothing about the keys issued before or
// after them, and that are handed out without a lock.
//
// Why this shape. A session key is the only handle a caller has on a
// teleconference, so two sessions must never share one — not after a crash,
// not after a restart, not across daemons — and a caller holding key k must
// not be able to guess k+1's session. Random keys with a "seen" set would need
// the whole history to stay unique; a plain counter is unique but guessable.
// keygen takes the counter and hides it: key = 10^(D-1) + π(counter), where π
// is a keyed permutation of the whole D-digit domain (a Feistel network with
// cycle-walking, AES as the round function, see Permutation). A permutation
// maps distinct counters to distinct keys, so uniqueness reduces to "a counter
// is never used twice", which is a durable high-water mark.
//
// Counters are leased in blocks from a LeaseStore that makes the new
// high-water mark durable (FileStore: write a temporary file, fsync it,
// rename, fsync the directory) before any key of the block is handed out, so a
// crash can lose keys but never repeat one. A refill goroutine leases and
// permutes the next block before it is needed, so the disk never appears in
// allocation latency: Generator.Next is an atomic load, an atomic increment and
// a slice read, with no allocation. If the store fails and the buffered keys
// run out, Next fails fast with ErrUnavailable instead of blocking; when the
// counter space is used up it fails with ErrExhausted, never wraps.
//
// A key space is never started implicitly. A store without state is either a
// new key space or one whose high-water mark was lost, and starting the
// second from counter zero would reissue every key, so New (the daemon's
// start) only attaches to an existing key space and fails with
// ErrStateMissing where there is none. Init, run once by an operator
// (switchboard -init-keys), is what creates one; Skip moves an existing mark
// forward past keys issued since a backup was taken.
//
// Several daemons share one key space either by giving each a disjoint slice
// of the counter space (NodeConfig, NodePartition) and the same secret, or
// through a store on etcd (package etcdstore), where every daemon leases
// from the whole space by compare-and-swap on one mark. docs/architecture.md ("Session keys") explains the scheme, its guarantees and its costs.
//
// The package starts one goroutine per Generator (the refill loop), owned by
// the Generator and stopped by Close. File locking uses flock(2), so the file
// store needs a Unix-like system (as does the rest of switchboard).
package keygen
