package telsim

import (
	"errors"
	"testing"
	"time"

	"switchboard/internal/testsupport"
	"switchboard/wire"
)

// TestReleaseOvertakingReserveTombstones: in ModeQueue a RESERVE waits while
// a RELEASE and a LOOKUP of its key are answered at once (NOT_FOUND). The
// RELEASE leaves a tombstone, so the RESERVE, when it finally executes, is
// refused KEY_EXISTS and no bridge is left held; once the tombstone has
// expired the key can be reserved again.
func TestReleaseOvertakingReserveTombstones(t *testing.T) {
	clk := newFakeClock()
	s, addr := startServer(t, Config{Tier: "nextgen", TombstoneTTL: time.Minute}, WithClock(clk))
	if err := s.SetFault(Fault{Mode: ModeQueue, Latency: time.Second}); err != nil {
		t.Fatal(err)
	}
	if f := s.Fault(); f.Mode != ModeQueue || f.Latency != time.Second {
		t.Fatalf("fault in force %v", f)
	}
	a, b := dial(t, addr), dial(t, addr)
	id := a.send(wire.OpReserve, &wire.UpdateRequest{Key: 5, Spec: testSpec(1)})
	testsupport.WaitFor(t, "the RESERVE queued", func() bool { return s.Stats().Faults.Queued == 1 })
	if _, err := b.lookup(5); !errors.Is(err, wire.StatusNotFound) {
		t.Fatalf("LOOKUP while the RESERVE is queued: %v, want NOT_FOUND", err)
	}
	if err := b.release(5); !errors.Is(err, wire.StatusNotFound) {
		t.Fatalf("RELEASE while the RESERVE is queued: %v, want NOT_FOUND", err)
	}
	clk.Advance(time.Second)
	h, p := a.recv()
	if h.ID != id {
		t.Fatalf("reply to request %d, want %d", h.ID, id)
	}
	if err := status(h, p); !errors.Is(err, wire.StatusKeyExists) {
		t.Fatalf("queued RESERVE after its key was released: %v, want KEY_EXISTS", err)
	}
	if st := s.Stats(); st.Reservations != 0 || st.Tombstoned != 1 || st.Errors.KeyExists != 1 {
		t.Fatalf("stats %+v: want no reservation, 1 tombstoned RESERVE", st)
	}
	if err := s.SetFault(Fault{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.reserve(5, testSpec(1), nil); !errors.Is(err, wire.StatusKeyExists) {
		t.Fatalf("RESERVE within the tombstone's TTL: %v, want KEY_EXISTS", err)
	}
	clk.Advance(time.Minute)
	if _, err := b.reserve(5, testSpec(1), nil); err != nil {
		t.Fatalf("RESERVE after the tombstone expired: %v", err)
	}
	// A RELEASE of a held key is an ordinary release (no tombstone needed:
	// keys are never reused).
	if err := b.release(5); err != nil {
		t.Fatal(err)
	}
}

// TestTombstonesBounded: past MaxTombstones the oldest are dropped, so a
// flood of RELEASEs of unknown keys cannot grow the server without bound.
func TestTombstonesBounded(t *testing.T) {
	s, addr := startServer(t, Config{MaxTombstones: shardCount})
	c := dial(t, addr)
	for k := uint64(1); k <= 10*shardCount; k++ {
		if err := c.release(k); !errors.Is(err, wire.StatusNotFound) {
			t.Fatal(err)
		}
	}
	n := 0
	for i := range s.tab.shards {
		sh := &s.tab.shards[i]
		sh.mu.Lock()
		n += len(sh.tomb)
		sh.mu.Unlock()
	}
	if n > shardCount {
		t.Fatalf("%d tombstones kept, bound %d", n, shardCount)
	}
}
