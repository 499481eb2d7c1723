package frontend

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"switchboard/wire"
)

// fakeTC is a transportConn whose unread bytes the test sets.
type fakeTC struct {
	unreadN           int
	closed            bool
	uid, gid          uint32 // the peer's, when cred
	cred, saidGoodbye bool   // saidGoodbye: a GOODBYE frame was written
}

func (f *fakeTC) writeAll(b []byte) (int, error) { return len(b), nil }
func (f *fakeTC) close() error                   { f.closed = true; return nil }
func (f *fakeTC) unread() (int, bool)            { return f.unreadN, true }
func (f *fakeTC) incoming() (int, bool)          { return 0, true }
func (f *fakeTC) peerCred() (uid, gid uint32, ok bool) {
	return f.uid, f.gid, f.cred
}
func (f *fakeTC) goodbye(b []byte) int { f.saidGoodbye = true; return len(b) }

// TestReapOnceIdleDefinition: on the reaper's clock (no sleeping), a
// connection stays while it sends requests and reads what it is sent; one
// that sends nothing, or sends PINGs but leaves its PONGs unread, is cut
// once idle_timeout has passed since it was last seen active.
func TestReapOnceIdleDefinition(t *testing.T) {
	s := &Server{log: zaptest.NewLogger(t), conns: map[*conn]struct{}{}}
	s.lim.Store(&serverLimits{maxConnUnanswered: 8, maxConnQueued: 1 << 20, idleTimeout: 3 * time.Second})
	const sec = int64(time.Second)
	s.clock.Store(0)
	reader, silent, trickler := &fakeTC{}, &fakeTC{}, &fakeTC{}
	rc, tc := s.newConn(reader, 0, false), s.newConn(trickler, 0, false)
	s.newConn(silent, 0, false)
	for tick := int64(1); tick <= 8; tick++ {
		now := tick * sec / 2 // a tick every 500 ms
		s.clock.Store(now)
		rc.received()
		tc.received()
		trickler.unreadN += 768 // its PONGs pile up unread
		s.reapOnce(now, 3*time.Second)
	}
	if reader.closed {
		t.Error("a connection sending requests and reading its responses was cut")
	}
	if !silent.closed {
		t.Error("a connection silent for 4s (idle_timeout 3s) was not cut")
	}
	if !trickler.closed {
		t.Error("a connection sending PINGs without reading its PONGs for 4s was not cut")
	}
	if n := s.stats.cuts[cutIdle].Load(); n != 2 {
		t.Errorf("%d idle cuts counted, want 2", n)
	}
}

// TestAllowList: with server.allow_uids or allow_gids set, admitConn lets
// in a peer whose uid or gid is listed and refuses, without a GOODBYE,
// counted, one whose neither is, and one whose credentials are unknown.
// Both lists empty: anyone.
func TestAllowList(t *testing.T) {
	s := &Server{log: zaptest.NewLogger(t), conns: map[*conn]struct{}{}, uidConns: map[uint32]int{}}
	s.lim.Store(&serverLimits{maxConns: 16, allowUIDs: []uint32{1000}, allowGIDs: []uint32{50}})
	for _, c := range []struct {
		name    string
		tc      *fakeTC
		allowed bool
	}{
		{"uid listed", &fakeTC{uid: 1000, gid: 1000, cred: true}, true},
		{"gid listed", &fakeTC{uid: 1001, gid: 50, cred: true}, true},
		{"neither", &fakeTC{uid: 1001, gid: 1001, cred: true}, false},
		{"root, unlisted", &fakeTC{uid: 0, gid: 0, cred: true}, false},
		{"unknown peer", &fakeTC{}, false},
	} {
		_, ok := s.admitConn(c.tc)
		if ok != c.allowed || c.tc.saidGoodbye {
			t.Errorf("%s: admitted %v (GOODBYE %v), want %v without GOODBYE", c.name, ok, c.tc.saidGoodbye, c.allowed)
		}
	}
	if n := s.stats.notAllowed.Load(); n != 3 {
		t.Errorf("%d connections counted not allowed, want 3", n)
	}
	s.lim.Store(&serverLimits{maxConns: 16})
	if _, ok := s.admitConn(&fakeTC{uid: 1001, gid: 1001, cred: true}); !ok {
		t.Error("with both lists empty a peer was refused")
	}
}

// TestEvictStalledNeverReader, on an injected clock: at server.max_conns,
// with no connection quiet, eviction takes a connection whose responses
// have waited maxStall without one write to its socket completing while
// the kernel holds bytes it has not read (a client that never reads small
// answers: a few bytes queued in the daemon, far below stuckQueued). Not
// before maxStall, not one whose writes complete (a busy client that
// reads), not one whose client has read everything written to it (the
// daemon's own flush is late), and a quiet connection before any stalled
// one. Before, such a connection was never evicted and a new client was
// refused until server.write_timeout.
func TestEvictStalledNeverReader(t *testing.T) {
	var now atomic.Int64
	s := &Server{log: zaptest.NewLogger(t), conns: map[*conn]struct{}{}, uidConns: map[uint32]int{},
		now: func() time.Time { return time.Unix(0, now.Load()) }}
	s.cfg.WriteTimeout = time.Minute
	s.lim.Store(&serverLimits{maxConns: 3, maxConnUnanswered: 8, maxConnQueued: 1 << 20, idleTimeout: time.Hour})
	now.Store(time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC).UnixNano())
	s.clock.Store(now.Load())
	answer := func(c *conn) { // a PONG queued, its write not completing
		c.received()
		c.queued.Add(wire.HeaderSize)
	}
	neverReads, reads, hostLate := &fakeTC{unreadN: 200 << 10}, &fakeTC{unreadN: 4 << 10}, &fakeTC{unreadN: 0}
	nr, rd, hl := s.newConn(neverReads, 0, false), s.newConn(reads, 0, false), s.newConn(hostLate, 0, false)
	s.open.Store(3)
	for _, c := range []*conn{nr, rd, hl} {
		answer(c)
	}
	step := func(d time.Duration) {
		now.Add(int64(d))
		s.clock.Store(now.Load())
		rd.wrote(1, wire.HeaderSize) // the reading client's write completes,
		answer(rd)                   // and its next answer is queued
	}
	if s.evict() { // the first look
		t.Fatal("evicted at the first look at the connections")
	}
	step(maxStall / 2)
	if s.evict() {
		t.Fatal("evicted a connection stalled for less than maxStall")
	}
	step(maxStall / 2)
	s.reapOnce(now.Load(), time.Hour) // the reaper's looks count too
	step(maxStall / 4)
	if !s.evict() {
		t.Fatal("a connection stalled for more than maxStall with unread bytes in the kernel was not evicted")
	}
	if !neverReads.closed || reads.closed || hostLate.closed {
		t.Fatalf("closed: never reads %v, reads %v, read everything %v; want only the first", neverReads.closed, reads.closed, hostLate.closed)
	}
	// A quiet connection goes before a stalled one.
	delete(s.conns, nr)
	hostLate.unreadN = 1
	q := &fakeTC{}
	s.newConn(q, 0, false)
	step(maxStall)
	step(maxStall)
	if !s.evict() || !q.closed || hostLate.closed {
		t.Fatalf("evicted quiet %v, stalled %v: want the quiet connection", q.closed, hostLate.closed)
	}
}

// sizesTC is a fakeTC that records the size of every write.
type sizesTC struct {
	fakeTC
	mu    sync.Mutex
	sizes []int
}

func (f *sizesTC) writeAll(b []byte) (int, error) {
	f.mu.Lock()
	f.sizes = append(f.sizes, len(b))
	f.mu.Unlock()
	return len(b), nil
}

// TestPoliteAnswerIsWrittenWithoutYielding: a response on a connection with
// more than politeAt requests in flight yields the processor before its
// write, so an answer about to be queued (here: a runnable goroutine's)
// shares the write; on a polite connection (an allocation and a release in
// flight) it is written at once, alone. On one processor (GOMAXPROCS 1) the
// other goroutine runs only when the writer yields or blocks. (Before, a
// polite client's answer yielded whenever its release was in flight: on a
// daemon busy with a burst a trip to the back of the scheduler's queue,
// 0.2-0.4 ms at the median, bench/results/burst.txt set 7.)
func TestPoliteAnswerIsWrittenWithoutYielding(t *testing.T) {
	frame := make([]byte, 40)
	for _, tc := range []struct {
		name       string
		inFlight   int32
		wantFrames int
	}{
		{"busy connection", politeAt + 1, 2},
		{"polite connection", politeAt, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// On one processor the other writer runs only when this one
			// yields, blocks, or is preempted (10 ms slices, reached
			// under load or -race): a yield shows every time, a
			// preemption rarely, so five tries and one pass is enough.
			var failed string
			for try := 0; try < 5; try++ {
				if failed = politeTry(t, frame, tc.inFlight, tc.wantFrames); failed == "" {
					return
				}
				t.Logf("try %d: %s", try, failed)
			}
			t.Fatal(failed)
		})
	}
}

// politeTry writes two answers on a connection with inFlight requests in
// flight, on one processor, and says what is wrong with the first write
// ("" if it carried wantFrames frames).
func politeTry(t *testing.T, frame []byte, inFlight int32, wantFrames int) string {
	s := &Server{log: zaptest.NewLogger(t), conns: map[*conn]struct{}{}}
	s.lim.Store(&serverLimits{maxConnUnanswered: 8, maxConnQueued: 1 << 20})
	ftc := &sizesTC{}
	c := s.newConn(ftc, 0, false)
	c.inFlight.Store(inFlight)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	done := make(chan struct{})
	go func() { // runnable, but runs only when this goroutine yields or blocks
		defer close(done)
		c.write(frame)
	}()
	c.write(frame)
	<-done
	ftc.mu.Lock()
	defer ftc.mu.Unlock()
	if got := ftc.sizes[0] / len(frame); got != wantFrames {
		return fmt.Sprintf("writes %v (frames of %d bytes): first write carried %d frames, want %d", ftc.sizes, len(frame), got, wantFrames)
	}
	return ""
}
