package daemon

import (
	"testing"
	"time"

	"switchboard/telsim"
	"switchboard/wire"
)

// TestTokenRetryOnAnotherConnectionKeepsItsBridge: "A front end that
// closes a connection with answers unread should resend those ALLOCATEs
// with their tokens: each comes back replayed (the same bridge) or freshly
// allocated, and it then holds (or RELEASEs) exactly one per token"
// (docs/protocol.md §2.4). The front end sends ALLOCATE(T) on one
// connection, gives up on it (closes it) while the RESERVE is running, and
// resends ALLOCATE(T) on another: the resend joins the running allocation
// (flights) and is answered its key, replayed. But the first connection's
// answer is then undeliverable, so the allocation is released as
// undelivered and its token forgotten: the front end holds a key whose
// bridge is gone.
func TestTokenRetryOnAnotherConnectionKeepsItsBridge(t *testing.T) {
	sim, err := telsim.New(telsim.Config{Tier: "primary-large", ServerID: "slow-pl", Latency: 800 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	a, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	h := startDaemon(t, func(c *Config) {
		chaosConfig(c)
		c.Tiers[0].Servers = []string{"tcp://" + a.String()}
		c.Tiers[0].AttemptTimeout = 5 * time.Second
	})
	ctx := ctxT(t)
	req := &wire.AllocateRequest{Token: []byte("retry-elsewhere"), Spec: spec("retried on another connection")}
	frame, err := wire.AppendFrame(nil, wire.Header{Op: wire.OpAllocate, ID: 1}, req, wire.DefaultMaxFrame)
	if err != nil {
		t.Fatal(err)
	}
	c1 := rawConn(t, h.sock)
	if _, err := c1.Write(frame); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the RESERVE at the server", 5*time.Second, func() bool { return sim.Stats().Reserves >= 1 })
	c1.Close()                        // the front end gives up on this connection...
	al, err := h.c.Allocate(ctx, req) // ...and resends the ALLOCATE with its token on another
	if err != nil {
		t.Fatalf("the resend: %v", err)
	}
	waitFor(t, "the first connection's requests done", 5*time.Second, func() bool { return h.d.srv.inFlight.Load() == 0 })
	waitFor(t, "no orphan pending", 5*time.Second, func() bool { return h.d.svc.orphans.count() == 0 })
	_, lerr := h.c.Lookup(ctx, al.Key)
	if n := sim.Stats().Reservations; n != 1 || lerr != nil {
		t.Fatalf("the resend was answered key %d (replayed %v); now LOOKUP says %v and the server holds %d bridges: the front end holds a key whose bridge was released",
			al.Key, al.Replayed, lerr, n)
	}
}
