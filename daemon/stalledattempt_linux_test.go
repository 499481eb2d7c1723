//go:build linux

package daemon

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"switchboard/pool"
	"switchboard/route"
	"switchboard/wire"
)

// heldTCP is a telephony connection whose reader can be held back, as a
// starved daemon's mux reader is: while held, a Read waits (telling parked
// once) and what the server sends stays in the socket's receive queue.
type heldTCP struct {
	*net.TCPConn
	g *gate
}

type gate struct {
	mu     sync.Mutex
	held   bool
	open   chan struct{} // closed when released
	parked chan struct{} // closed when a Read waits while held
	pOnce  sync.Once
}

func newGate() *gate { return &gate{open: make(chan struct{}), parked: make(chan struct{})} }

func (g *gate) hold() {
	g.mu.Lock()
	g.held = true
	g.mu.Unlock()
}

func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held {
		g.held = false
		close(g.open)
	}
}

func (h *heldTCP) Read(b []byte) (int, error) {
	h.g.mu.Lock()
	held, open := h.g.held, h.g.open
	h.g.mu.Unlock()
	if held {
		h.g.pOnce.Do(func() { close(h.g.parked) })
		<-open
	}
	return h.TCPConn.Read(b)
}

// TestStalledAttemptIsNotBlamed: the primary tier answers a RESERVE in
// time, but the daemon's reader of that connection is not running (held
// back here; on a starved host, not scheduled), so the reply waits in the
// socket while the attempt deadline passes. That timeout is the daemon's,
// not the tier's: the breaker counts nothing (outcome timeout_local). The
// attempt still failed with an unknown outcome, so the request fails over
// as for any timeout and is served by the next tier: never an error while
// a tier serves. Before, it counted as the tier's failure (five in a row
// opened a healthy tier's breaker).
func TestStalledAttemptIsNotBlamed(t *testing.T) {
	h := startDaemon(t, nil)
	rt := h.d.rt
	old := rt.Current()
	primary := old.Tiers[0]
	sim := h.d.Simulator(primary.Name)
	g := newGate()
	pc := pool.DefaultConfig()
	pc.Tier, pc.Client, pc.Servers, pc.MinConns = primary.Name, "held", []string{sim.Addr().String()}, 1
	pc.HeartbeatInterval = time.Hour // nothing but the RESERVE on the connection
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := pool.NetDialer(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &heldTCP{TCPConn: nc.(*net.TCPConn), g: g}, nil
	}
	p, err := pool.New(pc, pool.WithDialer(dial))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		g.release()
		p.Shutdown(context.Background())
	}()
	if err := p.WaitReady(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// The request path uses a copy of the primary tier on the held pool.
	held := *primary
	held.Pool = p
	rt.Swap(append([]*route.Tier{&held}, old.Tiers[1:]...))
	defer rt.Swap(old.Tiers)

	// Park the reader: it is blocked in a read begun before the hold, so
	// one reply lets it go round into the held read.
	g.hold()
	ping := make(chan error, 1)
	go func() {
		rep, err := p.RoundTrip(context.Background(), wire.OpTelPing, &wire.Empty{})
		rep.Release()
		ping <- err
	}()
	select {
	case <-g.parked:
	case <-time.After(10 * time.Second):
		t.Fatal("the reader never reached its held read")
	}
	if err := <-ping; err != nil {
		t.Fatal(err)
	}
	reserves := func(i int) uint64 { return h.d.Simulator(old.Tiers[i].Name).Stats().Reserves }
	before := [3]uint64{reserves(0), reserves(1), reserves(2)}

	if _, err := h.c.Allocate(ctxT(t), &wire.AllocateRequest{Spec: spec("stalled")}); err != nil {
		t.Fatalf("an allocation whose primary reply waited unread past the attempt deadline: %v; want served by the next tier", err)
	}
	if n := reserves(0) - before[0]; n != 1 {
		t.Fatalf("%d RESERVEs reached the primary, want 1", n)
	}
	if n1, n2 := reserves(1)-before[1], reserves(2)-before[2]; n1+n2 != 1 {
		t.Fatalf("%d and %d RESERVEs on the lower tiers, want one (the failover)", n1, n2)
	}
	if c := primary.Breaker.Counts(); c.TotalFailures != 0 || c.ConsecutiveFailures != 0 {
		t.Fatalf("the primary's breaker counted the stalled attempt: %+v", c)
	}
}
