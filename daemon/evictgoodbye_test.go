package daemon

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/client"
	"switchboard/mux"
	"switchboard/wire"
)

// TestEvictionRacingACallAnswersItOnce: a quiet connection evicted at
// server.max_conns just as its client sends an ALLOCATE (without a token:
// the client may not send it twice) that the daemon has read. Before the
// fix the connection was closed under the running request: the client got
// "connection lost before the reply" (outcome unknown) and an orphaned
// bridge. Now the daemon stops reading it, writes the answer, then a
// GOODBYE, and closes: the call succeeds, exactly one bridge is reserved,
// and the client's next call goes out on a new connection.
func TestEvictionRacingACallAnswersItOnce(t *testing.T) {
	h := startDaemon(t, func(c *Config) {
		c.Server.Transport = "net"
		c.Server.MaxConns = 1
		c.Server.IdleTimeout = time.Hour
		c.Server.RequestTimeout = 8 * time.Second
		for i := range c.Tiers {
			c.Tiers[i].AttemptTimeout = 6 * time.Second
		}
	})
	h.c.Close() // its two connections would be the ones evicted
	waitFor(t, "the harness's connections gone", 5*time.Second, func() bool { return h.d.srv.open.Load() == 0 })
	cl, err := client.Dial(ctxT(t), h.sock, client.WithConns(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	waitFor(t, "the client's connection counted", 5*time.Second, func() bool { return h.d.srv.open.Load() == 1 })
	// The tier answers a second late: the racing ALLOCATE is still running
	// when its connection is evicted.
	sim := h.d.Simulator("primary-large")
	sim.SetLatency(time.Second, 0)

	evicted := h.d.srv.stats.cuts[cutEvicted].Load() // the harness's own, at max_conns 1
	errc := make(chan error, 1)
	hookErr := make(chan error, 1)
	var fired atomic.Bool
	hook := func(s *server, c *conn) {
		if s != h.d.srv || !fired.CompareAndSwap(false, true) {
			return // once: the client's redial at the end evicts again
		}
		go func() {
			_, err := cl.Allocate(ctxT(t), &wire.AllocateRequest{Spec: spec("racing an eviction")})
			errc <- err
		}()
		// Hold the eviction until the daemon has read the request.
		for end := time.Now().Add(5 * time.Second); c.unanswered.Load() == 0; runtime.Gosched() {
			if time.Now().After(end) {
				hookErr <- errors.New("the racing ALLOCATE was not read within 5s")
				return
			}
		}
		hookErr <- nil
	}
	testHookEvict.Store(&hook)
	defer testHookEvict.Store(nil)

	over := rawConn(t, h.sock) // at max_conns: evicts the client's connection
	if err := rawPing(1, over); err != nil {
		t.Fatalf("the new connection at max_conns: %v", err)
	}
	if err := <-hookErr; err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("ALLOCATE racing the eviction of its connection: %v (unknown outcome: %v)", err, errors.Is(err, mux.ErrUnknownOutcome))
	}
	if n := h.d.srv.stats.cuts[cutEvicted].Load() - evicted; n != 1 {
		t.Fatalf("%d connections evicted, want 1", n)
	}
	if st := sim.Stats(); st.Reserves != 1 || st.Reservations != 1 {
		t.Fatalf("%d RESERVEs, %d reservations for one ALLOCATE; want 1 and 1", st.Reserves, st.Reservations)
	}
	// The client's connection ended with the GOODBYE; its next call
	// redials (evicting the raw connection, now the quiet one).
	sim.SetLatency(0, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		t.Fatalf("the client after its connection said goodbye: %v", err)
	}
}
