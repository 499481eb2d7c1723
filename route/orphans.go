package route

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"switchboard/pool"
	"switchboard/wire"
)

// maxOrphans bounds the queue of possibly-orphaned reservations. Past it an
// orphan is logged at error level and dropped (its bridge may leak until the
// telephony server's own expiry): a bounded daemon beats an unbounded one.
const maxOrphans = 1 << 16

// orphan is a reservation whose Outcome is unknown (RESERVE was sent, no
// answer came: the server may hold a bridge under key that nobody will use),
// or a release the front end was told had succeeded and the holding server
// could not take yet.
//
// server is the HELLO id of the server holding it; "" means unknown (a
// journal written before server ids were recorded, or an orphan recovered
// after a crash): it is released on every server of tier.
type orphan struct {
	tier   string
	key    uint64
	server string
}

// dest is where one orphan's RELEASE goes: a server of a pool.
type dest struct {
	pool   *pool.Pool
	server string
}

// orphans releases possible orphans on the server that holds them, once it
// answers again, so no bridge leaks. One goroutine (run) owns the queue and
// sweeps it; each sweep hands the orphans of each server to a worker
// goroutine of that server (at most one per server at a time), so a slow or
// dead server delays only its own releases. add never blocks. With a
// journal the queue survives restarts (orphanJournal). An orphan whose
// server is in no configured pool (a reload removed it) is kept and counted
// (stranded), never dropped: it is released if the server comes back in any
// tier. It is safe for concurrent use.
type orphans struct {
	log      *zap.Logger
	tiers    func() []*Tier
	interval time.Duration

	mu       sync.Mutex
	journal  *orphanJournal // nil: in memory only
	jerrs    uint64         // journal write errors (logged once per 1000)
	pending  []orphan
	working  int           // orphans taken by workers in progress
	sweeping int           // orphans taken by the sweep in progress
	busy     map[dest]bool // servers with a worker in progress
	stranded int           // pending orphans whose server was in no pool at the last sweep
	// handed records, for a pending orphan of unknown server, the servers
	// it was already handed to (in memory: after a restart it is handed to
	// them again, which costs a NOT_FOUND each).
	handed map[orphan]map[string]bool
	// keys counts the orphans of each key pending or at work: a session
	// whose release was deferred is gone for LOOKUP and UPDATE
	// (releasing), however long its server takes to come back.
	keys map[uint64]int

	ctx    context.Context // cancelled by close: workers' calls end
	cancel context.CancelFunc
	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	wg     sync.WaitGroup // workers

	released, dropped uint64
}

// newOrphans returns a queue holding pending (replayed from journal, which
// may be nil) that run will work through.
func newOrphans(log *zap.Logger, tiers func() []*Tier, interval time.Duration, journal *orphanJournal, pending []orphan) *orphans {
	o := &orphans{log: log, tiers: tiers, interval: interval, journal: journal, pending: pending, busy: map[dest]bool{},
		handed: map[orphan]map[string]bool{}, keys: map[uint64]int{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	o.ctx, o.cancel = context.WithCancel(context.Background())
	for _, or := range pending {
		o.keys[or.key]++
	}
	if len(pending) > 0 {
		o.wake <- struct{}{}
	}
	return o
}

// releasing reports whether a release of key is pending or at work: its
// session is gone, whatever its server still says until the release lands.
// It takes the queue's lock (LOOKUP and UPDATE of a session not in the
// index; never ALLOCATE).
func (o *orphans) releasing(key uint64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.keys[key] > 0
}

// record counts an orphan in (+) or out (-) of o.keys and writes its
// journal record; o.mu must be held. A failed write keeps
// the orphan in memory (it is still released while the daemon runs) and is
// logged: the only loss is the restart guarantee.
func (o *orphans) record(op byte, or orphan) {
	if op == '+' {
		o.keys[or.key]++
	} else if n := o.keys[or.key]; n > 1 {
		o.keys[or.key] = n - 1
	} else {
		delete(o.keys, or.key)
	}
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

// add queues key, possibly held by server (HELLO id; "" when unknown) of
// tier tierName, for release.
func (o *orphans) add(tierName, server string, key uint64) {
	o.mu.Lock()
	if len(o.pending) >= maxOrphans {
		o.dropped++
		o.mu.Unlock()
		o.log.Error("orphan queue full, dropping a possible orphan", zap.String("tier", tierName), zap.String("server_id", server), zap.Uint64("key", key))
		return
	}
	or := orphan{tier: tierName, key: key, server: server}
	o.pending = append(o.pending, or)
	o.record('+', or)
	o.mu.Unlock()
	o.kick()
}

func (o *orphans) kick() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// count returns how many possible orphans wait for release.
func (o *orphans) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.pending) + o.sweeping + o.working
}

// strandedCount returns how many pending orphans were, at the last sweep,
// held by a server that no configured tier has: kept until it comes back.
func (o *orphans) strandedCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stranded
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

// routeOf returns where or is released: the pool that has its server
// (preferring its own tier, then any tier: a renamed tier keeps its
// servers). ok is false when no pool has it.
func routeOf(tiers []*Tier, or orphan) (dest, bool) {
	if t := holder(tiers, or.tier, or.server); t != nil {
		return dest{pool: t.Pool, server: or.server}, true
	}
	return dest{}, false
}

// sweep hands every pending orphan whose server is reachable to that
// server's worker, unless one is already at work; the rest wait for the
// next sweep. The queue's lock is held to take the batch and to hand it
// out, not while routing it: add, on the request path, never waits for a
// long sweep.
func (o *orphans) sweep() {
	tiers := o.tiers()
	o.mu.Lock()
	batch := o.pending
	o.pending = nil
	o.sweeping = len(batch)
	o.mu.Unlock()
	if len(batch) == 0 {
		o.mu.Lock()
		o.sweeping, o.stranded = 0, 0
		o.mu.Unlock()
		return
	}

	// Route the batch. An orphan of unknown server (its RESERVE was cut
	// short by a crash: the in-flight table records the tier, not the
	// server) is released on every server that could hold it: those of
	// every tier, since a reload may have renamed its tier or moved its
	// server to another (and a crash may come with a reload). Keys are
	// unique, so a server that never held the key answers NOT_FOUND (and
	// tombstones it). It is handed to each server as soon as that server
	// has said who it is (HELLO), and stays pending, as itself, until every
	// candidate server has: one server down does not hold back the others.
	type expansion struct {
		from     orphan
		to       []orphan
		complete bool // every candidate server has it now
	}
	var expanded []expansion
	var keep []orphan
	work := map[dest][]orphan{}
	stranded := 0
	routeOne := func(or orphan) {
		if r, ok := routeOf(tiers, or); ok {
			work[r] = append(work[r], or)
			return
		}
		stranded++
		keep = append(keep, or)
	}
	o.mu.Lock()
	handed := make([]map[string]bool, len(batch)) // servers each "" orphan was handed to before
	for i, or := range batch {
		if or.server == "" {
			handed[i] = o.handed[or]
		}
	}
	o.mu.Unlock()
	for i, or := range batch {
		if or.server != "" {
			routeOne(or)
			continue
		}
		// Every tier: a reload may have moved the server to another.
		cands := tiers
		if len(cands) == 0 {
			stranded++
			keep = append(keep, or)
			continue
		}
		e := expansion{from: or, complete: true}
		for _, t := range cands {
			ids := t.Pool.ServerIDs()
			if t.Pool.Unanswered() > 0 {
				e.complete = false
			}
			for _, id := range ids {
				if handed[i][id] {
					continue
				}
				x := orphan{tier: t.Name, key: or.key, server: id}
				e.to = append(e.to, x)
				routeOne(x)
			}
		}
		if !e.complete {
			keep = append(keep, or)
			stranded++ // waits on a server that has not said who it is
		}
		if len(e.to) > 0 || e.complete {
			expanded = append(expanded, e)
		}
	}

	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range expanded {
		for _, x := range e.to {
			o.record('+', x)
		}
		if e.complete {
			o.record('-', e.from)
			delete(o.handed, e.from)
			continue
		}
		h := o.handed[e.from]
		if h == nil {
			h = map[string]bool{}
			o.handed[e.from] = h
		}
		for _, x := range e.to {
			h[x.server] = true
		}
	}
	compact := o.working == 0 && o.journal != nil && o.journal.wantsCompaction(len(batch)+len(o.pending))
	for r, list := range work {
		if o.busy[r] {
			keep = append(keep, list...)
			delete(work, r)
			continue
		}
		o.busy[r] = true
		o.working += len(list)
		o.wg.Add(1)
		go o.work(r, list, tiers)
	}
	o.pending = append(keep, o.pending...)
	o.sweeping = 0
	o.stranded = stranded
	if compact {
		// The journal must hold the pending orphans and those handed to
		// workers just now; no earlier worker is at work (their lists
		// are not tracked one by one).
		inJournal := slices.Clone(o.pending)
		for _, list := range work {
			inJournal = append(inJournal, list...)
		}
		if err := o.journal.compact(inJournal, false); err != nil {
			o.log.Error("orphan journal compaction failed", zap.Error(err))
		}
	}
}

// releaseWindow bounds the RELEASEs one server's worker keeps in flight.
// They share the server's multiplexed connections, so a slow server costs
// its latency once per window, not once per orphan: after a crash under
// load hundreds of orphans may wait on a tier that answers in 200 ms.
const releaseWindow = 32

// work releases list on server r, up to releaseWindow at a time, and
// requeues what the server could not confirm. Owner: orphans (wg); stop:
// o.ctx. The goroutines it starts for the window are its own: it returns
// only after they have.
func (o *orphans) work(r dest, list []orphan, tiers []*Tier) {
	defer o.wg.Done()
	var (
		next    atomic.Int64 // index of the next orphan to take
		stopped atomic.Bool  // the server went away: take no more
		mu      sync.Mutex   // guards keep and doneN
		keep    []orphan
		doneN   int
		wg      sync.WaitGroup
	)
	one := func(or orphan) {
		attempt := time.Second
		if t := holder(tiers, or.tier, or.server); t != nil {
			attempt = t.Attempt * 4
		}
		ctx, cancel := context.WithTimeout(o.ctx, attempt)
		reply, err := r.pool.RoundTripTo(ctx, r.server, wire.OpTelRelease, &wire.KeyRequest{Key: or.key})
		cancel()
		// What the server said is final whatever the releaser's state
		// (res.met); o.ctx is the releaser's life, the "request".
		switch res := classify(o.ctx, err); res.met {
		case OutcomeOK:
			reply.Release()
			o.log.Info("released a possible orphan", zap.String("tier", or.tier), zap.String("server_id", or.server), zap.Uint64("key", or.key))
		case OutcomeNotFound:
			// Never landed, or already released. A RESERVE of this key
			// still queued on the server cannot land later: the
			// protocol requires the server to refuse it (telephony
			// RELEASE tombstone, docs/protocol.md).
		default:
			if res.met == OutcomeUnreachable || res.met == OutcomeLocal {
				// The server has no live connection (or the pool does
				// not know it), or its pool is closing: the rest of the
				// list would meet the same.
				stopped.Store(true)
			}
			mu.Lock()
			keep = append(keep, or)
			mu.Unlock()
			return
		}
		o.mu.Lock()
		o.released++
		o.working--
		o.record('-', or)
		o.mu.Unlock()
		mu.Lock()
		doneN++
		mu.Unlock()
	}
	for range min(releaseWindow, len(list)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(list) {
					return
				}
				if stopped.Load() || o.ctx.Err() != nil {
					mu.Lock()
					keep = append(keep, list[i])
					mu.Unlock()
					continue
				}
				one(list[i])
			}
		}()
	}
	wg.Wait()
	o.mu.Lock()
	o.working -= len(list) - doneN
	o.pending = append(o.pending, keep...)
	delete(o.busy, r)
	o.mu.Unlock()
}

func (o *orphans) close() {
	select {
	case <-o.stop:
	default:
		close(o.stop)
	}
	<-o.done
	o.cancel()
	o.wg.Wait()
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
