package daemon

import (
	"testing"
	"time"

	"switchboard/telsim"
	"switchboard/wire"
)

// TestTokenRetryOnAnotherConnectionKeepsItsBridge: a front end that gives
// up on a connection resends its ALLOCATEs with their tokens on another
// (docs/protocol.md §2.4). The resend joins the allocation still running
// (flights) and is answered its key, replayed; the first connection's
// answer is then undeliverable. That bridge is the resend's: it is kept.
// Before the fix it was released as undelivered and its token forgotten,
// so the front end held a key whose bridge was gone.
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
	waitFor(t, "the first connection's requests done", 5*time.Second, func() bool { return h.d.srv.Stats().InFlight == 0 })
	waitFor(t, "no orphan pending", 5*time.Second, func() bool { return h.d.rt.Stats().Orphans == 0 })
	_, lerr := h.c.Lookup(ctx, al.Key)
	if n := sim.Stats().Reservations; n != 1 || lerr != nil {
		t.Fatalf("the resend was answered key %d (replayed %v); now LOOKUP says %v and the server holds %d bridges: the front end holds a key whose bridge was released",
			al.Key, al.Replayed, lerr, n)
	}
}
