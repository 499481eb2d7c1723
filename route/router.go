package route

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"switchboard/breaker"
	"switchboard/inflight"
	"switchboard/internal/deadline"
	"switchboard/internal/testhook"
	"switchboard/keygen"
	"switchboard/mux"
	"switchboard/pool"
	"switchboard/wire"
)

// Tier is one telephony tier as the router sees it: its pool, its breaker
// and the operator's drain switch. Every field the request path reads is
// immutable or atomic; the composition root (daemon) builds tiers and hands
// a whole order to Router.Swap.
//
// A reload builds new Tier values; what must outlive a reload (the breaker,
// its operator override, the drain switch, the observer) is shared by
// pointer between the old and the new value of a tier with the same name.
type Tier struct {
	Name    string
	NameB   []byte // Name, as the wire encodes it (set by the builder)
	Pos     int    // position in the tier order
	Pool    *pool.Pool
	Breaker *breaker.Breaker
	Attempt time.Duration // bound of one attempt on the tier
	Addrs   []string      // the pool's resolved servers
	Ctl     *TierCtl
	// Obs is told every attempt's outcome (nil: nobody listens).
	Obs TierObserver
	// FailoverFrom[i] counts allocations this tier served after the
	// request first tried the tier at position i (nil: not counted).
	FailoverFrom []Counter
}

// TierObserver is what the router reports about a tier's attempts to; the
// daemon's metrics implement it. It is called on the request path: it must
// neither block nor allocate.
type TierObserver interface {
	Attempt(o Outcome)
}

// Counter is a monotonically increasing count (a Prometheus counter child
// in production).
type Counter interface {
	Inc()
}

// TierCtl is the operator's state of a tier, keyed by tier name: it
// survives reloads. It is safe for concurrent use.
type TierCtl struct {
	Drained atomic.Bool
}

// Available reports, with atomic loads only, whether a new allocation may be
// tried on t: not drained, at least one live connection, breaker not known
// open.
func (t *Tier) Available() bool {
	return !t.Ctl.Drained.Load() && t.Pool.Live() > 0 && !t.Breaker.Skip()
}

// FirstAvailable is the first tier new allocations may go to; nil if none.
func (s *Router) FirstAvailable() *Tier {
	for _, t := range *s.tiers.Load() {
		if t.Available() {
			return t
		}
	}
	return nil
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

// FirstTier identifies the first available tier (its *Tier; nil when none)
// for the front end's admission, which learns its limit per tier.
func (s *Router) FirstTier() any {
	if t := s.FirstAvailable(); t != nil {
		return t
	}
	return nil
}

// TierSet is one generation of the tier order. Requests hold it (acquire,
// release) while they use its tiers, so a reload knows when the pools it
// retired are no longer reachable by any request and may be closed.
type TierSet struct {
	Tiers   []*Tier
	refs    atomic.Int64
	retired atomic.Bool
	once    sync.Once
	idle    chan struct{} // closed once retired and refs is 0
}

func newTierSet(tiers []*Tier) *TierSet {
	return &TierSet{Tiers: tiers, idle: make(chan struct{})}
}

// Idle is closed once ts is retired and no request uses it any more.
func (ts *TierSet) Idle() <-chan struct{} { return ts.idle }

// release ends a request's use of ts.
func (ts *TierSet) release() {
	if ts.refs.Add(-1) == 0 && ts.retired.Load() {
		ts.once.Do(func() { close(ts.idle) })
	}
}

// retire marks ts as replaced; idle closes when its last user releases it.
func (ts *TierSet) retire() {
	ts.retired.Store(true)
	if ts.refs.Load() == 0 {
		ts.once.Do(func() { close(ts.idle) })
	}
}

// KeySource issues session keys (keygen.Generator in production).
type KeySource interface {
	Next() (uint64, error)
}

// KeyWaitMax bounds how long one request waits for the key supply to catch
// up (within its own deadline).
const KeyWaitMax = 500 * time.Millisecond

// nextKey returns a fresh session key. The generator never blocks: when
// its buffer ran dry because the lease store is slow (an fsync on a busy
// disk) or failing, it says so at once. For a store that is only late, a
// request then waits for it, polling with a short backoff, up to KeyWaitMax
// and its own deadline: a store that is late by a few hundred milliseconds
// costs latency, not an error. A store known to fail (keygen.ErrStoreDown:
// its last lease failed, etcd is unreachable) is answered at once. Either
// way the error is KEYS_EXHAUSTED: an operator must look at the store.
func (s *Router) nextKey(ctx context.Context) (uint64, error) {
	key, err := s.keys.Next()
	if err == nil || !errors.Is(err, keygen.ErrUnavailable) || errors.Is(err, keygen.ErrStoreDown) {
		// A store known to fail (etcd down, a broken disk) is answered
		// at once: its keys cannot come within a request's wait.
		return key, err
	}
	s.stats.keyWaits.Add(1)
	if ce := s.log.Check(zap.WarnLevel, "session keys not ready, waiting for the lease store"); ce != nil {
		ce.Write(zap.Error(err))
	}
	give := time.NewTimer(KeyWaitMax)
	defer give.Stop()
	poll := time.NewTimer(time.Millisecond)
	defer poll.Stop()
	for wait := time.Millisecond; ; wait = min(2*wait, 20*time.Millisecond) {
		select {
		case <-ctx.Done():
			return 0, err
		case <-give.C:
			return 0, err
		case <-poll.C:
		}
		if key, err = s.keys.Next(); err == nil || !errors.Is(err, keygen.ErrUnavailable) {
			return key, err
		}
		poll.Reset(wait)
	}
}

// maxKeyExists bounds how many fresh keys one allocation tries when a
// telephony server says a key is taken (it never should: keys are unique by
// construction; this is the last line of defence).
const maxKeyExists = 4

// Router implements the front-end operations (ALLOCATE, LOOKUP, UPDATE,
// RELEASE) on top of keys, tiers, the session index and the orphan
// releaser. It is safe for concurrent use.
type Router struct {
	log     *zap.Logger
	keys    KeySource
	set     atomic.Pointer[TierSet] // the tier order in force
	tiers   atomic.Pointer[[]*Tier] // &set.Tiers, for readers that hold nothing
	idx     *index
	flights flights
	orphans *orphans
	fl      *inflight.Table // allocations in flight (route/inflight.go); nil: not recorded
	stats   routerStats
}

// Scratch is one request's working memory in the router: decoded messages,
// buffers for the index and the attempt deadline. The caller keeps it in
// its own pooled per-request state and passes it to every Router call of
// the request, so steady-state requests reuse memory instead of allocating
// it. Only the router writes it, except for Polite, which the caller sets
// before the call; the caller reads Slot after Allocate.
//
// A Scratch is used by one request at a time; Reset readies it for the
// next one, keeping its buffers.
type Scratch struct {
	// Polite: the request's connection has at most a couple of requests
	// unanswered; its RESERVE is written without yielding
	// (pool.RoundTripOnNow). Set by the caller.
	Polite bool
	// Slot is the in-flight record of the allocation just answered (0:
	// none). The caller must hand it, once the answer's bytes are written
	// or known lost, to Router.Delivered or Router.Undelivered.
	Slot inflight.Slot

	token   []byte // the request's idempotency token, for Slot
	scratch []byte
	cached  []byte
	kbuf    []byte
	ureq    wire.UpdateRequest
	kreq    wire.KeyRequest
	res     wire.Reservation
	unasked []orphan // servers a LOOKUP could not reach (locate)
	// adl bounds one tier attempt (and a wait for a full tier's slot); it
	// keeps its timer and channel from one request to the next.
	adl deadline.Deadline
}

// Reset readies sc for the next request, keeping its buffers and timer.
func (sc *Scratch) Reset() {
	*sc = Scratch{scratch: sc.scratch[:0], cached: sc.cached[:0], kbuf: sc.kbuf[:0], adl: sc.adl}
}

// acquire returns the tier set in force, held until release: a reload
// closes a retired pool only once no request holds its set.
func (s *Router) acquire() *TierSet {
	for {
		ts := s.set.Load()
		ts.refs.Add(1)
		if s.set.Load() == ts {
			return ts
		}
		ts.release() // swapped meanwhile: take the new one
	}
}

// swap installs tiers as the tier order and returns the set it replaced
// (nil at the first call), already retired.
func (s *Router) swap(tiers []*Tier) *TierSet {
	ts := newTierSet(tiers)
	old := s.set.Swap(ts)
	s.tiers.Store(&ts.Tiers)
	if old != nil {
		old.retire()
	}
	return old
}

type routerStats struct {
	failovers atomic.Uint64 // allocations served by a tier other than the first tried
	keyExists atomic.Uint64
	keyWaits  atomic.Uint64 // requests that waited for the key supply
}

// slotWaitMax bounds how long one allocation waits, in all, for a free slot
// on a tier whose connections are all at their in-flight limit (within its
// own deadline) before it is answered OVERLOADED. slotPollMax caps one wait
// between two tries.
const (
	slotWaitMax = 50 * time.Millisecond
	slotPollMax = 5 * time.Millisecond
)

// slotWait is one allocation's wait for a slot on a full tier.
type slotWait struct {
	until time.Time     // zero until the allocation first finds a tier full
	next  time.Duration // the next pause
}

// wait pauses before the next try on a full tier and reports whether to try
// again: false once slotWaitMax is spent or the request ended. The mux has
// no "slot freed" signal, so it polls with a short doubling pause; a slot
// frees as soon as any of the tier's calls is answered. The pause uses the
// request's attempt deadline (rs.adl, idle between attempts), so it does
// not allocate a timer.
func (w *slotWait) wait(ctx context.Context, rs *Scratch) bool {
	now := time.Now()
	if w.until.IsZero() {
		w.until, w.next = now.Add(slotWaitMax), 500*time.Microsecond
	}
	d := min(w.next, w.until.Sub(now))
	if d <= 0 || ctx.Err() != nil {
		return false
	}
	w.next = min(2*w.next, slotPollMax)
	rs.adl.Start(d)
	select {
	case <-rs.adl.Done():
	case <-ctx.Done():
	}
	rs.adl.Stop()
	return ctx.Err() == nil
}

// allocate reserves a bridge for req on the first tier that takes it and
// appends the AllocateResponse payload to out.
func (s *Router) Allocate(ctx context.Context, rs *Scratch, req *wire.AllocateRequest, out []byte) ([]byte, error) {
	if len(req.Token) == 0 {
		return s.allocateDurable(ctx, rs, req, out)
	}
	if v, ok := s.replay(rs, req.Token); ok {
		return s.appendReplayed(out, req.Token, v)
	}
	f, leader := s.flights.join(req.Token)
	if !leader {
		// Marked now, before the leader's answer is written: should the
		// leader's connection die, its bridge is this request's.
		s.idx.markReplayed(req.Token)
		select {
		case <-f.done:
		case <-ctx.Done():
			return out, ctx.Err()
		}
		if f.err != nil {
			return out, f.err
		}
		return s.appendReplayed(out, req.Token, f.resp)
	}
	// Look again as the leader: a flight for the token may have finished
	// between the first look and join (its answer stored, then its flight
	// removed), and a second allocation for one token is exactly what
	// tokens exist to prevent.
	if v, ok := s.replay(rs, req.Token); ok {
		f.resp = append([]byte(nil), v...)
		s.flights.finish(req.Token, f)
		return s.appendReplayed(out, req.Token, f.resp)
	}
	start := len(out)
	out, err := s.allocateDurable(ctx, rs, req, out)
	if err == nil {
		f.resp = append([]byte(nil), out[start:]...)
		// Remember the answer: the payload just encoded, with Replayed set
		// when it is read back.
		rs.kbuf, rs.scratch = s.idx.putTokenRaw(req.Token, f.resp, rs.kbuf, rs.scratch)
	}
	f.err = err
	s.flights.finish(req.Token, f)
	return out, err
}

func (s *Router) replay(rs *Scratch, token []byte) ([]byte, bool) {
	var v []byte
	var ok bool
	rs.kbuf, v, ok = s.idx.getToken(token, rs.kbuf, rs.scratch)
	rs.scratch = v
	if !ok {
		return nil, false
	}
	return v[8:], true
}

// appendReplayed appends a remembered AllocateResponse payload with its
// Replayed flag set, and marks token as answered to a second request: the
// first request's connection may die before its own answer is written,
// and the bridge is then not released (undelivered), since this request
// holds it.
func (s *Router) appendReplayed(out, token, v []byte) ([]byte, error) {
	var r wire.AllocateResponse
	if err := r.Decode(v); err != nil {
		return out, errf(wire.StatusInternal, "corrupt idempotency record")
	}
	s.idx.markReplayed(token)
	r.Replayed = true
	return r.AppendTo(out), nil
}

// allocateDurable runs allocateOnce holding a slot of the in-flight table:
// allocateOnce records an INTENT in it before each RESERVE (intend), and on
// success the answer is recorded (ACKED) before it is returned. The slot
// then travels with the response to the connection's write path, which
// frees it once the bytes are handed to the kernel (Delivered) or
// releases the reservation if they cannot be (Undelivered). No slot free: OVERLOADED.
func (s *Router) allocateDurable(ctx context.Context, rs *Scratch, req *wire.AllocateRequest, out []byte) ([]byte, error) {
	if s.fl == nil {
		return s.allocateOnce(ctx, rs, req, out)
	}
	slot, ok := s.fl.Acquire()
	if !ok {
		return out, errf(wire.StatusOverloaded, "daemon at its limit of allocations in flight")
	}
	rs.Slot, rs.token = slot, req.Token
	start := len(out)
	out, err := s.allocateOnce(ctx, rs, req, out)
	if err == nil {
		if err = s.fl.Ack(slot, out[start:]); err == nil {
			return out, nil
		}
		// Cannot happen (an answer is far smaller than a slot); if it did,
		// a crash would release a bridge the client holds: do not hand it out.
		s.Undelivered(slot)
		rs.Slot = 0
		return out[:start], errf(wire.StatusInternal, "allocation answer too large to record: %v", err)
	}
	s.fl.Free(slot)
	rs.Slot = 0
	return out, err
}

// intend records in rs's slot, before a RESERVE for key is sent to t, that
// t may hold a bridge under key. A previous attempt's intent is replaced:
// allocateOnce has queued it as an orphan if its Outcome is unknown.
func (s *Router) intend(rs *Scratch, key uint64, t *Tier) error {
	if rs.Slot == 0 {
		return nil
	}
	if err := s.fl.Intend(rs.Slot, rs.token, key, t.NameB); err != nil {
		return errf(wire.StatusInternal, "recording an allocation in flight: %v", err)
	}
	return nil
}

// allocation is one ALLOCATE's walk down the tier order: the key it
// offers, the tier it tried first, and what its attempts met, read from
// their outcomes (classify).
type allocation struct {
	key       uint64
	first     int // position of the first tier tried; -1: none yet
	keyExists int // KEY_EXISTS answers so far (at most maxKeyExists are retried)
	slot      slotWait
	// sawFailure: a tier's fault (timeout, failure); sawLocal: a local
	// limit; sawCapacity: a full telephony server.
	sawCapacity, sawFailure, sawLocal bool
	lastFailure                       error
}

// allocateOnce offers one fresh key to the available tiers in order, and
// answers with the first reservation, or with what the attempts met.
func (s *Router) allocateOnce(ctx context.Context, rs *Scratch, req *wire.AllocateRequest, out []byte) ([]byte, error) {
	a := allocation{first: -1}
	var err error
	if a.key, err = s.nextKey(ctx); err != nil {
		return out, err
	}
	ts := s.acquire()
	defer ts.release()
	for _, t := range ts.Tiers {
		if !t.Available() {
			continue
		}
		var answered bool
		if out, answered, err = s.onTier(ctx, rs, req, t, &a, out); answered {
			return out, err
		}
	}
	return out, a.unserved()
}

// onTier makes the allocation's attempts on t: one, or more while t's
// connections are all busy (a brief wait for a slot) or t says the key is
// taken (a fresh key). answered: the request's answer is out, or err;
// otherwise the next tier may serve it.
func (s *Router) onTier(ctx context.Context, rs *Scratch, req *wire.AllocateRequest, t *Tier, a *allocation, out []byte) (_ []byte, answered bool, _ error) {
	for {
		if err := s.intend(rs, a.key, t); err != nil {
			return out, true, err
		}
		done, err := t.Breaker.Allow()
		if err != nil {
			return out, false, nil // open or probes busy: next tier
		}
		if a.first < 0 {
			a.first = t.Pos
		}
		reply, serverID, err := s.reserve(ctx, rs, req, t, a.key)
		if err == nil {
			var b wire.Bridge
			if err = b.Decode(reply.Payload); err == nil {
				done.Record(OutcomeOK.verdict())
				out = s.accept(rs, t, serverID, a.key, req, &b, out)
				reply.Release()
				s.servedBy(t, a.first)
				t.observe(OutcomeOK)
				return out, true, nil
			}
			reply.Release()
			// A reply we cannot read from a server that reserved a
			// bridge: a tier failure with an unknown outcome.
			err = fmt.Errorf("%w: undecodable RESERVE reply from tier %s: %w", mux.ErrUnknownOutcome, t.Name, err)
		}
		r := classify(ctx, err)
		o := r.Outcome()
		done.Record(o.verdict())
		t.observe(o)
		if r.unknown {
			// The server may hold a bridge under the key: release it once
			// the tier answers again; never reuse the key.
			s.orphans.add(t.Name, serverID, a.key)
		}
		switch {
		case o == OutcomeCallerGone:
			return out, true, callerErr(ctx, err)
		case o == OutcomeBusy:
			// The tier is healthy but every connection to it is at its
			// in-flight limit. The tier order is a priority, not a
			// spill-over: wait briefly for a slot on this tier, then shed
			// the request (OVERLOADED, retry) rather than push the burst
			// onto the next tier.
			if a.slot.wait(ctx, rs) {
				continue
			}
			if ctx.Err() != nil {
				return out, true, ctx.Err()
			}
			return out, true, errf(wire.StatusOverloaded, "tier %s is at its in-flight limit", t.Name)
		case o == OutcomeLocal:
			// No connection (it died since Available()) or the pool is
			// closing: nothing was sent, nobody is blamed; the next tier
			// may serve.
			a.sawLocal = true
		case o == OutcomeKeyExists && a.keyExists < maxKeyExists:
			a.keyExists++
			s.stats.keyExists.Add(1)
			if ce := s.log.Check(zap.WarnLevel, "telephony server reports key in use, taking the next"); ce != nil {
				ce.Write(zap.String("tier", t.Name), zap.Uint64("key", a.key))
			}
			if a.key, err = s.nextKey(ctx); err != nil {
				return out, true, err
			}
			continue
		case o == OutcomeRejected:
			return out, true, errf(wire.StatusBadRequest, "telephony tier %s rejected the request: %v", t.Name, err)
		case o == OutcomeCapacity:
			a.sawCapacity = true
		default:
			a.sawFailure, a.lastFailure = true, err
			if ce := s.log.Check(zap.InfoLevel, "tier attempt failed, failing over"); ce != nil {
				ce.Write(zap.String("tier", t.Name), zap.Error(err))
			}
		}
		if r.unknown {
			// The key may be held on t: the next tier gets a fresh one.
			if a.key, err = s.nextKey(ctx); err != nil {
				return out, true, err
			}
		}
		return out, false, nil
	}
}

// reserve sends one RESERVE of key for req to t, within t's attempt
// deadline; a polite request's is written without yielding.
func (s *Router) reserve(ctx context.Context, rs *Scratch, req *wire.AllocateRequest, t *Tier, key uint64) (*mux.Reply, string, error) {
	rs.ureq = wire.UpdateRequest{Key: key, Spec: req.Spec, Meta: req.Meta}
	actx, cancel := rs.adl.Within(ctx, t.Attempt)
	defer cancel()
	if rs.Polite {
		return t.Pool.RoundTripOnNow(actx, wire.OpReserve, &rs.ureq)
	}
	return t.Pool.RoundTripOn(actx, wire.OpReserve, &rs.ureq)
}

// servedBy counts a failover when t served an allocation that first tried
// the tier at position first.
func (s *Router) servedBy(t *Tier, first int) {
	if t.Pos == first {
		return
	}
	s.stats.failovers.Add(1)
	if t.FailoverFrom != nil {
		t.FailoverFrom[first].Inc()
	}
}

// unserved is the answer of an allocation no tier served: the worst of
// what its attempts met (a tier's fault, then a local limit, then full
// tiers), or UNAVAILABLE when no tier could even be tried.
func (a *allocation) unserved() error {
	switch {
	case a.sawFailure:
		return errf(wire.StatusUnavailable, "no tier could serve: last error: %v", a.lastFailure)
	case a.sawLocal:
		return errf(wire.StatusOverloaded, "no tier could take the request now")
	case a.sawCapacity:
		return errf(wire.StatusCapacity, "every tier is full")
	}
	return errf(wire.StatusUnavailable, "no tier available")
}

// accept records a successful RESERVE, held by serverID, and appends the
// AllocateResponse.
func (s *Router) accept(rs *Scratch, t *Tier, serverID string, key uint64, req *wire.AllocateRequest, b *wire.Bridge, out []byte) []byte {
	rs.res = wire.Reservation{Key: key, Tier: t.NameB, Bridge: *b, Spec: req.Spec, Meta: req.Meta}
	rs.scratch = s.idx.putSession(serverID, &rs.res, rs.scratch)
	resp := wire.AllocateResponse{Key: key, Tier: t.NameB, Bridge: *b}
	return resp.AppendTo(out)
}

// locate finds the session key and the server holding it: in the index or,
// failing that, by asking every server of every tier (the telephony servers
// are the system of record, and a reservation lives on exactly one of
// them), caching what it finds. On success rs.res holds the reservation
// (aliasing rs buffers) and serverID the HELLO id of its server.
//
// A session held by a server that is now in another tier's pool (a reload
// renamed the tier) is found there: servers, not tier names, hold sessions.
// When the session is in the index nothing is sent. When it is not and
// some server could not be asked, the error is UNAVAILABLE naming one (or
// OVERLOADED when every such server was merely busy: its pool full, after
// a brief wait, nothing sent), and rs.unasked lists them all (a server id "" standing for a tier's servers
// that never answered a HELLO): release defers the RELEASE to them.
//
// The caller must hold ts (acquired) while it uses the returned tier.
func (s *Router) locate(ctx context.Context, rs *Scratch, ts *TierSet, key uint64) (t *Tier, serverID string, err error) {
	rs.unasked = rs.unasked[:0]
	tiers := ts.Tiers
	v, found, deleted := s.idx.getSession(key, rs.cached)
	rs.cached = v
	if deleted {
		return nil, "", errf(wire.StatusNotFound, "no session %d", key)
	}
	if found {
		if id, res, ok := parseSessionRecord(v); ok && rs.res.Decode(res) == nil {
			if t, sid := holderOf(tiers, rs.res.Tier, id); t != nil {
				rs.res.Tier = t.NameB
				return t, sid, nil
			}
			if len(id) > 0 {
				// Its server is in no configured tier (a reload removed
				// it): the session is there and on no other server, so
				// asking the others could only answer a wrong NOT_FOUND.
				// A RELEASE is deferred to it (kept until the server is
				// back in some tier); LOOKUP and UPDATE cannot be served.
				rs.unasked = append(rs.unasked, orphan{tier: string(rs.res.Tier), key: key, server: string(id)})
				return nil, "", errf(wire.StatusUnavailable, "session %d is held by server %s, which no configured tier has", key, id)
			}
		}
		s.idx.forgetSession(key) // corrupt: ask the servers
	}
	if s.orphans.releasing(key) {
		// Released (deferred until its server confirms): gone, even if
		// its server, back before the releaser, still holds it.
		return nil, "", errf(wire.StatusNotFound, "no session %d", key)
	}
	var (
		unreachable, busy error
		slot              slotWait
	)
	for _, t := range tiers {
		ids := t.Pool.ServerIDs()
		if t.Pool.Unanswered() > 0 {
			unreachable = fmt.Errorf("tier %s has servers that never answered a HELLO", t.Name)
			rs.unasked = append(rs.unasked, orphan{tier: t.Name, key: key})
		}
		for _, id := range ids {
			rs.kreq = wire.KeyRequest{Key: key}
			reply, err := s.callServer(ctx, rs, &slot, t, id, wire.OpTelLookup, &rs.kreq)
			if err != nil {
				r := classify(ctx, err)
				switch {
				case r.met == OutcomeNotFound:
					// Final, even for a request that has ended.
					continue
				case r.gone:
					return nil, "", callerErr(ctx, err)
				case r.met.local():
					// Its pool is full (nothing sent): busy, not down.
					busy = fmt.Errorf("server %s of tier %s: %w", id, t.Name, err)
				default:
					unreachable = fmt.Errorf("server %s of tier %s: %w", id, t.Name, err)
				}
				rs.unasked = append(rs.unasked, orphan{tier: t.Name, key: key, server: id})
				continue
			}
			var rec wire.Record
			if err := rec.Decode(reply.Payload); err != nil {
				reply.Release()
				return nil, "", errf(wire.StatusInternal, "server %s of tier %s sent an undecodable LOOKUP reply", id, t.Name)
			}
			rs.res = wire.Reservation{Key: key, Tier: t.NameB, Bridge: rec.Bridge, Spec: rec.Spec, Meta: rec.Meta}
			// Copy out of the reply (refreshSession may store nothing).
			rs.scratch = rs.res.AppendTo(rs.scratch[:0])
			reply.Release()
			if err := rs.res.Decode(rs.scratch); err != nil {
				return nil, "", errf(wire.StatusInternal, "re-decoding a reservation: %v", err)
			}
			rs.cached, _ = s.idx.refreshSession(id, &rs.res, rs.cached)
			return t, id, nil
		}
	}
	if unreachable != nil {
		return nil, "", errf(wire.StatusUnavailable, "session %d not found on the reachable servers; %v", key, unreachable)
	}
	if busy != nil {
		// Only local limits kept a server from being asked: retry.
		return nil, "", errf(wire.StatusOverloaded, "session %d not found on the servers asked; %v", key, busy)
	}
	return nil, "", errf(wire.StatusNotFound, "no session %d", key)
}

// holder returns the tier whose pool has the server serverID, preferring
// the tier named name (where the session was created).
func holder(tiers []*Tier, name, serverID string) *Tier {
	for _, t := range tiers {
		if t.Name == name && t.Pool.HasServer(serverID) {
			return t
		}
	}
	for _, t := range tiers {
		if t.Pool.HasServer(serverID) {
			return t
		}
	}
	return nil
}

// holderOf is holder for the byte slices of an index record, without
// allocating: it returns the pool's own copy of the server id.
func holderOf(tiers []*Tier, name, serverID []byte) (*Tier, string) {
	for pass := 0; pass < 2; pass++ {
		for _, t := range tiers {
			if pass == 0 && t.Name != string(name) {
				continue
			}
			for _, id := range t.Pool.ServerIDs() {
				if id == string(serverID) {
					return t, id
				}
			}
		}
	}
	return nil, ""
}

func (s *Router) Lookup(ctx context.Context, rs *Scratch, key uint64, out []byte) ([]byte, error) {
	ts := s.acquire()
	defer ts.release()
	if _, _, err := s.locate(ctx, rs, ts, key); err != nil {
		return out, err
	}
	return rs.res.AppendTo(out), nil
}

func (s *Router) Update(ctx context.Context, rs *Scratch, req *wire.UpdateRequest, out []byte) ([]byte, error) {
	ts := s.acquire()
	defer ts.release()
	t, id, err := s.locate(ctx, rs, ts, req.Key)
	if err != nil {
		return out, err
	}
	var slot slotWait
	reply, err := s.callServer(ctx, rs, &slot, t, id, wire.OpTelUpdate, req)
	if err != nil {
		r := classify(ctx, err)
		if r.met == OutcomeNotFound {
			s.idx.delSession(req.Key)
			return out, errf(wire.StatusNotFound, "no session %d", req.Key)
		}
		return out, serverErr(ctx, t, id, r, err)
	}
	defer reply.Release()
	var b wire.Bridge
	if err := b.Decode(reply.Payload); err != nil {
		return out, errf(wire.StatusInternal, "server %s of tier %s sent an undecodable UPDATE reply", id, t.Name)
	}
	if hook := testhook.BeforeRefresh.Load(); hook != nil {
		(*hook)(req.Key)
	}
	rs.res = wire.Reservation{Key: req.Key, Tier: t.NameB, Bridge: b, Spec: req.Spec, Meta: req.Meta}
	rs.scratch, _ = s.idx.refreshSession(id, &rs.res, rs.scratch)
	return rs.res.AppendTo(out), nil
}

func (s *Router) Release(ctx context.Context, rs *Scratch, key uint64, out []byte) ([]byte, error) {
	ts := s.acquire()
	defer ts.release()
	t, id, err := s.locate(ctx, rs, ts, key)
	if err != nil {
		if len(rs.unasked) == 0 || ctx.Err() != nil || !errors.Is(err, wire.StatusUnavailable) && !errors.Is(err, wire.StatusOverloaded) {
			return out, err
		}
		// Not in the index, not on any server that answered: if it
		// exists, it is on a server that could not be asked. The release
		// is accepted and deferred to each of them (a server that does
		// not hold the key answers NOT_FOUND, which is final).
		for _, or := range rs.unasked {
			s.orphans.add(or.tier, or.server, key)
		}
		if ce := s.log.Check(zap.InfoLevel, "release of an unindexed session deferred to the servers that could not be asked"); ce != nil {
			ce.Write(zap.Uint64("key", key), zap.Int("servers", len(rs.unasked)), zap.Error(err))
		}
		s.idx.delSession(key)
		return out, nil
	}
	actx, cancel := rs.adl.Within(ctx, t.Attempt)
	rs.kreq = wire.KeyRequest{Key: key}
	reply, err := t.Pool.RoundTripTo(actx, id, wire.OpTelRelease, &rs.kreq)
	cancel()
	switch r := classify(ctx, err); {
	case err == nil:
		reply.Release()
	case r.met == OutcomeNotFound:
		s.idx.delSession(key)
		return out, errf(wire.StatusNotFound, "no session %d", key)
	case r.met == OutcomeRejected:
		return out, serverErr(ctx, t, id, r, err)
	default:
		// The server holding the session cannot answer now (down, timed
		// out, failing). The release is accepted and handed to the
		// releaser, which retries on that server until it confirms: the
		// front end sees no error, and the bridge does not leak.
		s.orphans.add(t.Name, id, key)
		if ce := s.log.Check(zap.InfoLevel, "release deferred until the server answers"); ce != nil {
			ce.Write(zap.String("tier", t.Name), zap.String("server_id", id), zap.Uint64("key", key), zap.Error(err))
		}
	}
	s.idx.delSession(key)
	return out, nil
}

// callServer sends one request to the server serverID of t within the
// tier's attempt deadline. A pool full towards it (mux.ErrBusy: nothing
// sent) is waited for briefly, as an allocation waits for its tier
// (slotWait, shared by the calls of one request so that it waits
// slotWaitMax in all), then returned.
func (s *Router) callServer(ctx context.Context, rs *Scratch, slot *slotWait, t *Tier, serverID string, op wire.Op, req wire.Payload) (*mux.Reply, error) {
	for {
		actx, cancel := rs.adl.Within(ctx, t.Attempt)
		reply, err := t.Pool.RoundTripTo(actx, serverID, op, req)
		cancel()
		if err == nil || classify(ctx, err).met != OutcomeBusy || !slot.wait(ctx, rs) {
			return reply, err
		}
	}
}

// flights makes concurrent ALLOCATEs with one idempotency token share one
// allocation: the first leads, the others wait for its answer.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct {
	done chan struct{}
	resp []byte // AllocateResponse payload, set before done closes
	err  error
}

func (fs *flights) join(token []byte) (*flight, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f, ok := fs.m[string(token)]; ok {
		return f, false
	}
	if fs.m == nil {
		fs.m = make(map[string]*flight)
	}
	f := &flight{done: make(chan struct{})}
	fs.m[string(token)] = f
	return f, true
}

func (fs *flights) finish(token []byte, f *flight) {
	fs.mu.Lock()
	delete(fs.m, string(token))
	fs.mu.Unlock()
	close(f.done)
}

// observe reports an attempt's outcome on t to its observer.
func (t *Tier) observe(o Outcome) {
	if t.Obs != nil {
		t.Obs.Attempt(o)
	}
}
