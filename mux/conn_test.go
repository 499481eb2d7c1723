package mux

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/internal/testsupport"
	"switchboard/wire"
)

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	for _, c := range []Config{{MaxFrame: 3}, {MaxInFlight: -1}, {WriteTimeout: -time.Second}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: want an error", c)
		}
	}
	if got := (Config{}).withDefaults(); got != DefaultConfig() {
		t.Errorf("withDefaults = %+v, want %+v", got, DefaultConfig())
	}
}

func TestConcurrentCalls(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			c, _ := newConn(t, tr.pair, Config{}, echo)
			const workers, calls = 32, 200
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range calls {
						key := uint64(w)<<32 | uint64(i)
						rep, err := c.Call(context.Background(), wire.OpLookup, &wire.KeyRequest{Key: key})
						if err != nil {
							errs <- err
							return
						}
						var kr wire.KeyRequest
						err = kr.Decode(rep.Payload)
						if rep.Header.Op != wire.OpLookup || !rep.Header.IsResponse() {
							err = fmt.Errorf("bad header %+v", rep.Header)
						}
						rep.Release()
						if err == nil && kr.Key != key {
							err = fmt.Errorf("got key %x, want %x", kr.Key, key)
						}
						if err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if n := c.InFlight(); n != 0 {
				t.Errorf("InFlight = %d after all calls returned", n)
			}
			if !c.Alive() || c.Err() != nil {
				t.Errorf("Alive = %v, Err = %v", c.Alive(), c.Err())
			}
		})
	}
}

func TestOutOfOrderReplies(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			const n = 16
			var (
				mu      sync.Mutex
				held    []wire.Header
				payload = map[uint64][]byte{}
			)
			// Hold n requests, then answer them newest first.
			c, _ := newConn(t, tr.pair, Config{}, func(p *peer, h wire.Header, pl []byte) {
				mu.Lock()
				defer mu.Unlock()
				held = append(held, h)
				payload[h.ID] = bytes.Clone(pl)
				if len(held) < n {
					return
				}
				for i := len(held) - 1; i >= 0; i-- {
					_ = p.reply(held[i], payload[held[i].ID])
				}
			})
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rep, err := c.Call(context.Background(), wire.OpRelease, &wire.KeyRequest{Key: uint64(i)})
					if err != nil {
						t.Error(err)
						return
					}
					defer rep.Release()
					if got := binary.BigEndian.Uint64(rep.Payload); got != uint64(i) {
						t.Errorf("call %d got the reply of %d", i, got)
					}
				}()
			}
			within(t, 10*time.Second, "out-of-order calls", wg.Wait)
		})
	}
}

func TestErrorResponse(t *testing.T) {
	c, _ := newConn(t, transports[0].pair, Config{}, func(p *peer, h wire.Header, pl []byte) {
		_ = p.replyErr(h, wire.StatusNotFound, "no such key")
	})
	rep, err := c.Call(context.Background(), wire.OpLookup, &wire.KeyRequest{Key: 1})
	if rep != nil {
		t.Fatal("reply on an error response")
	}
	var re *wire.RemoteError
	if !errors.As(err, &re) || !errors.Is(err, wire.StatusNotFound) || re.Message != "no such key" {
		t.Fatalf("err = %#v, want a RemoteError NOT_FOUND", err)
	}
	if !Sent(err) || errors.Is(err, ErrUnknownOutcome) {
		t.Errorf("Sent = %v, unknown = %v", Sent(err), errors.Is(err, ErrUnknownOutcome))
	}
	if !c.Alive() {
		t.Error("an error response killed the connection")
	}
}

func TestTimeoutThenLateReply(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			hold := make(chan wire.Header, 1)
			c, p := newConn(t, tr.pair, Config{}, func(p *peer, h wire.Header, pl []byte) {
				if h.Op == wire.OpPing {
					_ = p.reply(h, nil)
					return
				}
				hold <- h // never answered now
			})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			_, err := c.Call(ctx, wire.OpAllocate, nil)
			if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrUnknownOutcome) || !Sent(err) {
				t.Fatalf("err = %v: want DeadlineExceeded and ErrUnknownOutcome", err)
			}
			var te interface{ Timeout() bool }
			if !errors.As(err, &te) || !te.Timeout() {
				t.Errorf("%v is not a Timeout() error", err)
			}
			if c.InFlight() != 0 {
				t.Errorf("InFlight = %d after the timeout", c.InFlight())
			}
			// The late reply is dropped and counted; the conn lives on.
			if err := p.reply(<-hold, []byte("late")); err != nil {
				t.Fatal(err)
			}
			rep, err := c.Call(context.Background(), wire.OpPing, nil)
			if err != nil {
				t.Fatalf("call after a late reply: %v", err)
			}
			rep.Release()
			if got := c.LateReplies(); got != 1 {
				t.Errorf("LateReplies = %d, want 1", got)
			}
		})
	}
}

func TestContextDoneBeforeSend(t *testing.T) {
	var seen atomic.Int32
	c, _ := newConn(t, transports[0].pair, Config{}, func(p *peer, h wire.Header, pl []byte) {
		seen.Add(1)
		_ = p.reply(h, nil)
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Call(ctx, wire.OpPing, nil)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnknownOutcome) || Sent(err) {
		t.Fatalf("err = %v: want a bare context.Canceled", err)
	}
	rep, err := c.Call(context.Background(), wire.OpPing, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := rep.Header.ID
	rep.Release()
	if id != 1 || seen.Load() != 1 {
		t.Errorf("the cancelled call reached the peer: id %d, peer saw %d", id, seen.Load())
	}
}

// TestPeerCloseFailsInFlight: the peer closing fails every in-flight call at
// once with ErrConnLost, although none has a deadline that would end it.
func TestPeerCloseFailsInFlight(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			const n = 64
			var received atomic.Int32
			allIn := make(chan struct{})
			var closes atomic.Int32
			var closeCause error
			cc, sc := tr.pair(t)
			p := newPeer(sc)
			srvDone := make(chan struct{})
			go func() {
				defer close(srvDone)
				for {
					if _, _, err := p.read(); err != nil {
						return
					}
					if received.Add(1) == n {
						close(allIn)
					}
				}
			}()
			c := New(cc, Config{}, WithOnClose(func(err error) { closes.Add(1); closeCause = err }))
			defer func() { c.Close(); sc.Close(); <-srvDone }()

			errs := make(chan error, n)
			for range n {
				go func() {
					_, err := c.Call(context.Background(), wire.OpAllocate, nil)
					errs <- err
				}()
			}
			<-allIn
			start := time.Now()
			sc.Close()
			for range n {
				select {
				case err := <-errs:
					if !errors.Is(err, ErrConnLost) || !errors.Is(err, ErrUnknownOutcome) || !Sent(err) {
						t.Fatalf("in-flight call: %v, want ErrConnLost", err)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("in-flight calls were not failed by the peer's close")
				}
			}
			t.Logf("%d in-flight calls failed %v after the peer closed", n, time.Since(start))
			if c.Alive() {
				t.Error("Alive after the peer closed")
			}
			c.Close() // waits for the reader, hence for OnClose
			if closes.Load() != 1 || !isNetClosed(closeCause) {
				t.Errorf("OnClose ran %d times with %v", closes.Load(), closeCause)
			}
			_, err := c.Call(context.Background(), wire.OpPing, nil)
			if !errors.Is(err, ErrClosed) || Sent(err) || !isNetClosed(err) {
				t.Errorf("call on a dead conn: %v, want ErrClosed wrapping the cause", err)
			}
		})
	}
}

func TestOversizeFrameKillsConn(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			c, _ := newConn(t, tr.pair, Config{MaxFrame: 1024}, func(p *peer, h wire.Header, pl []byte) {
				b, _ := wire.BeginFrame(nil, h.Response(wire.StatusOK))
				binary.BigEndian.PutUint32(b, 1<<20) // claims 1 MiB, sends nothing more
				_ = p.writeRaw(b)
			})
			_, err := c.Call(context.Background(), wire.OpPing, nil)
			if !errors.Is(err, ErrConnLost) || !errors.Is(err, wire.ErrFrameTooLarge) {
				t.Fatalf("err = %v, want ErrConnLost caused by ErrFrameTooLarge", err)
			}
			if c.Alive() || !errors.Is(c.Err(), wire.ErrFrameTooLarge) {
				t.Errorf("Alive = %v, Err = %v", c.Alive(), c.Err())
			}
		})
	}
}

func TestProtocolViolations(t *testing.T) {
	cases := map[string]func(p *peer, h wire.Header){
		"request frame": func(p *peer, h wire.Header) {
			b, _ := wire.AppendFrame(nil, wire.Header{Op: wire.OpPing, ID: 7}, nil, 1<<20)
			_ = p.writeRaw(b)
		},
		"never issued id": func(p *peer, h wire.Header) {
			h.ID += 100
			_ = p.reply(h, nil)
		},
		"wrong op": func(p *peer, h wire.Header) {
			h.Op = wire.OpRelease
			_ = p.reply(h, nil)
		},
		"bad version": func(p *peer, h wire.Header) {
			b, _ := wire.AppendFrame(nil, h.Response(wire.StatusOK), nil, 1<<20)
			b[4] = 9
			_ = p.writeRaw(b)
		},
	}
	for name, misbehave := range cases {
		t.Run(name, func(t *testing.T) {
			c, _ := newConn(t, transports[0].pair, Config{}, func(p *peer, h wire.Header, pl []byte) { misbehave(p, h) })
			_, err := c.Call(context.Background(), wire.OpPing, nil)
			if !errors.Is(err, ErrConnLost) {
				t.Fatalf("err = %v, want ErrConnLost", err)
			}
			if c.Alive() {
				t.Error("conn alive after a protocol violation")
			}
			if name != "bad version" && !errors.Is(c.Err(), ErrProtocol) {
				t.Errorf("Err = %v, want ErrProtocol", c.Err())
			}
		})
	}
}

func TestBusy(t *testing.T) {
	release := make(chan struct{})
	c, _ := newConn(t, transports[1].pair, Config{MaxInFlight: 2}, func(p *peer, h wire.Header, pl []byte) {
		go func() {
			<-release
			_ = p.reply(h, nil)
		}()
	})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := c.Call(context.Background(), wire.OpPing, nil)
			if err != nil {
				t.Error(err)
				return
			}
			rep.Release()
		}()
	}
	testsupport.WaitFor(t, "the condition", func() bool { return c.InFlight() == 2 })
	if _, err := c.Call(context.Background(), wire.OpPing, nil); !errors.Is(err, ErrBusy) || Sent(err) {
		t.Fatalf("third call: %v, want ErrBusy", err)
	}
	c.SetMaxInFlight(3)
	wg.Add(1)
	go func() {
		defer wg.Done()
		rep, err := c.Call(context.Background(), wire.OpPing, nil)
		if err != nil {
			t.Error(err)
			return
		}
		rep.Release()
	}()
	testsupport.WaitFor(t, "the condition", func() bool { return c.InFlight() == 3 })
	close(release)
	within(t, 10*time.Second, "held calls", wg.Wait)
}

func TestEncodeTooLarge(t *testing.T) {
	c, _ := newConn(t, transports[0].pair, Config{MaxFrame: 128}, echo)
	_, err := c.Call(context.Background(), wire.OpAllocate, raw(make([]byte, 200)))
	if !errors.Is(err, wire.ErrFrameTooLarge) || Sent(err) {
		t.Fatalf("err = %v, want ErrFrameTooLarge, not sent", err)
	}
	// The failed frame left nothing behind: the next call works.
	rep, err := c.Call(context.Background(), wire.OpAllocate, raw("ok"))
	if err != nil || string(rep.Payload) != "ok" {
		t.Fatalf("next call: %v", err)
	}
	rep.Release()
}

// TestWriteTimeoutKillsConn: a peer that never reads cannot block callers
// forever: the write deadline kills the connection.
func TestWriteTimeoutKillsConn(t *testing.T) {
	cc, sc := transports[0].pair(t) // net.Pipe: no buffering, a write waits for a reader
	defer sc.Close()
	c := New(cc, Config{WriteTimeout: 30 * time.Millisecond})
	defer c.Close()
	_, err := c.Call(context.Background(), wire.OpPing, nil)
	// Nothing was written (net.Pipe takes no byte without a reader): the
	// call is not sent, and says why.
	if !errors.Is(err, ErrClosed) || Sent(err) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err = %v, want ErrClosed (not sent) caused by the write deadline", err)
	}
	if c.Alive() {
		t.Error("alive after a write timeout")
	}
}

func TestCloseIdempotent(t *testing.T) {
	var closes atomic.Int32
	cc, sc := transports[0].pair(t)
	serve(t, sc, echo)
	c := New(cc, Config{}, WithOnClose(func(err error) {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("OnClose cause %v, want ErrClosed", err)
		}
		closes.Add(1)
	}))
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); c.Close() }()
	}
	wg.Wait()
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if closes.Load() != 1 {
		t.Errorf("OnClose ran %d times", closes.Load())
	}
	if _, err := c.Call(context.Background(), wire.OpPing, nil); !errors.Is(err, ErrClosed) || Sent(err) {
		t.Errorf("call after Close: %v", err)
	}
}

func TestCloseWithErrorFailsInFlight(t *testing.T) {
	errHB := errors.New("heartbeat missed")
	c, _ := newConn(t, transports[1].pair, Config{}, func(*peer, wire.Header, []byte) {})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), wire.OpPing, nil)
		errc <- err
	}()
	testsupport.WaitFor(t, "the condition", func() bool { return c.InFlight() == 1 })
	c.CloseWithError(errHB)
	err := <-errc
	if !errors.Is(err, ErrConnLost) || !errors.Is(err, errHB) {
		t.Fatalf("err = %v", err)
	}
	if !errors.Is(c.Err(), errHB) {
		t.Errorf("Err = %v", c.Err())
	}
	if _, err := c.Call(context.Background(), wire.OpPing, nil); !errors.Is(err, ErrClosed) || !errors.Is(err, errHB) {
		t.Errorf("call after death: %v", err)
	}
}

// TestCallsRaceClose: callers racing a Close get only ErrClosed or
// ErrConnLost (never a hang, a wrong reply or a leaked waiter).
func TestCallsRaceClose(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			c, _ := newConn(t, tr.pair, Config{}, echo)
			var wg sync.WaitGroup
			var ok atomic.Int64
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						rep, err := c.Call(context.Background(), wire.OpPing, nil)
						switch {
						case err == nil:
							rep.Release()
							ok.Add(1)
						case errors.Is(err, ErrClosed) && errors.Is(err, ErrConnLost):
							t.Errorf("%v matches both ErrClosed and ErrConnLost", err)
							return
						case errors.Is(err, ErrClosed):
							if Sent(err) {
								t.Errorf("Sent(%v)", err)
							}
							return
						case errors.Is(err, ErrConnLost):
						default:
							t.Errorf("unexpected error %v", err)
							return
						}
					}
				}()
			}
			testsupport.WaitFor(t, "the condition", func() bool { return ok.Load() > 100 })
			c.Close()
			within(t, 10*time.Second, "callers after Close", wg.Wait)
			if c.InFlight() != 0 {
				t.Errorf("InFlight = %d", c.InFlight())
			}
		})
	}
}

// gatedConn blocks every Write until the test lets it through, or until
// stop is closed (so that a failing test's Close does not wait forever for
// a write parked at the gate).
type gatedConn struct {
	net.Conn
	entered chan struct{} // a Write is waiting
	gate    chan struct{} // lets one Write through
	stop    chan struct{} // lets every Write through
}

func (g *gatedConn) Write(b []byte) (int, error) {
	select {
	case g.entered <- struct{}{}:
		select {
		case <-g.gate:
		case <-g.stop:
		}
	case <-g.stop:
	}
	return g.Conn.Write(b)
}

// TestFlusherHandsOff: a caller writes at most callerFlushRounds batches for
// others, then hands the rest to a helper and returns with its own reply.
func TestFlusherHandsOff(t *testing.T) {
	cc, sc := tcpPair(t)
	serve(t, sc, echo)
	g := &gatedConn{Conn: cc, entered: make(chan struct{}), gate: make(chan struct{}), stop: make(chan struct{})}
	c := New(g, Config{})
	defer c.Close()
	defer close(g.stop) // first: no write stays parked at the gate

	type res struct {
		i   int
		err error
	}
	first := make(chan res, 1)
	others := make(chan res, callerFlushRounds)
	call := func(i int) {
		rep, err := c.Call(context.Background(), wire.OpLookup, &wire.KeyRequest{Key: uint64(i)})
		if err == nil {
			if binary.BigEndian.Uint64(rep.Payload) != uint64(i) {
				err = fmt.Errorf("call %d got another reply", i)
			}
			rep.Release()
		}
		if i == 0 {
			first <- res{i, err}
		} else {
			others <- res{i, err}
		}
	}
	go call(0) // becomes the flusher
	<-g.entered
	for i := 1; i <= callerFlushRounds; i++ {
		go call(i)                                            // appends while the flusher is in Write
		testsupport.WaitFor(t, "the condition", func() bool { // its frame is pending
			c.mu.Lock()
			defer c.mu.Unlock()
			return len(c.pending) > 0
		})
		g.gate <- struct{}{} // finish the current write; the flusher takes the next batch
		if i < callerFlushRounds {
			<-g.entered
		}
	}
	// Call 0 has written callerFlushRounds batches and one more is pending.
	// Its own reply came long ago: it must hand off and return now, while
	// the helper's write waits at the gate (entered is unbuffered: the
	// helper arriving there first does not hold call 0 back). Had call 0
	// kept flushing, it would itself be parked at the gate and never return.
	select {
	case r := <-first:
		if r.err != nil {
			t.Fatal(r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first caller kept flushing instead of handing off")
	}
	<-g.entered // the helper's write
	g.gate <- struct{}{}
	for range callerFlushRounds {
		if r := <-others; r.err != nil {
			t.Fatal(r.err)
		}
	}
}

// TestConcurrentCallersShareWrites: callers that run at the same time share
// write syscalls (the flusher yields once before writing when it is not
// alone), and a lone caller writes each frame at once, by itself.
func TestConcurrentCallersShareWrites(t *testing.T) {
	const callers, perCaller = 8, 200
	cc, sc := tcpPair(t)
	done := make(chan struct{})
	go func() { defer close(done); echoServer(sc) }()
	defer func() { sc.Close(); <-done }()
	wc := &writeCounter{Conn: cc}
	c := New(wc, Config{})
	defer c.Close()

	call := func(key uint64) error {
		rep, err := c.Call(context.Background(), wire.OpLookup, &wire.KeyRequest{Key: key})
		if err != nil {
			return err
		}
		defer rep.Release()
		if got := binary.BigEndian.Uint64(rep.Payload); got != key {
			return fmt.Errorf("call %d got the reply to %d", key, got)
		}
		return nil
	}
	for i := range uint64(10) {
		if err := call(i); err != nil {
			t.Fatal(err)
		}
	}
	if n := wc.writes.Load(); n != 10 {
		t.Fatalf("a lone caller made %d writes for 10 calls, want 10", n)
	}

	wc.writes.Store(0)
	var wg sync.WaitGroup
	for g := range uint64(callers) {
		wg.Go(func() {
			for i := range uint64(perCaller) {
				if err := call(g<<32 | i); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	within(t, 30*time.Second, "concurrent calls", wg.Wait)
	// Without the yield nearly every call here is one write (measured
	// ~0.99 per call); with it ~0.1-0.3. The bound only catches combining
	// that stopped working.
	n, total := wc.writes.Load(), int64(callers*perCaller)
	t.Logf("%d concurrent calls, %d writes", total, n)
	if n > total*3/4 {
		t.Errorf("%d concurrent calls made %d writes, want at most 3/4 as many", total, n)
	}
}

// writeSizes records the size of every Write.
type writeSizes struct {
	net.Conn
	mu    sync.Mutex
	sizes []int
}

func (w *writeSizes) Write(b []byte) (int, error) {
	w.mu.Lock()
	w.sizes = append(w.sizes, len(b))
	w.mu.Unlock()
	return w.Conn.Write(b)
}

func (w *writeSizes) written() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.sizes)
}

// TestCallNowDoesNotYield: with another call in flight, a Call that becomes
// the flusher yields the processor before writing, so a caller that is
// runnable then appends its frame and both go out in one write; a CallNow
// writes its frame at once, alone. Run on one processor (GOMAXPROCS 1) so
// that the other caller can only run when the first one yields or blocks.
// (Before CallNow a polite client's RESERVE always yielded on a tier
// connection busy with a burst: a trip to the back of the scheduler's queue,
// 0.3-0.5 ms at the median on a loaded daemon, bench/results/burst.txt
// set 7.)
func TestCallNowDoesNotYield(t *testing.T) {
	frame, err := wire.AppendFrame(nil, wire.Header{Op: wire.OpLookup, ID: 1}, &wire.KeyRequest{Key: 1}, wire.DefaultMaxFrame)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		now         bool
		wantFrames  int // in the write carrying the first caller's frame
		description string
	}{
		{"Call", false, 2, "a Call yields and shares its write"},
		{"CallNow", true, 1, "a CallNow writes its frame alone, at once"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// On one processor the other caller runs only when the first
			// yields, blocks, or is preempted; the scheduler preempts a
			// goroutine that ran 10 ms, which a loaded machine (or the race
			// detector) can reach mid-call. A yield shows every time, a
			// preemption rarely: five tries, one pass is enough.
			var failed string
			for try := 0; try < 5; try++ {
				if failed = func() string {
					cc, sc := tcpPair(t)
					held := make(chan struct{})
					serve(t, sc, func(p *peer, h wire.Header, pl []byte) {
						if binary.BigEndian.Uint64(pl) == 999 {
							go func() { <-held; _ = p.reply(h, pl) }()
							return
						}
						_ = p.reply(h, pl)
					})
					ws := &writeSizes{Conn: cc}
					c := New(ws, Config{})
					defer c.Close()
					// A call in flight, so the connection is not a lone caller's.
					heldDone := make(chan error, 1)
					go func() {
						rep, err := c.Call(context.Background(), wire.OpLookup, &wire.KeyRequest{Key: 999})
						rep.Release()
						heldDone <- err
					}()
					testsupport.WaitFor(t, "the held call written", func() bool { return len(ws.written()) == 1 })

					defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
					other := make(chan error, 1)
					go func() { // runnable, but runs only when this goroutine yields or blocks
						rep, err := c.Call(context.Background(), wire.OpLookup, &wire.KeyRequest{Key: 2})
						rep.Release()
						other <- err
					}()
					call := c.Call
					if tc.now {
						call = c.CallNow
					}
					rep, err := call(context.Background(), wire.OpLookup, &wire.KeyRequest{Key: 1})
					if err != nil {
						t.Fatal(err)
					}
					rep.Release()
					if err := <-other; err != nil {
						t.Fatal(err)
					}
					close(held)
					if err := <-heldDone; err != nil {
						t.Fatal(err)
					}
					sizes := ws.written()
					if got := sizes[1] / len(frame); got != tc.wantFrames || sizes[1]%len(frame) != 0 {
						return fmt.Sprintf("writes %v (frames of %d bytes): the first caller's write carried %d bytes, want %d frames: %s", sizes, len(frame), sizes[1], tc.wantFrames, tc.description)
					}
					return ""
				}(); failed == "" {
					return
				}
				t.Logf("try %d: %s", try, failed)
			}
			t.Fatal(failed)
		})
	}
}
