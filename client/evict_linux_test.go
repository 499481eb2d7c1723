//go:build linux

package client

import (
	"context"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"switchboard/internal/testsupport"
	"switchboard/wire"
)

// TestGoodbyeAfterAnswersResendsTheUnanswered: the daemon evicts a served
// connection at its max_conns (docs/protocol.md §2.3): it answers the one
// request it read, then writes a GOODBYE and closes, leaving a second
// request (an ALLOCATE without a token) unread in the socket. The answered
// call succeeds; the unanswered one was not read, so the client sends it
// again on a new connection, where it is executed once.
func TestGoodbyeAfterAnswersResendsTheUnanswered(t *testing.T) {
	d := startDaemon(t)
	c := dialT(t, d)
	testsupport.WaitFor(t, "the connection accepted", func() bool { return d.accepted.Load() == 1 }) // served, not evicted
	readA := make(chan struct{})
	d.mu.Lock()
	d.evictNext = func(nc net.Conn) {
		defer nc.Close()
		h, pl, _, err := wire.ReadFrame(nc, nil, wire.DefaultMaxFrame) // exactly one frame: no read-ahead
		if err != nil {
			t.Errorf("evicted connection: reading its request: %v", err)
			return
		}
		close(readA)
		// Wait until the second request sits unread in the socket.
		rc, err := nc.(*net.UnixConn).SyscallConn()
		if err != nil {
			t.Error(err)
			return
		}
		for end := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			var n int
			rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
			if n > 0 {
				break
			}
			if time.Now().After(end) {
				t.Error("the second request never reached the socket")
				return
			}
		}
		nc.Write(d.handle(h, pl))
		f, _ := wire.AppendFrame(nil, wire.Header{Op: wire.OpGoodbye, Flags: wire.FlagResponse, Status: wire.StatusOverloaded},
			&wire.ErrorMessage{Message: []byte("evicted: at max_conns")}, wire.DefaultMaxFrame)
		nc.Write(f)
	}
	d.mu.Unlock()
	d.dropConns()
	testsupport.WaitFor(t, "the connection dead", func() bool { return !c.slots[0].mc.Load().Alive() })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errA := make(chan error, 1)
	go func() { errA <- c.Ping(ctx) }() // redials: the connection to be evicted
	select {
	case <-readA:
	case <-ctx.Done():
		t.Fatal("the first request was never read")
	}
	if _, err := c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("unanswered at the goodbye")}); err != nil {
		t.Fatalf("ALLOCATE left unread at a GOODBYE after answers: %v", err)
	}
	if err := <-errA; err != nil {
		t.Fatalf("PING answered before the GOODBYE: %v", err)
	}
	d.mu.Lock()
	n := len(d.byKey)
	d.mu.Unlock()
	if n != 1 || d.requests.Load() != 1 {
		t.Fatalf("%d bridges, %d requests on the new connection; want the ALLOCATE executed once", n, d.requests.Load())
	}
}
