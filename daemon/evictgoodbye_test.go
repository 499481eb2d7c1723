package daemon

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/client"
	"switchboard/internal/testhook"
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
//
// Only on the standard library's transport: on netpoll, eviction runs on
// the poller (onPrepare), so a hook that holds it until the racing request
// is read would hold the very poller that reads it. netpoll's eviction
// (conn.retirePolled) is covered by the connection floods of
// hostile_test.go, which failed on it before (1 error in 5,761 calls).
func TestEvictionRacingACallAnswersItOnce(t *testing.T) {
	evictionRacingACall(t, "net")
}

func evictionRacingACall(t *testing.T, transport string) {
	h := startDaemon(t, func(c *Config) {
		c.Server.Transport = transport
		c.Server.MaxConns = 1
		c.Server.IdleTimeout = time.Hour
		c.Server.RequestTimeout = 8 * time.Second
		for i := range c.Tiers {
			c.Tiers[i].AttemptTimeout = 6 * time.Second
		}
	})
	h.c.Close() // its two connections would be the ones evicted
	waitFor(t, "the harness's connections gone", 5*time.Second, func() bool { return h.d.srv.Stats().Open == 0 })
	cl, err := client.Dial(ctxT(t), h.sock, client.WithConns(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	waitFor(t, "the client's connection counted", 5*time.Second, func() bool { return h.d.srv.Stats().Open == 1 })
	// The tier answers a second late: the racing ALLOCATE is still running
	// when its connection is evicted.
	sim := h.d.Simulator("primary-large")
	sim.SetLatency(time.Second, 0)

	evicted := h.d.srv.Stats().CutCount("evicted") // the harness's own, at max_conns 1
	errc := make(chan error, 1)
	hookErr := make(chan error, 1)
	var fired atomic.Bool
	hook := func(s any, c testhook.EvictingConn) {
		if s != h.d.srv || !fired.CompareAndSwap(false, true) {
			return // once: the client's redial at the end evicts again
		}
		go func() {
			_, err := cl.Allocate(ctxT(t), &wire.AllocateRequest{Spec: spec("racing an eviction")})
			errc <- err
		}()
		// Hold the eviction until the daemon has read the request.
		for end := time.Now().Add(5 * time.Second); c.Unanswered() == 0; runtime.Gosched() {
			if time.Now().After(end) {
				hookErr <- errors.New("the racing ALLOCATE was not read within 5s")
				return
			}
		}
		hookErr <- nil
	}
	testhook.Evict.Store(&hook)
	defer testhook.Evict.Store(nil)

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
	if n := h.d.srv.Stats().CutCount("evicted") - evicted; n != 1 {
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

// TestEvictedNeverReaderDoesNotKeepItsSlot: a quiet connection is chosen
// for eviction, and its client then pipelines thousands of PINGs and never
// reads: the daemon reads until the connection's bounds, its answers fill
// the socket, and its reader pauses. The eviction must still end the
// connection soon (after the stall limit, without a GOODBYE nobody would
// read), not hold the slot until server.write_timeout cuts it.
func TestEvictedNeverReaderDoesNotKeepItsSlot(t *testing.T) {
	h := startDaemon(t, func(c *Config) {
		c.Server.Transport = "net"
		c.Server.MaxConns = 1
		c.Server.IdleTimeout = time.Hour
		c.Server.WriteTimeout = 10 * time.Minute // the stall limit is 1s
	})
	h.c.Close()
	waitFor(t, "the harness's connections gone", 5*time.Second, func() bool { return h.d.srv.Stats().Open == 0 })
	attacker := rawConn(t, h.sock)
	waitFor(t, "the attacker's connection counted", 5*time.Second, func() bool { return h.d.srv.Stats().Open == 1 })
	var pings []byte
	for i := 1; i <= 20000; i++ { // 320 KB: more than the socket holds
		pings, _ = wire.AppendFrame(pings, wire.Header{Op: wire.OpPing, ID: uint64(i)}, nil, wire.DefaultMaxFrame)
	}
	writeDone := make(chan struct{})
	defer func() { attacker.Close(); <-writeDone }()
	var fired atomic.Bool
	hookErr := make(chan error, 1)
	hook := func(s any, c testhook.EvictingConn) {
		if s != h.d.srv || !fired.CompareAndSwap(false, true) {
			return
		}
		go func() {
			defer close(writeDone)
			attacker.SetWriteDeadline(time.Now().Add(time.Minute))
			attacker.Write(pings) // blocks once the daemon stops reading
		}()
		// Hold the eviction until the reader is paused at its bounds with
		// the socket full: paused, and no write completing for 300 ms (a
		// pause while writes still complete ends by itself).
		w, since := c.Writes(), time.Now()
		for end := time.Now().Add(20 * time.Second); ; time.Sleep(time.Millisecond) {
			if now := c.Writes(); now != w || !c.Paused() {
				w, since = now, time.Now()
			} else if time.Since(since) > 300*time.Millisecond {
				break
			}
			if time.Now().After(end) {
				hookErr <- errors.New("the evicted connection's reader never paused on a full socket")
				return
			}
		}
		hookErr <- nil
	}
	testhook.Evict.Store(&hook)
	defer testhook.Evict.Store(nil)
	over := rawConn(t, h.sock)
	if err := <-hookErr; err != nil {
		t.Fatal(err)
	}
	if err := rawPing(1, over); err != nil {
		t.Fatalf("the new connection at max_conns: %v", err)
	}
	waitFor(t, "the evicted never-reader closed", 10*time.Second, func() bool { return h.d.srv.Stats().Open == 1 })
}
