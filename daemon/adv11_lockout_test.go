//go:build linux

package daemon

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"switchboard/client"
	"switchboard/internal/testsupport"
	"switchboard/wire"
)

// TestSmallAnswerNeverReadersCannotLockOutNewClients is
// TestNeverReadingClientsCannotLockOutNewClients with the attacker's answers
// small: each never-reading connection pipelines PINGs, so the socket fills
// with PONGs (16 bytes each) and the daemon's write of the next one blocks
// with only a few bytes queued in the daemon, far below stuckQueued. Such a
// connection does not read, yet eviction neither takes it as stuck (its
// queue is small: the kernel holds the rest) nor as quiet (an answer is
// unanswered): with every slot held that way a new client is refused until
// server.write_timeout frees one, and an attacker that redials at once wins
// that race. The verdict depends on no timing: the attack is set up (and
// checked, from the server's counters) before the new client dials, and
// write_timeout is far longer than the new client's deadline.
func TestSmallAnswerNeverReadersCannotLockOutNewClients(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { testSmallAnswerLockout(t, tr) })
	}
}

func testSmallAnswerLockout(t *testing.T, tr string) {
	const maxConns = 4
	h := startDaemon(t, func(c *Config) {
		c.Server.Transport = tr
		c.Server.MaxConns = maxConns
		c.Server.WriteTimeout = time.Minute // the window the attack has before a reconnect
		c.Server.IdleTimeout = time.Hour
	})
	var pings []byte
	for i := 1; i <= 20000; i++ { // 320 KB of requests: more than the sockets hold
		var err error
		if pings, err = wire.AppendFrame(pings, wire.Header{Op: wire.OpPing, ID: uint64(i)}, nil, wire.DefaultMaxFrame); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var attackers []net.Conn
	t.Cleanup(func() {
		mu.Lock()
		for _, c := range attackers {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	// The attacker opens never-reading connections until every slot is
	// held by one whose write is blocked (the harness's own idle
	// connections are evicted on the way).
	for i := 0; h.d.srv.Census().UnreadIdle < maxConns; i++ {
		if i >= 8*maxConns {
			t.Fatalf("%d attacker connections, only %d blocked", i, h.d.srv.Census().UnreadIdle)
		}
		c, err := net.Dial("unix", h.sock)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		attackers = append(attackers, c)
		mu.Unlock()
		before, refused := h.d.srv.Census().UnreadIdle, h.d.srv.Stats().Refused
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetWriteDeadline(time.Now().Add(time.Minute))
			c.Write(pings) // blocks once the daemon stops reading; ends at close
		}()
		testsupport.WaitFor(t, "the daemon's write blocked on the attacker", func() bool {
			// Blocked, or refused (a slot an eviction frees only once
			// the evicted connection has said goodbye): this attacker
			// is settled either way; a refusal since the start of the
			// loop is not this one's.
			return h.d.srv.Census().UnreadIdle > before || h.d.srv.Stats().Refused > refused
		})
	}
	t.Logf("%s: blocked %d, evicted %d, open %d, refused %d", tr, h.d.srv.Census().UnreadIdle, h.d.srv.Stats().CutCount("evicted"), h.d.srv.Stats().Open, h.d.srv.Stats().Refused)
	// A genuine front end connecting now must be served.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, h.sock, client.WithConns(1))
	if err == nil {
		err = c.Ping(ctx)
		c.Close()
	}
	if err != nil {
		t.Fatalf("a new client while %d never-reading connections (small answers) hold the slots: %v (refused: %d, evicted: %d)", maxConns, err, h.d.srv.Stats().Refused, h.d.srv.Stats().CutCount("evicted"))
	}
}
