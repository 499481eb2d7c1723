//go:build linux

package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"switchboard/client"
	"switchboard/internal/testsupport"
	"switchboard/wire"
)

// TestWriteTimeoutReleasesOnlyUndeliveredAllocations: a client that
// pipelines ALLOCATEs and does not read is cut at server.write_timeout, and
// the answers never handed to the kernel are released. The batch whose
// write timed out was partly written: its leading frames are in the socket,
// and a client reads what the socket holds even after the daemon closed its
// end, so those keep their bridges. Every ALLOCATE answer a client can read
// must name a bridge the daemon still holds. Before the fix the whole batch
// was released. Run on the net transport, which reports the bytes a failed
// write took (netpoll cannot: docs/protocol.md §2.4).
func TestWriteTimeoutReleasesOnlyUndeliveredAllocations(t *testing.T) {
	testWriteTimeoutReleasesOnlyUndelivered(t, "net")
}

func testWriteTimeoutReleasesOnlyUndelivered(t *testing.T, tr string) {
	const n = 6000 // ~600 KB of answers: more than twice what a Unix socket holds
	h := startDaemon(t, func(c *Config) {
		c.Server.Transport = tr
		c.Server.WriteTimeout = 10 * time.Second // the slow client reads within it, whatever the machine
		c.Server.MaxConnUnanswered = 2 * n
		c.Server.MaxConnQueuedBytes = 8 << 20
		c.Server.IdleTimeout = time.Minute
	})
	c := rawConn(t, h.sock)
	c.SetDeadline(time.Now().Add(60 * time.Second))
	var reqs []byte
	for i := 1; i <= n; i++ {
		var err error
		req := &wire.AllocateRequest{Token: []byte(fmt.Sprintf("tok-%d", i)), Spec: spec("hostile")}
		if reqs, err = wire.AppendFrame(reqs, wire.Header{Op: wire.OpAllocate, ID: uint64(i)}, req, wire.DefaultMaxFrame); err != nil {
			t.Fatal(err)
		}
	}
	wrote := make(chan error, 1)
	go func() { _, err := c.Write(reqs); wrote <- err }()
	// The client reads slowly: once every request is answered (the
	// daemon's write is blocked on the full socket) it catches up once,
	// reading part of what its socket holds, then reads nothing until the
	// daemon gave up on it. Catching up lets the daemon write on, and stop
	// part way. It reads at most 16 KiB: reading all the socket held (up to
	// ~210 KB) made room for everything left when most answers were short
	// OVERLOADEDs (on a busy machine admission sheds 5,000 of the 6,000:
	// ~380 KB in all), so no write blocked again and no cut came.
	// 6,000 allocations under -race beside other packages' tests: give
	// them more than waitUntil's default (the connection's deadline is 60 s).
	waitFor(t, "every request answered", 40*time.Second, func() bool {
		return h.d.srv.Stats().Requests >= n && h.d.srv.Stats().InFlight == 0
	})
	head := make([]byte, min(inq(t, c), 16<<10))
	nh, _ := io.ReadFull(c, head) // the daemon may have cut it already: read on below
	head = head[:nh]
	// The cut comes server.write_timeout (10 s) after the daemon's write
	// blocked: allow it that and more on a busy machine.
	waitFor(t, "the connection cut for not reading", 30*time.Second, func() bool {
		return h.d.srv.Stats().CutCount("write_timeout") > 0 || h.d.srv.Stats().CutCount("input_overflow") > 0
	})
	if err := <-wrote; err != nil {
		t.Logf("client write: %v", err)
	}
	// Now it reads what its socket holds.
	var keys []uint64
	rest, err := io.ReadAll(c)
	buf := append(head, rest...)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Logf("read: %v", err)
	}
	for len(buf) >= wire.HeaderSize {
		fh, size, err := wire.ParseHeader(buf, wire.DefaultMaxFrame)
		if err != nil || size > len(buf) {
			break
		}
		if fh.Op == wire.OpAllocate && fh.Status == wire.StatusOK {
			var a wire.AllocateResponse
			if err := a.Decode(buf[wire.HeaderSize:size]); err != nil {
				t.Fatal(err)
			}
			keys = append(keys, a.Key)
		}
		buf = buf[size:]
	}
	if len(keys) == 0 || len(keys) == n {
		t.Fatalf("the client read %d of %d answers: the scenario did not cut a connection mid-stream", len(keys), n)
	}
	testsupport.WaitFor(t, "the undelivered allocations released", func() bool {
		st, err := h.d.Status()
		return err == nil && st.Orphans == 0
	})
	var gone []uint64
	for _, k := range keys {
		if _, err := h.c.Lookup(ctxT(t), k); errors.Is(err, wire.StatusNotFound) {
			gone = append(gone, k)
		} else if err != nil {
			t.Fatalf("lookup %d: %v", k, err)
		}
	}
	t.Logf("%s: %d of %d allocations answered and read by the client after the cut; %d of those released by the daemon", tr, len(keys), n, len(gone))
	if len(gone) > 0 {
		t.Errorf("%d allocations the client read in full were released as undelivered (e.g. key %d): the client holds a key whose bridge is gone", len(gone), gone[0])
	}
}

// TestNeverReadingClientsCannotLockOutNewClients: at server.max_conns a
// new client is served by evicting a connection; one whose client does not
// read goes first, even with a handler blocked writing to it. Before the
// fix eviction took only connections with no request running, and such a
// handler counts as one for up to server.write_timeout: a handful of
// never-reading connections (a few LOOKUPs with large answers each) evicted
// the genuine front end's idle connections and then had its redial refused.
func TestNeverReadingClientsCannotLockOutNewClients(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { testNeverReadingLockout(t, tr) })
	}
}

func testNeverReadingLockout(t *testing.T, tr string) {
	const maxConns = 4
	h := startDaemon(t, func(c *Config) {
		c.Server.Transport = tr
		c.Server.MaxConns = maxConns
		c.Server.WriteTimeout = 10 * time.Second // the window the attack has before a reconnect
		c.Server.IdleTimeout = time.Hour
	})
	// One session with a large meta: each LOOKUP answers ~32 KiB.
	a, err := h.c.Allocate(ctxT(t), &wire.AllocateRequest{Spec: spec("big"), Meta: make([]byte, wire.MaxMeta)})
	if err != nil {
		t.Fatal(err)
	}
	var lookups []byte
	for i := 1; i <= 24; i++ { // ~800 KB: more than a socket holds, under max_conn_queued_bytes
		if lookups, err = wire.AppendFrame(lookups, wire.Header{Op: wire.OpLookup, ID: uint64(i)}, &wire.KeyRequest{Key: a.Key}, wire.DefaultMaxFrame); err != nil {
			t.Fatal(err)
		}
	}
	// The attacker fills every slot with connections that never read.
	for i := 0; i < maxConns; i++ {
		c := rawConn(t, h.sock)
		c.SetDeadline(time.Now().Add(time.Minute))
		if _, err := c.Write(lookups); err != nil {
			t.Fatal(err)
		}
		// Its answers fill the socket: a handler blocks writing to it
		// (eviction may already have cut an earlier attacker for it).
		testsupport.WaitFor(t, "the daemon's write blocked on the attacker", func() bool {
			return h.d.srv.Stats().InFlight == 0 && h.d.srv.Census().Running >= 1 && h.d.srv.Stats().Open+int64(h.d.srv.Stats().CutCount("evicted")+h.d.srv.Stats().Refused) >= int64(i+3) && (h.d.srv.Census().Unread == 0)
		})
	}
	t.Logf("%s: evicted %d, open %d, refused %d", tr, h.d.srv.Stats().CutCount("evicted"), h.d.srv.Stats().Open, h.d.srv.Stats().Refused)
	// A genuine front end connecting now must be served.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, h.sock, client.WithConns(1))
	if err == nil {
		err = c.Ping(ctx)
		c.Close()
	}
	if err != nil {
		t.Fatalf("a new client while %d never-reading connections hold the slots: %v (refused: %d)", maxConns, err, h.d.srv.Stats().Refused)
	}
}

// inq returns the bytes waiting in c's receive queue (SIOCINQ).
func inq(t *testing.T, c net.Conn) int {
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if cerr := rc.Control(func(fd uintptr) { n, err = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); cerr != nil || err != nil {
		t.Fatal(cerr, err)
	}
	return n
}

// TestConnectionFloodCostsWellBehavedClientNoErrors: a flood of new
// connections at server.max_conns (each sending one PING) beside a
// well-behaved client, which must see no error. Eviction now skips
// connections with a request received since the coarse clock's last tick
// or waiting in the kernel, and the Go client resends an idempotent call
// lost with its connection; with max_conns 4 the attacker's active
// connections can still hold the slots, so the client's redial may be
// refused: the refusal's GOODBYE frame tells it nothing was read, and it
// sends the call again after a backoff. Before: hundreds of errors, then
// 1-2 in ~15,000 calls (a refused redial failed its call).
func TestConnectionFloodCostsWellBehavedClientNoErrors(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { testConnectionFlood(t, tr) })
	}
}

func testConnectionFlood(t *testing.T, tr string) {
	h := startDaemon(t, func(c *Config) {
		c.Server.Transport = tr
		c.Server.MaxConns = 4
		c.Server.IdleTimeout = time.Hour
	})
	a, err := h.c.Allocate(ctxT(t), &wire.AllocateRequest{Spec: spec("legit")})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	flooded := make(chan int)
	go func() { // the attacker: connect, PING (read the PONG), repeat
		var ring []net.Conn
		n := 0
		defer func() {
			for _, c := range ring {
				c.Close()
			}
			flooded <- n
		}()
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := net.Dial("unix", h.sock)
			if err != nil {
				continue
			}
			c.SetDeadline(time.Now().Add(time.Second))
			rawPing(1, c) // refused or evicted: no matter
			n++
			if ring = append(ring, c); len(ring) > 16 {
				ring[0].Close()
				ring = ring[1:]
			}
		}
	}()
	var calls, errs int
	var first error
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); calls++ {
		if _, err := h.c.Lookup(ctxT(t), a.Key); err != nil {
			if errs++; first == nil {
				first = err
			}
		}
	}
	close(stop)
	n := <-flooded
	t.Logf("%s: %d attacker connections, %d evicted; the genuine client: %d calls, %d errors (first: %v)", tr, n, h.d.srv.Stats().CutCount("evicted"), calls, errs, first)
	if errs > 0 {
		t.Errorf("a well-behaved client saw %d errors in %d calls during a connection flood: %v", errs, calls, first)
	}
}

// TestFrameDeadlineFromFirstByte: from the first byte of a header, the
// whole frame must arrive within server.read_timeout (protocol.md §2.4). A
// client that sends the header just inside the timeout and the payload just
// inside a second one is cut, not served. Before the fix, on netpoll the
// header's wait (Peek) and the payload's (Next) each had a fresh timeout,
// so a frame could take twice as long.
func TestFrameDeadlineFromFirstByte(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { testFrameDeadline(t, tr) })
	}
}

func testFrameDeadline(t *testing.T, tr string) {
	const rt = time.Second
	h := startDaemon(t, func(c *Config) {
		c.Server.Transport = tr
		c.Server.ReadTimeout = rt
	})
	f, err := wire.AppendFrame(nil, wire.Header{Op: wire.OpLookup, ID: 1}, &wire.KeyRequest{Key: 123456789}, wire.DefaultMaxFrame)
	if err != nil {
		t.Fatal(err)
	}
	c := rawConn(t, h.sock)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	step := func(b []byte, at time.Duration) {
		time.Sleep(time.Until(start.Add(at)))
		c.Write(b) // an error shows below as no answer
	}
	step(f[:1], 0)
	step(f[1:wire.HeaderSize], 3*rt/4)              // the header, complete within the timeout
	step(f[wire.HeaderSize:len(f)-1], 3*rt/2)       // the payload trickles on
	step(f[len(f)-1:], 3*rt/2+100*time.Millisecond) // the frame ends 1.6 timeouts after its first byte
	_, _, _, err = wire.ReadFrame(c, nil, wire.DefaultMaxFrame)
	t.Logf("%s: a frame completed %v after its first byte (read_timeout %v): answer err %v, read_timeout cuts %d", tr, 3*rt/2+100*time.Millisecond, rt, err, h.d.srv.Stats().CutCount("read_timeout"))
	if err == nil {
		t.Errorf("%s: a frame that took %v from its first byte was served (read_timeout %v)", tr, 3*rt/2+100*time.Millisecond, rt)
	}
}

// TestReaderNeverWaitsForTheSocket: answers given by a connection's reader
// itself (PONG, protocol errors, OVERLOADED at server.max_conn_in_flight)
// never make it wait for the socket, so a client that does not read is
// read up to server.max_conn_unanswered and server.max_conn_queued_bytes,
// not up to what its socket happens to hold. Before the fix the reader
// became the flusher of its own answer: once the socket was full it
// blocked for server.write_timeout and read nothing more. That is why
// TestWriteTimeoutReleasesOnlyUndeliveredAllocations failed whenever its
// connection reached max_conn_in_flight (1,024 requests running) before a
// handler's write had filled the socket: the reader's OVERLOADED answer
// was the write that blocked, and the rest of the 6,000 requests were never
// read. Whether it got there first was a matter of speed, more often so in
// a warm process (-count=2), never of state left by a first daemon.
func TestReaderNeverWaitsForTheSocket(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { testReaderNeverWaits(t, tr) })
	}
}

func testReaderNeverWaits(t *testing.T, tr string) {
	// 20,000 PONGs are 320 KB: more than a Unix socket holds, however
	// they are batched, and under the bounds below.
	const n = 20000
	h := startDaemon(t, func(c *Config) {
		c.Server.Transport = tr
		c.Server.WriteTimeout = time.Minute // no cut while the test looks
		c.Server.MaxConnUnanswered = 2 * n
		c.Server.MaxConnQueuedBytes = 8 << 20
		c.Server.IdleTimeout = time.Hour
	})
	c := rawConn(t, h.sock)
	c.SetDeadline(time.Now().Add(time.Minute))
	var reqs []byte
	for i := 1; i <= n; i++ {
		var err error
		if reqs, err = wire.AppendFrame(reqs, wire.Header{Op: wire.OpPing, ID: uint64(i)}, nil, wire.DefaultMaxFrame); err != nil {
			t.Fatal(err)
		}
	}
	wrote := make(chan error, 1)
	go func() { _, err := c.Write(reqs); wrote <- err }()
	// The client never reads: every PING must still be read and answered
	// (the answers queue in the daemon, within its bounds).
	waitFor(t, "every PING read", 30*time.Second, func() bool {
		return h.d.srv.Stats().Requests >= n
	})
	if err := <-wrote; err != nil {
		t.Fatalf("client write: %v", err)
	}
	c.Close()
}
