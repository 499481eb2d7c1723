package daemon

import (
	"context"
	"errors"
	"testing"
	"time"

	"switchboard/client"
	"switchboard/wire"
)

// TestRefusedClientRetriesUntilDeadline: docs/protocol.md §2.3 and
// docs/operations.md (server.max_conns) say that a client refused at accept
// is sent a GOODBYE and that the Go client sends its call again after a
// backoff (1 ms doubling to 100 ms) until the call's deadline. The client
// stops after maxNotSent (64) tries instead, about 3 s, whatever the
// deadline; and on the net transport the error it returns is often its
// write's EPIPE (the daemon closed the refused connection before the
// client wrote) rather than the OVERLOADED the GOODBYE carries, so a front
// end (xmlapi) cannot tell "busy, retry" from a daemon that is down.
//
// Every connection here has the test's uid and the harness's client holds
// the 2 allowed by server.max_conns_per_uid, so every dial is refused. The
// verdict depends on no timing: a call that returns an error while its
// context is still live has stopped retrying before its deadline.
func TestRefusedClientRetriesUntilDeadline(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			h := startDaemon(t, func(c *Config) {
				c.Server.Transport = tr
				c.Server.MaxConnsPerUID = 2
			})
			if err := h.c.Ping(ctxT(t)); err != nil { // both harness connections up
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := client.Dial(ctx, h.sock, client.WithConns(1))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			err = c.Ping(ctx)
			t.Logf("%s: refused client's PING returned after %v: %v (refused %d)", tr, time.Since(start), err, h.d.srv.Stats().Refused)
			if err == nil {
				t.Fatal("a connection past max_conns_per_uid was served")
			}
			if ctx.Err() == nil {
				t.Errorf("%s: the refused client gave up after %d refusals with %v left of its deadline: %v", tr, h.d.srv.Stats().Refused, time.Until(start.Add(30*time.Second)).Round(time.Second), err)
			}
			if !errors.Is(err, wire.StatusOverloaded) {
				t.Errorf("%s: the refused client's error is not OVERLOADED (the GOODBYE's status): %v", tr, err)
			}
		})
	}
}
