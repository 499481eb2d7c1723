package route

import (
	"errors"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"

	"switchboard/inflight"
)

// OpenInflight opens the in-flight table (package inflight) at path, with
// slots slots, and settles what the previous process left in it, before the
// daemon serves:
//
//   - INTENT: a RESERVE that may have landed, whose answer never reached
//     the client. It goes to the orphan releaser (journaled) and the slot is
//     freed.
//   - ACKED with a token: a reservation whose answer may not have reached
//     the client. The token's answer goes back into the index, so a retry
//     with the token gets the same bridge, and the reservation is kept. The
//     slot stays held for cache.token_ttl (a crash in that time finds it
//     again), then is freed.
//   - ACKED without a token: no retry can be matched to it; the client may
//     hold the bridge, so it is kept and the slot freed.
//
// Carried tokens' slots are held for tokenTTL (the index's token TTL). It
// returns what closes the table (after the server has stopped); call it
// before serving.
func (s *Router) OpenInflight(path string, slots int, tokenTTL time.Duration) (func(), error) {
	t, recs, err := inflight.Open(path, slots)
	if errors.Is(err, inflight.ErrCorrupt) {
		// Not a table (damaged, or another version's): what it recorded is
		// lost either way, and refusing to start would turn that into an
		// outage. Keep it for a post-mortem and start afresh.
		aside := path + ".corrupt"
		s.log.Error("in-flight table unreadable; moved aside, allocations in flight at the last stop cannot be settled",
			zap.String("moved_to", aside), zap.Error(err))
		if err := os.Rename(path, aside); err != nil {
			return nil, fmt.Errorf("in-flight table: %w", err)
		}
		t, recs, err = inflight.Open(path, slots)
	}
	if err != nil {
		return nil, fmt.Errorf("in-flight table: %w", err)
	}
	if n := t.Discarded(); n > 0 {
		s.log.Warn("in-flight table has unreadable slots (writes cut short); skipped", zap.Int("slots", n))
	}
	var carried []inflight.Slot
	var kbuf, scratch []byte
	intents, tokenless := 0, 0
	for _, r := range recs {
		switch {
		case r.State == inflight.Intent:
			s.queueOrphan(string(r.Tier), r.Key)
			t.Free(r.Slot)
			intents++
		case len(r.Token) > 0:
			kbuf, scratch = s.idx.putTokenRaw(r.Token, r.Resp, kbuf, scratch)
			carried = append(carried, r.Slot)
		default:
			t.Free(r.Slot)
			tokenless++
		}
	}
	if len(recs) > 0 {
		s.log.Info("allocations in flight at the previous run's end settled",
			zap.Int("released_as_orphans", intents), zap.Int("answers_restored", len(carried)),
			zap.Int("kept_without_token", tokenless))
	}
	s.fl = t
	freed := make(chan struct{})
	timer := time.AfterFunc(tokenTTL, func() {
		defer close(freed)
		for _, s := range carried {
			t.Free(s)
		}
	})
	return func() {
		if !timer.Stop() {
			<-freed
		}
		if err := t.Close(); err != nil {
			s.log.Error("in-flight table close failed", zap.Error(err))
		}
	}, nil
}

// queueOrphan hands a reservation that may exist to the orphan releaser:
// the one place the in-flight table does. The table records the tier, not
// the server (the server is picked inside the pool, after the intent is
// written), so the orphan names no server: the releaser sends its RELEASE
// to every server of the tier, and the servers that never held the key
// answer NOT_FOUND (and tombstone it, docs/protocol.md).
func (s *Router) queueOrphan(tierName string, key uint64) {
	s.orphans.add(tierName, "", key)
}

// Delivered frees the in-flight slot of an allocation whose answer was
// handed to the kernel (its client may hold it). The front end calls it,
// or Undelivered, exactly once for every slot Scratch.Slot gave it.
func (s *Router) Delivered(slot inflight.Slot) { s.fl.Free(slot) }

// Undelivered releases the allocation of slot, whose answer will never
// reach its client (its connection died or cannot take it): the bridge goes
// to the orphan releaser and the token is forgotten, so that a retry
// allocates afresh instead of replaying a released bridge. Then the slot is
// freed.
func (s *Router) Undelivered(slot inflight.Slot) {
	var r inflight.Record
	if err := s.fl.Read(slot, &r); err == nil && r.State == inflight.Acked && len(r.Token) > 0 && s.idx.replayed(r.Token) {
		// A retry with the token (on another connection) was given this
		// answer: that client holds the bridge. Keep it, and the token.
		// (A retry that comes between this look and the release below
		// can still be given the answer being released: a window of
		// microseconds, docs/architecture.md.)
		if ce := s.log.Check(zap.InfoLevel, "allocation answer not delivered, but replayed to a retry: kept"); ce != nil {
			ce.Write(zap.String("tier", string(r.Tier)), zap.Uint64("key", r.Key))
		}
	} else if err == nil && r.State == inflight.Acked {
		// The index knows the server (accept recorded it): release there.
		var server string
		if v, found, _ := s.idx.getSession(r.Key, nil); found {
			if id, _, ok := parseSessionRecord(v); ok {
				server = string(id)
			}
		}
		s.orphans.add(string(r.Tier), server, r.Key)
		if len(r.Token) > 0 {
			s.idx.c.Del(tokenKey(nil, r.Token))
		}
		s.idx.delSession(r.Key)
		if ce := s.log.Check(zap.InfoLevel, "allocation answer not delivered, releasing its bridge"); ce != nil {
			ce.Write(zap.String("tier", string(r.Tier)), zap.Uint64("key", r.Key))
		}
	}
	s.fl.Free(slot)
}
