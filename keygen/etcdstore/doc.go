// Package etcdstore is keygen's lease store on etcd: the one key space that
// a fleet of switchboard daemons shares, with no hand-assigned node
// partitions and no daemon whose loss loses the high-water mark.
//
// Why this shape. keygen makes keys unique by never handing out a counter
// twice; all it needs from a store is a durable high-water mark that moves
// forward atomically. etcd already offers exactly that — a linearizable
// compare-and-swap replicated by Raft — so the store is one key (the mark)
// advanced by a transaction that compares its mod revision: two daemons that
// race for the same counters both send a transaction, one wins, the other
// reads the new mark from the transaction's else branch and tries again
// above it. No home-made protocol, no node ids: every daemon leases from the
// whole counter space.
//
// The binding (scheme version, digit count, secret fingerprint) is written
// once, by the operator's one-shot init (keygen.Init through Create), under
// the same prefix, and every daemon compares its own with it before leasing;
// a daemon with another secret or digit count is refused with a message that
// names the field. The secret itself never reaches etcd.
//
// Blocks grow with load (Meituan Leaf's dynamic step): the store leases a
// segment from etcd and serves keygen's block-sized leases out of it; a
// segment used up faster than the target period doubles the next one (up to
// a bound), one that lasted more than twice the period halves it (down to
// keygen's block size). A daemon at full load thus sends a transaction every
// few seconds, and a crash loses at most one segment of counters, never
// repeats one.
//
// A transaction whose outcome is unknown (a timeout after it was sent) is
// never used: the store forgets the mark it knew and re-reads it before the
// next attempt, so the next segment starts above whatever that transaction
// may have written.
//
// A mark put back (etcd restored from an older backup, or edited) must be
// refused by every daemon, not only by one that leased past it: another
// daemon's last lease may end exactly where the restored mark stands. So
// every lease writes a second key, the fence, with the mark in the same
// transaction: they always agree, and a mark below the fence (or equal to
// it at another revision) was not written by a lease; every daemon refuses
// it with keygen.ErrStateStale, running or starting. A whole snapshot puts
// the fence back too: then only the daemons' own records (the highest mark
// each saw, and RecordFile across restarts) can tell, which is why the
// operator stops the fleet to restore one. The operator's skip (a store with
// Config.Retire) moves the mark forward past the fence. The lease
// transaction also compares the binding's revision: a binding replaced under
// a bound daemon stops its leases (keygen.ErrBindingChanged).
//
// Errors that mean "etcd did not answer" wrap keygen.ErrUnavailable, so the
// generator keeps serving buffered keys and retries; Register keeps a
// daemon's fleet entry alive under an etcd lease. One instance name belongs
// to one running daemon: the entry is written by a transaction that never
// replaces another live daemon's (ErrInstanceTaken; CheckInstance lets a
// daemon refuse to start), or two daemons would share one entry and the
// first to stop would take the other out of the fleet.
package etcdstore
