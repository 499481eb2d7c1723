package daemon

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
	"switchboard/keygen"
	"switchboard/mux"
	"switchboard/pool"
	"switchboard/wire"
)

// tier is one telephony tier as the request path sees it: its pool, its
// breaker and the operator's drain switch. Every field the request path
// reads is immutable or atomic.
//
// A reload builds new tier values; what must outlive a reload (the breaker,
// its operator override, the drain switch, the metric children) is shared by
// pointer between the old and the new value of a tier with the same name.
type tier struct {
	name    string
	nameB   []byte
	pos     int
	pool    *pool.Pool
	br      *breaker.Breaker
	attempt time.Duration
	addrs   []string // the pool's resolved servers
	ctl     *tierCtl
	m       *tierMetrics // nil without metrics
	// failoverFrom[i] counts allocations this tier served after the
	// request first tried the tier at position i (nil without metrics).
	failoverFrom []counter
}

// tierCtl is the operator's state of a tier, keyed by tier name: it
// survives reloads. It is safe for concurrent use.
type tierCtl struct {
	drained atomic.Bool
}

// available reports, with atomic loads only, whether a new allocation may be
// tried on t: not drained, at least one live connection, breaker not known
// open.
func (t *tier) available() bool {
	return !t.ctl.drained.Load() && t.pool.Live() > 0 && !t.br.Skip()
}

// tierSet is one generation of the tier order. Requests hold it (acquire,
// release) while they use its tiers, so a reload knows when the pools it
// retired are no longer reachable by any request and may be closed.
type tierSet struct {
	tiers   []*tier
	refs    atomic.Int64
	retired atomic.Bool
	once    sync.Once
	idle    chan struct{} // closed once retired and refs is 0
}

func newTierSet(tiers []*tier) *tierSet {
	return &tierSet{tiers: tiers, idle: make(chan struct{})}
}

// release ends a request's use of ts.
func (ts *tierSet) release() {
	if ts.refs.Add(-1) == 0 && ts.retired.Load() {
		ts.once.Do(func() { close(ts.idle) })
	}
}

// retire marks ts as replaced; idle closes when its last user releases it.
func (ts *tierSet) retire() {
	ts.retired.Store(true)
	if ts.refs.Load() == 0 {
		ts.once.Do(func() { close(ts.idle) })
	}
}

// keySource issues session keys (keygen.Generator in production).
type keySource interface {
	Next() (uint64, error)
}

// keyWaitMax bounds how long one request waits for the key supply to catch
// up (within its own deadline).
const keyWaitMax = 500 * time.Millisecond

// nextKey returns a fresh session key. The generator never blocks: when
// its buffer ran dry because the lease store is slow (an fsync on a busy
// disk) or failing, it says so at once. For a store that is only late, a
// request then waits for it, polling with a short backoff, up to keyWaitMax
// and its own deadline: a store that is late by a few hundred milliseconds
// costs latency, not an error. A store known to fail (keygen.ErrStoreDown:
// its last lease failed, etcd is unreachable) is answered at once. Either
// way the error is KEYS_EXHAUSTED: an operator must look at the store.
func (s *service) nextKey(ctx context.Context) (uint64, error) {
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
	give := time.NewTimer(keyWaitMax)
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

// service implements the front-end operations on top of keys, tiers and the
// index. It is safe for concurrent use.
type service struct {
	log     *zap.Logger
	keys    keySource
	set     atomic.Pointer[tierSet] // the tier order in force
	tiers   atomic.Pointer[[]*tier] // &set.tiers, for readers that hold nothing
	idx     *index
	flights flights
	orphans *orphans
	fl      *inflight.Table // allocations in flight (daemon/inflight.go); nil: not recorded
	stats   serviceStats
}

// acquire returns the tier set in force, held until release: a reload
// closes a retired pool only once no request holds its set.
func (s *service) acquire() *tierSet {
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
func (s *service) swap(tiers []*tier) *tierSet {
	ts := newTierSet(tiers)
	old := s.set.Swap(ts)
	s.tiers.Store(&ts.tiers)
	if old != nil {
		old.retire()
	}
	return old
}

type serviceStats struct {
	failovers atomic.Uint64 // allocations served by a tier other than the first tried
	keyExists atomic.Uint64
	keyWaits  atomic.Uint64 // requests that waited for the key supply
}

// errf builds a front-end error: status plus a message for the client.
func errf(s wire.Status, format string, args ...any) error {
	return &wire.RemoteError{Status: s, Message: fmt.Sprintf(format, args...)}
}

// statusOf maps any error to the front-end status and message to answer.
func statusOf(err error) (wire.Status, string) {
	var re *wire.RemoteError
	switch {
	case errors.As(err, &re):
		return re.Status, re.Message
	case errors.Is(err, context.DeadlineExceeded):
		return wire.StatusTimeout, "request deadline passed"
	case errors.Is(err, keygen.ErrExhausted):
		return wire.StatusKeysExhausted, "session key space exhausted"
	case errors.Is(err, keygen.ErrUnavailable):
		return wire.StatusKeysExhausted, "no session keys available: the key lease store is failing or too slow"
	}
	var s wire.Status
	if errors.As(err, &s) {
		return s, ""
	}
	return wire.StatusInternal, "internal error"
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
func (w *slotWait) wait(ctx context.Context, rs *reqState) bool {
	now := time.Now()
	if w.until.IsZero() {
		w.until, w.next = now.Add(slotWaitMax), 500*time.Microsecond
	}
	d := min(w.next, w.until.Sub(now))
	if d <= 0 || ctx.Err() != nil {
		return false
	}
	w.next = min(2*w.next, slotPollMax)
	rs.adl.start(d)
	select {
	case <-rs.adl.Done():
	case <-ctx.Done():
	}
	rs.adl.stop()
	return ctx.Err() == nil
}

// callerErr is the error of a request that ended during an attempt that
// failed with err.
func callerErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

// allocate reserves a bridge for req on the first tier that takes it and
// appends the AllocateResponse payload to out.
func (s *service) allocate(ctx context.Context, rs *reqState, req *wire.AllocateRequest, out []byte) ([]byte, error) {
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

func (s *service) replay(rs *reqState, token []byte) ([]byte, bool) {
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
func (s *service) appendReplayed(out, token, v []byte) ([]byte, error) {
	var r wire.AllocateResponse
	if err := r.Decode(v); err != nil {
		return out, errf(wire.StatusInternal, "corrupt idempotency record")
	}
	s.idx.markReplayed(token)
	r.Replayed = true
	return r.AppendTo(out), nil
}

func (s *service) allocateOnce(ctx context.Context, rs *reqState, req *wire.AllocateRequest, out []byte) ([]byte, error) {
	key, err := s.nextKey(ctx)
	if err != nil {
		return out, err
	}
	ts := s.acquire()
	defer ts.release()
	tiers := ts.tiers
	var (
		// What the attempts met, read from their outcomes (classify):
		// sawFailure is the tier's fault (timeout, failure), sawLocal a
		// local limit, sawCapacity a full telephony server.
		sawCapacity, sawFailure, sawLocal bool
		first                             = -1
		lastFailure                       error
		keyExists                         int
		slot                              slotWait
		stalled                           bool // an attempt timed out while the daemon was behind
	)
	for _, t := range tiers {
		if !t.available() {
			continue
		}
		for {
			if err := s.intend(rs, key, t); err != nil {
				return out, err
			}
			done, err := t.br.Allow()
			if err != nil {
				break // open or probes busy: next tier
			}
			if first < 0 {
				first = t.pos
			}
			rs.ureq = wire.UpdateRequest{Key: key, Spec: req.Spec, Meta: req.Meta}
			actx, cancel := rs.adl.within(ctx, t.attempt)
			var reply *mux.Reply
			var serverID string
			if rs.polite {
				reply, serverID, err = t.pool.RoundTripOnNow(actx, wire.OpReserve, &rs.ureq)
			} else {
				reply, serverID, err = t.pool.RoundTripOn(actx, wire.OpReserve, &rs.ureq)
			}
			cancel()
			if err == nil {
				var b wire.Bridge
				if err = b.Decode(reply.Payload); err == nil {
					done.Record(outcomeOK.verdict())
					out = s.accept(rs, t, serverID, key, req, &b, out)
					reply.Release()
					if t.pos != first {
						s.stats.failovers.Add(1)
						if t.failoverFrom != nil {
							t.failoverFrom[first].Inc()
						}
					}
					t.m.attempt(outcomeOK)
					return out, nil
				}
				reply.Release()
				// A reply we cannot read from a server that reserved a
				// bridge: a tier failure with an unknown outcome.
				err = fmt.Errorf("%w: undecodable RESERVE reply from tier %s: %w", mux.ErrUnknownOutcome, t.name, err)
			}
			o := classify(ctx, err)
			done.Record(o.verdict())
			t.m.attempt(o)
			if errors.Is(err, mux.ErrUnknownOutcome) {
				// The server may hold a bridge under key: release it once
				// the tier answers again; never reuse the key.
				s.orphans.add(t.name, serverID, key)
			}
			switch {
			case o == outcomeCallerGone:
				return out, callerErr(ctx, err)
			case o == outcomeStalled && !stalled:
				// Timed out while the daemon itself was behind: once more
				// on this tier, with a fresh key (the first may be held:
				// an orphan now), rather than fail over into the same stall.
				stalled = true
				if key, err = s.nextKey(ctx); err != nil {
					return out, err
				}
				continue
			case o == outcomeStalled:
				return out, errf(wire.StatusOverloaded, "tier %s: attempts timed out while the daemon was behind", t.name)
			case o == outcomeLocal && errors.Is(err, mux.ErrBusy):
				// The tier is healthy but every connection to it is at
				// its in-flight limit. The tier order is a priority, not
				// a spill-over: wait briefly for a slot on this tier,
				// then shed the request (OVERLOADED, retry) rather than
				// push the burst onto the next tier.
				if slot.wait(ctx, rs) {
					continue
				}
				if ctx.Err() != nil {
					return out, ctx.Err()
				}
				return out, errf(wire.StatusOverloaded, "tier %s is at its in-flight limit", t.name)
			case o == outcomeLocal:
				// No connection (it died since available()) or the pool
				// is closing: nothing was sent, nobody is blamed; the
				// next tier may serve.
				sawLocal = true
			case o == outcomeKeyExists && keyExists < maxKeyExists:
				keyExists++
				s.stats.keyExists.Add(1)
				if ce := s.log.Check(zap.WarnLevel, "telephony server reports key in use, taking the next"); ce != nil {
					ce.Write(zap.String("tier", t.name), zap.Uint64("key", key))
				}
				if key, err = s.nextKey(ctx); err != nil {
					return out, err
				}
				continue
			case o == outcomeRejected:
				return out, errf(wire.StatusBadRequest, "telephony tier %s rejected the request: %v", t.name, err)
			case o == outcomeCapacity:
				sawCapacity = true
			default:
				sawFailure, lastFailure = true, err
				if ce := s.log.Check(zap.InfoLevel, "tier attempt failed, failing over"); ce != nil {
					ce.Write(zap.String("tier", t.name), zap.Error(err))
				}
			}
			if errors.Is(err, mux.ErrUnknownOutcome) {
				// The key may be held on t: the next tier gets a fresh one.
				if key, err = s.nextKey(ctx); err != nil {
					return out, err
				}
			}
			break
		}
	}
	switch {
	case sawFailure:
		return out, errf(wire.StatusUnavailable, "no tier could serve: last error: %v", lastFailure)
	case sawLocal:
		return out, errf(wire.StatusOverloaded, "no tier could take the request now")
	case sawCapacity:
		return out, errf(wire.StatusCapacity, "every tier is full")
	}
	return out, errf(wire.StatusUnavailable, "no tier available")
}

// accept records a successful RESERVE, held by serverID, and appends the
// AllocateResponse.
func (s *service) accept(rs *reqState, t *tier, serverID string, key uint64, req *wire.AllocateRequest, b *wire.Bridge, out []byte) []byte {
	rs.res = wire.Reservation{Key: key, Tier: t.nameB, Bridge: *b, Spec: req.Spec, Meta: req.Meta}
	rs.scratch = s.idx.putSession(serverID, &rs.res, rs.scratch)
	resp := wire.AllocateResponse{Key: key, Tier: t.nameB, Bridge: *b}
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
func (s *service) locate(ctx context.Context, rs *reqState, ts *tierSet, key uint64) (t *tier, serverID string, err error) {
	rs.unasked = rs.unasked[:0]
	tiers := ts.tiers
	v, found, deleted := s.idx.getSession(key, rs.cached)
	rs.cached = v
	if deleted {
		return nil, "", errf(wire.StatusNotFound, "no session %d", key)
	}
	if found {
		if id, res, ok := parseSessionRecord(v); ok && rs.res.Decode(res) == nil {
			if t, sid := holderOf(tiers, rs.res.Tier, id); t != nil {
				rs.res.Tier = t.nameB
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
		ids := t.pool.ServerIDs()
		if t.pool.Unanswered() > 0 {
			unreachable = fmt.Errorf("tier %s has servers that never answered a HELLO", t.name)
			rs.unasked = append(rs.unasked, orphan{tier: t.name, key: key})
		}
		for _, id := range ids {
			rs.kreq = wire.KeyRequest{Key: key}
			reply, err := s.callServer(ctx, rs, &slot, t, id, wire.OpTelLookup, &rs.kreq)
			if err != nil {
				if errors.Is(err, wire.StatusNotFound) {
					continue
				}
				switch classify(ctx, err) {
				case outcomeCallerGone:
					return nil, "", callerErr(ctx, err)
				case outcomeLocal:
					// Its pool is full (nothing sent): busy, not down.
					busy = fmt.Errorf("server %s of tier %s: %w", id, t.name, err)
				default:
					unreachable = fmt.Errorf("server %s of tier %s: %w", id, t.name, err)
				}
				rs.unasked = append(rs.unasked, orphan{tier: t.name, key: key, server: id})
				continue
			}
			var rec wire.Record
			if err := rec.Decode(reply.Payload); err != nil {
				reply.Release()
				return nil, "", errf(wire.StatusInternal, "server %s of tier %s sent an undecodable LOOKUP reply", id, t.name)
			}
			rs.res = wire.Reservation{Key: key, Tier: t.nameB, Bridge: rec.Bridge, Spec: rec.Spec, Meta: rec.Meta}
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
func holder(tiers []*tier, name, serverID string) *tier {
	for _, t := range tiers {
		if t.name == name && t.pool.HasServer(serverID) {
			return t
		}
	}
	for _, t := range tiers {
		if t.pool.HasServer(serverID) {
			return t
		}
	}
	return nil
}

// holderOf is holder for the byte slices of an index record, without
// allocating: it returns the pool's own copy of the server id.
func holderOf(tiers []*tier, name, serverID []byte) (*tier, string) {
	for pass := 0; pass < 2; pass++ {
		for _, t := range tiers {
			if pass == 0 && t.name != string(name) {
				continue
			}
			for _, id := range t.pool.ServerIDs() {
				if id == string(serverID) {
					return t, id
				}
			}
		}
	}
	return nil, ""
}

func (s *service) lookup(ctx context.Context, rs *reqState, key uint64, out []byte) ([]byte, error) {
	ts := s.acquire()
	defer ts.release()
	if _, _, err := s.locate(ctx, rs, ts, key); err != nil {
		return out, err
	}
	return rs.res.AppendTo(out), nil
}

// testHookBeforeRefresh, when set (tests only), runs after an UPDATE's
// reply arrived and before the index is refreshed with it: a test forces a
// RELEASE into that window.
var testHookBeforeRefresh atomic.Pointer[func(key uint64)]

func (s *service) update(ctx context.Context, rs *reqState, req *wire.UpdateRequest, out []byte) ([]byte, error) {
	ts := s.acquire()
	defer ts.release()
	t, id, err := s.locate(ctx, rs, ts, req.Key)
	if err != nil {
		return out, err
	}
	var slot slotWait
	reply, err := s.callServer(ctx, rs, &slot, t, id, wire.OpTelUpdate, req)
	if err != nil {
		if errors.Is(err, wire.StatusNotFound) {
			s.idx.delSession(req.Key)
			return out, errf(wire.StatusNotFound, "no session %d", req.Key)
		}
		return out, serverErr(ctx, t, id, err)
	}
	defer reply.Release()
	var b wire.Bridge
	if err := b.Decode(reply.Payload); err != nil {
		return out, errf(wire.StatusInternal, "server %s of tier %s sent an undecodable UPDATE reply", id, t.name)
	}
	if hook := testHookBeforeRefresh.Load(); hook != nil {
		(*hook)(req.Key)
	}
	rs.res = wire.Reservation{Key: req.Key, Tier: t.nameB, Bridge: b, Spec: req.Spec, Meta: req.Meta}
	rs.scratch, _ = s.idx.refreshSession(id, &rs.res, rs.scratch)
	return rs.res.AppendTo(out), nil
}

func (s *service) release(ctx context.Context, rs *reqState, key uint64, out []byte) ([]byte, error) {
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
	actx, cancel := rs.adl.within(ctx, t.attempt)
	rs.kreq = wire.KeyRequest{Key: key}
	reply, err := t.pool.RoundTripTo(actx, id, wire.OpTelRelease, &rs.kreq)
	cancel()
	switch {
	case err == nil:
		reply.Release()
	case errors.Is(err, wire.StatusNotFound):
		s.idx.delSession(key)
		return out, errf(wire.StatusNotFound, "no session %d", key)
	case errors.Is(err, wire.StatusBadRequest):
		return out, serverErr(ctx, t, id, err)
	default:
		// The server holding the session cannot answer now (down, timed
		// out, failing). The release is accepted and handed to the
		// releaser, which retries on that server until it confirms: the
		// front end sees no error, and the bridge does not leak.
		s.orphans.add(t.name, id, key)
		if ce := s.log.Check(zap.InfoLevel, "release deferred until the server answers"); ce != nil {
			ce.Write(zap.String("tier", t.name), zap.String("server_id", id), zap.Uint64("key", key), zap.Error(err))
		}
	}
	s.idx.delSession(key)
	return out, nil
}

// serverErr maps a failed call to the server that holds a session, by its
// outcome (classify): a local limit (the pool full: nothing was sent) is
// OVERLOADED, "busy, retry", never UNAVAILABLE: the server did nothing.
func serverErr(ctx context.Context, t *tier, serverID string, err error) error {
	switch classify(ctx, err) {
	case outcomeCallerGone:
		return callerErr(ctx, err)
	case outcomeLocal:
		return errf(wire.StatusOverloaded, "server %s of tier %s holding the session is at its in-flight limit: %v", serverID, t.name, err)
	}
	var re *wire.RemoteError
	if errors.As(err, &re) && re.Status == wire.StatusBadRequest {
		return errf(wire.StatusBadRequest, "server %s of tier %s: %s", serverID, t.name, re.Message)
	}
	return errf(wire.StatusUnavailable, "server %s of tier %s holding the session: %v", serverID, t.name, err)
}

// callServer sends one request to the server serverID of t within the
// tier's attempt deadline. A pool full towards it (mux.ErrBusy: nothing
// sent) is waited for briefly, as an allocation waits for its tier
// (slotWait, shared by the calls of one request so that it waits
// slotWaitMax in all), then returned.
func (s *service) callServer(ctx context.Context, rs *reqState, slot *slotWait, t *tier, serverID string, op wire.Op, req wire.Payload) (*mux.Reply, error) {
	for {
		actx, cancel := rs.adl.within(ctx, t.attempt)
		reply, err := t.pool.RoundTripTo(actx, serverID, op, req)
		cancel()
		if err == nil || !errors.Is(err, mux.ErrBusy) || !slot.wait(ctx, rs) {
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
