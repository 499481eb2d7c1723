package route

import (
	"time"

	"github.com/VictoriaMetrics/fastcache"
	"go.uber.org/zap"
)

// New returns a router issuing keys from keys, with a session index of
// cacheMB megabytes whose idempotency tokens live tokenTTL (now is its
// clock). Before it serves, the caller installs a tier order (Swap), starts
// the orphan releaser (OpenOrphans) and, optionally, the in-flight table
// (OpenInflight); Close frees the index once nothing calls the router.
func New(log *zap.Logger, keys KeySource, cacheMB int, tokenTTL time.Duration, now func() time.Time) *Router {
	return &Router{log: log, keys: keys, idx: newIndex(cacheMB, tokenTTL, now)}
}

// Close frees the session index.
func (s *Router) Close() { s.idx.close() }

// Swap installs tiers as the tier order and returns the set it replaced
// (nil at the first call), already retired: its Idle channel closes once
// no request uses it.
func (s *Router) Swap(tiers []*Tier) *TierSet { return s.swap(tiers) }

// Current returns the tier order in force.
func (s *Router) Current() *TierSet { return s.set.Load() }

// Tiers returns the tiers of the order in force (an atomic load; the slice
// is shared: do not modify it).
func (s *Router) Tiers() []*Tier { return *s.tiers.Load() }

// FirstAvailable is the first tier new allocations may go to; nil if none.
func (s *Router) FirstAvailable() *Tier {
	for _, t := range *s.tiers.Load() {
		if t.Available() {
			return t
		}
	}
	return nil
}

// OpenOrphans replays the orphan journal in dataDir, queues what it holds
// for release and starts the releaser, sweeping every interval. It returns
// what stops the releaser (leaving the journal with what is still pending).
func (s *Router) OpenOrphans(dataDir string, interval time.Duration) (func(), error) {
	journal, pending, bad, err := openOrphanJournal(dataDir)
	if err != nil {
		return nil, err
	}
	if bad > 0 {
		s.log.Warn("orphan journal has unreadable records; skipped", zap.Int("records", bad))
	}
	if len(pending) > 0 {
		s.log.Info("possible orphans from the previous run queued for release", zap.Int("count", len(pending)))
	}
	s.orphans = newOrphans(s.log.Named("orphans"), s.Tiers, interval, journal, pending)
	go s.orphans.run()
	return s.orphans.close, nil
}

// DeferRelease hands a reservation that may exist (key on the server
// serverID of the tier tierName; "" for every server of the tier) to the
// orphan releaser, which releases it once that server answers.
func (s *Router) DeferRelease(tierName, serverID string, key uint64) {
	s.orphans.add(tierName, serverID, key)
}

// ForgetSession drops key's entry from the session index (not a
// tombstone): the next follow-up of the session asks the servers.
func (s *Router) ForgetSession(key uint64) { s.idx.forgetSession(key) }

// SessionHolder returns the HELLO id of the server the index records as
// holding key; false when the index has no live record of it.
func (s *Router) SessionHolder(key uint64) (string, bool) {
	v, found, _ := s.idx.getSession(key, nil)
	id, _, ok := parseSessionRecord(v)
	return string(id), found && ok
}

// InflightLen returns how many slots of the in-flight table are held (0
// without a table).
func (s *Router) InflightLen() int {
	if s.fl == nil {
		return 0
	}
	return s.fl.Len()
}

// Stats are the router's counters and gauges, read at scrape time.
type Stats struct {
	Failovers uint64 // allocations served by a tier other than the first tried
	KeyExists uint64 // KEY_EXISTS answers (a fresh key was taken)
	KeyWaits  uint64 // requests that waited for the key supply
	Orphans   int    // possible orphans pending release
	Stranded  int    // of Orphans, held by a server no configured tier has
}

// Stats returns the router's counters; it takes the orphan queue's lock
// briefly (scrape and admin time, not the request path).
func (s *Router) Stats() Stats {
	return Stats{Failovers: s.stats.failovers.Load(), KeyExists: s.stats.keyExists.Load(), KeyWaits: s.stats.keyWaits.Load(),
		Orphans: s.orphans.count(), Stranded: s.orphans.strandedCount()}
}

// IndexStats fills st with the session index's statistics; it takes each
// of the cache's bucket locks in turn, briefly (scrape time only).
func (s *Router) IndexStats(st *fastcache.Stats) { s.idx.c.UpdateStats(st) }

// StopOrphanSweeps stops the orphan releaser's sweeps and waits for the
// one running, leaving pending orphans queued (the function OpenOrphans
// returned still finishes the shutdown). Tests use it to freeze the
// releaser; call it at most once.
func (s *Router) StopOrphanSweeps() {
	close(s.orphans.stop)
	<-s.orphans.done
}

// FirstCapacity returns the capacity of the first tier new allocations may
// go to (the calls its connections may have in flight at once) and its
// attempt bound; false when no tier is available. Atomic loads only: the
// front end's admission reads it for every request.
func (s *Router) FirstCapacity() (capacity int64, attempt time.Duration, ok bool) {
	t := s.FirstAvailable()
	if t == nil {
		return 0, 0, false
	}
	return int64(t.Pool.Capacity()), t.Attempt, true
}

// FirstAnswered returns a count that moves while the first available tier
// answers (pool.Pool.Answered: replies read from its connections); 0 when
// no tier is available. An atomic load per connection: the front end's
// admission reads it for a request that has to wait.
func (s *Router) FirstAnswered() uint64 {
	if t := s.FirstAvailable(); t != nil {
		return t.Pool.Answered()
	}
	return 0
}

// FirstSilent reports whether the first available tier has answered nothing
// since FirstAnswered returned since, while no reply from it waits unread in
// this process's sockets (pool.Pool.Unread: a syscall per connection, so a
// stall of this process is not taken for the tier's silence). False when no
// tier is available.
func (s *Router) FirstSilent(since uint64) bool {
	t := s.FirstAvailable()
	return t != nil && t.Pool.Answered() == since && !t.Pool.Unread()
}
