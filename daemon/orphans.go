package daemon

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"switchboard/wire"
)

// maxOrphans bounds the queue of possibly-orphaned reservations. Past it an
// orphan is logged at error level and dropped (its bridge may leak until the
// telephony server's own expiry): a bounded daemon beats an unbounded one.
const maxOrphans = 1 << 16

// orphan is a reservation whose outcome is unknown: RESERVE was sent, no
// answer came (timeout, connection lost), so the server may hold a bridge
// under key that nobody will use.
type orphan struct {
	tier string
	key  uint64
}

// orphans releases possible orphans once their tier answers again, so no
// bridge leaks. One goroutine owns the retry loop; add never blocks. With a
// journal the queue survives restarts (orphanJournal). It is safe for
// concurrent use.
type orphans struct {
	log      *zap.Logger
	tiers    func() []*tier
	interval time.Duration

	mu       sync.Mutex
	journal  *orphanJournal // nil: in memory only
	jerrs    uint64         // journal write errors (logged once per 1000)
	pending  []orphan
	sweeping int // orphans taken by the sweep in progress

	wake chan struct{}
	stop chan struct{}
	done chan struct{}

	released, dropped uint64
}

// newOrphans returns a queue holding pending (replayed from journal, which
// may be nil) that run will work through.
func newOrphans(log *zap.Logger, tiers func() []*tier, interval time.Duration, journal *orphanJournal, pending []orphan) *orphans {
	o := &orphans{log: log, tiers: tiers, interval: interval, journal: journal, pending: pending,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if len(pending) > 0 {
		o.wake <- struct{}{}
	}
	return o
}

// record writes a journal record; o.mu must be held. A failed write keeps
// the orphan in memory (it is still released while the daemon runs) and is
// logged: the only loss is the restart guarantee.
func (o *orphans) record(op byte, or orphan) {
	if o.journal == nil {
		return
	}
	if err := o.journal.append(op, or); err != nil {
		if o.jerrs%1000 == 0 {
			o.log.Error("orphan journal write failed; the orphan is kept in memory only", zap.Error(err), zap.Uint64("errors", o.jerrs+1))
		}
		o.jerrs++
	}
}

func (o *orphans) add(tierName string, key uint64) {
	o.mu.Lock()
	if len(o.pending) >= maxOrphans {
		o.dropped++
		o.mu.Unlock()
		o.log.Error("orphan queue full, dropping a possible orphan", zap.String("tier", tierName), zap.Uint64("key", key))
		return
	}
	or := orphan{tier: tierName, key: key}
	o.pending = append(o.pending, or)
	o.record('+', or)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// count returns how many possible orphans wait for release.
func (o *orphans) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.pending) + o.sweeping
}

func (o *orphans) run() {
	defer close(o.done)
	t := time.NewTicker(o.interval)
	defer t.Stop()
	for {
		select {
		case <-o.stop:
			return
		case <-o.wake:
		case <-t.C:
		}
		o.sweep()
	}
}

// sweep tries to release every pending orphan whose tier has a live
// connection; the rest wait for the next sweep.
func (o *orphans) sweep() {
	o.mu.Lock()
	batch := o.pending
	o.pending = nil
	o.sweeping = len(batch)
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		o.sweeping = 0
		o.mu.Unlock()
	}()
	if len(batch) == 0 {
		return
	}
	byName := map[string]*tier{}
	for _, t := range o.tiers() {
		byName[t.name] = t
	}
	var keep []orphan
	for i, or := range batch {
		select {
		case <-o.stop:
			keep = append(keep, batch[i:]...)
			o.requeue(keep)
			return
		default:
		}
		t := byName[or.tier]
		if t == nil {
			o.log.Warn("possible orphan on a tier no longer configured", zap.String("tier", or.tier), zap.Uint64("key", or.key))
			o.mu.Lock()
			o.record('-', or)
			o.mu.Unlock()
			continue
		}
		if t.pool.Live() == 0 {
			keep = append(keep, or)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), t.attempt*4)
		reply, err := t.pool.RoundTrip(ctx, wire.OpTelRelease, &wire.KeyRequest{Key: or.key})
		cancel()
		switch {
		case err == nil:
			reply.Release()
			o.log.Info("released a possible orphan", zap.String("tier", or.tier), zap.Uint64("key", or.key))
		case errors.Is(err, wire.StatusNotFound):
			// The RESERVE never landed: nothing to release.
		default:
			keep = append(keep, or)
			continue
		}
		o.mu.Lock()
		o.released++
		o.record('-', or)
		o.mu.Unlock()
	}
	o.requeue(keep)
	o.mu.Lock()
	if o.journal != nil && o.journal.wantsCompaction(len(o.pending)) {
		if err := o.journal.compact(o.pending, false); err != nil {
			o.log.Error("orphan journal compaction failed", zap.Error(err))
		}
	}
	o.mu.Unlock()
}

func (o *orphans) requeue(keep []orphan) {
	if len(keep) == 0 {
		return
	}
	o.mu.Lock()
	o.pending = append(keep, o.pending...)
	o.mu.Unlock()
}

func (o *orphans) close() {
	select {
	case <-o.stop:
	default:
		close(o.stop)
	}
	<-o.done
	n := o.count()
	if o.journal != nil {
		// Leave the journal holding exactly what is pending.
		o.mu.Lock()
		err := o.journal.compact(o.pending, true)
		if cerr := o.journal.close(); err == nil {
			err = cerr
		}
		o.mu.Unlock()
		if err != nil {
			o.log.Error("orphan journal close failed", zap.Error(err))
		}
		if n > 0 {
			o.log.Warn("possible orphans left unreleased at shutdown; kept in the journal for the next start", zap.Int("count", n))
		}
		return
	}
	if n > 0 {
		o.log.Warn("possible orphans left unreleased at shutdown", zap.Int("count", n))
	}
}
