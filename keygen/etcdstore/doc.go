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
// it with keygen.ErrStateStale, running or starting.
//
// A whole snapshot puts the fence back too, so the daemons' own view has
// to tell. Each store watches the mark key (one goroutine from Bind to
// Close; a broken watch resumes from the revision after the last it
// delivered, and a lease waits until the watch has delivered every write
// up to the revision of the read it leases from, so a lease made while
// the watch was broken is known before this store leases; where etcd
// compacted that history, the fleet entries' last leases stand in for
// it): it learns every other daemon's lease within milliseconds, and
// refuses a mark below the highest it leased or saw (Status.Seen), which
// RecordFile keeps across restarts. A daemon that finds the mark below
// what it saw raises the fence to it, so that the whole fleet refuses the
// mark, a daemon started on an empty data directory included, and the
// operator is told how far to skip. Belt and braces: each store also
// remembers the highest etcd revision it saw. Every read and transaction
// of the store is linearizable, so a response below a revision seen
// before the request was sent means etcd itself went back (a snapshot
// restored without --bump-revision, where the mark may even carry the mod
// revision a daemon last leased at, and its compare-and-swap succeed):
// nothing of that response is used, not even a lease that committed, and
// the store refuses until the mark is moved past what it found. The
// watch's responses only raise that revision, never trip it: a lagging
// member may serve a watch.
//
// What no daemon can tell is left to the operator: a restore with no
// daemon running that saw past the snapshot, followed by a daemon started
// on an empty data directory (or one that lost its record). And a member's
// data directory restored while the daemon that leased past the snapshot
// (B) is cut off from etcd, another daemon (A) having been cut off while B
// leased: A's view (marks, revisions, history) is consistent with the
// restored etcd, so A may lease B's counters again. Only B can tell, once
// it reaches etcd again: every lease writes LeaserKey, and B finds
// another writer at its own lease's revision; it refuses, raises the
// fence and logs the restore (Status.Rollbacks), after the fact. Hence
// the documented procedure: stop the fleet, restore, skip, then start. The operator's skip (a
// store with Config.Retire) moves the mark forward past the fence. The
// lease transaction also compares the binding's revision: a binding
// replaced under a bound daemon stops its leases (keygen.ErrBindingChanged).
//
// Errors that mean "etcd did not answer" wrap keygen.ErrUnavailable, so the
// generator keeps serving buffered keys and retries; Register keeps a
// daemon's fleet entry alive under an etcd lease. One instance name belongs
// to one running daemon: the entry is written by a transaction that never
// replaces another live daemon's (ErrInstanceTaken; CheckInstance lets a
// daemon refuse to start), or two daemons would share one entry and the
// first to stop would take the other out of the fleet.
package etcdstore
