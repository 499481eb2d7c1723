package daemon

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"switchboard/inflight"
	"switchboard/internal/testsupport"
	"switchboard/wire"
)

// What a killed daemon left in its in-flight table is settled at the next
// start: an ACKED answer with a token is replayed to the retry (same
// bridge, no second RESERVE); an INTENT goes to the orphan releaser.
func TestInflightTableSettledAtStart(t *testing.T) {
	const ackedKey, intentKey = 123456789, 987654321
	resp := (&wire.AllocateResponse{Key: ackedKey, Tier: []byte("primary-large"),
		Bridge: wire.Bridge{ID: []byte("br-1"), Toll: []byte("+1 555 0100")}}).AppendTo(nil)
	h := startDaemon(t, func(c *Config) {
		if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
			t.Fatal(err)
		}
		tb, _, err := inflight.Open(filepath.Join(c.DataDir, inflightName), 4)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := tb.Acquire()
		tb.Intend(s, []byte("tok-acked"), ackedKey, []byte("primary-large"))
		tb.Ack(s, resp)
		s, _ = tb.Acquire()
		tb.Intend(s, []byte("tok-intent"), intentKey, []byte("primary-large"))
		tb.Close() // the "killed" process's last word
	})
	sim := h.d.Simulator("primary-large")
	a, err := h.c.Allocate(ctxT(t), &wire.AllocateRequest{Token: []byte("tok-acked"), Spec: spec("retry")})
	if err != nil {
		t.Fatal(err)
	}
	if a.Key != ackedKey || !a.Replayed || a.Tier != "primary-large" || a.Bridge.ID != "br-1" {
		t.Fatalf("retry of an acked token: %+v, want a replay of key %d", a, ackedKey)
	}
	if n := sim.Stats().Reserves; n != 0 {
		t.Fatalf("%d RESERVEs for a replayed token", n)
	}
	// The intent names its tier, not its server: its key is released on
	// every server of every tier (a reload may have moved the server).
	testsupport.WaitFor(t, "the intent released as an orphan", func() bool { return h.d.rt.Stats().Orphans == 0 && sim.Stats().Releases == 1 })
	for _, name := range []string{"nextgen", "backup2-large"} {
		if n := h.d.Simulator(name).Stats().Releases; n != 1 {
			t.Errorf("%d RELEASEs on %s, want 1 (answered NOT_FOUND)", n, name)
		}
	}
	// The acked slot is held (durable) until the token's TTL; the intent's
	// is free.
	if n := h.d.rt.InflightLen(); n != 1 {
		t.Fatalf("%d slots held, want 1", n)
	}
}

// An allocation whose answer cannot be delivered (the client closed its
// connection while the RESERVE was on its way) is released, and its token
// forgotten: nobody was told about that bridge.
func TestUndeliveredAllocationReleased(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			h := startDaemon(t, func(c *Config) {
				c.Server.Transport = tr
				for i := range c.Tiers { // the RESERVE's 300 ms are no failure
					c.Tiers[i].AttemptTimeout = 2 * time.Second
				}
			})
			sim := h.d.Simulator("primary-large")
			sim.SetLatency(300*time.Millisecond, 0)
			c := rawConn(t, h.sock)
			req := &wire.AllocateRequest{Token: []byte("tok-gone"), Spec: spec("gone")}
			f, err := wire.AppendFrame(nil, wire.Header{Op: wire.OpAllocate, ID: 1}, req, wire.DefaultMaxFrame)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(f); err != nil {
				t.Fatal(err)
			}
			testsupport.WaitFor(t, "the RESERVE to reach the tier", func() bool { return sim.Stats().Reserves == 1 })
			c.Close()
			testsupport.WaitFor(t, "the undelivered bridge released", func() bool {
				st := sim.Stats()
				return st.Releases == 1 && st.Reservations == 0
			})
			if n := h.d.rt.InflightLen(); n != 0 {
				t.Fatalf("%d in-flight slots still held", n)
			}
			sim.SetLatency(0, 0)
			a, err := h.c.Allocate(ctxT(t), req)
			if err != nil || a.Replayed {
				t.Fatalf("retry with the token of a released bridge: %+v, %v; want a fresh allocation", a, err)
			}
			if st := sim.Stats(); st.Reservations != 1 {
				t.Fatalf("%d reservations, want 1", st.Reservations)
			}
		})
	}
}

// A damaged table is moved aside (and logged), not a reason to refuse to
// start.
func TestInflightTableCorruptMovedAside(t *testing.T) {
	var dir string
	h := startDaemon(t, func(c *Config) {
		dir = c.DataDir
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, inflightName), []byte("garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
	})
	if b, err := os.ReadFile(filepath.Join(dir, inflightName+".corrupt")); err != nil || string(b) != "garbage" {
		t.Fatalf("damaged table not kept aside: %q, %v", b, err)
	}
	if _, err := h.c.Allocate(ctxT(t), &wire.AllocateRequest{Token: []byte("t"), Spec: spec("after")}); err != nil {
		t.Fatal(err)
	}
}
