package pool

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/internal/clock/clocktest"
	"switchboard/internal/testsupport"
	"switchboard/wire"
)

// TestMain checks for leaked goroutines. netpoll's poller goroutines are
// process-global, started on first use and never stopped (docs/architecture.md, "Goroutines and their owners"):
// they are not ours to leak.
func TestMain(m *testing.M) { testsupport.VerifyTestMainNetpoll(m) }

// telServer is a minimal telephony server written with wire: HELLO, TPING
// (PONG carries the number of pings answered as InUse) and RESERVE (the
// bridge id is the key in decimal). Everything else gets UNSUPPORTED.
type telServer struct {
	t    testing.TB
	tier string
	ln   net.Listener
	addr string

	silent atomic.Bool   // stop answering TPING
	flap   atomic.Bool   // close each connection right after its HELLO
	hold   chan struct{} // when set, RESERVE replies wait for it to close

	accepted atomic.Int32
	reserves atomic.Int32
	pings    atomic.Uint32

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	dead   chan struct{} // closed by kill: held replies are dropped
	wg     sync.WaitGroup
}

// startTel listens on addr ("127.0.0.1:0" for a fresh port) and serves until
// kill (registered as cleanup).
func startTel(t testing.TB, addr string) *telServer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &telServer{t: t, tier: "primary-large", ln: ln, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}, dead: make(chan struct{})}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.kill)
	return s
}

func (s *telServer) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.accepted.Add(1)
		go s.serve(nc)
	}
}

// open returns the number of connections the server holds open.
func (s *telServer) open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// kill closes the listener and every connection (a server crash: the
// peers see EOF/RST) and waits for the server's goroutines. Idempotent.
func (s *telServer) kill() {
	s.mu.Lock()
	if !s.closed {
		close(s.dead)
	}
	s.closed = true
	s.ln.Close()
	for nc := range s.conns {
		nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *telServer) serve(nc net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, nc)
		s.mu.Unlock()
		nc.Close()
	}()
	br := bufio.NewReader(nc)
	var (
		buf []byte
		wmu sync.Mutex
		hwg sync.WaitGroup
	)
	defer hwg.Wait()
	send := func(h wire.Header, p wire.Payload) {
		wmu.Lock()
		defer wmu.Unlock()
		b, _ := wire.AppendFrame(nil, h.Response(wire.StatusOK), p, wire.DefaultMaxFrame)
		_, _ = nc.Write(b)
	}
	for {
		h, pl, b, err := wire.ReadFrame(br, buf, wire.DefaultMaxFrame)
		buf = b
		if err != nil {
			return
		}
		switch h.Op {
		case wire.OpHello:
			send(h, &wire.HelloResponse{Server: []byte("tel-" + s.addr), Tier: []byte(s.tier), Load: wire.Load{Capacity: 100}})
			if s.flap.Load() {
				return
			}
		case wire.OpTelPing:
			if !s.silent.Load() {
				send(h, &wire.Load{Capacity: 100, InUse: s.pings.Add(1)})
			}
		case wire.OpReserve:
			var r wire.UpdateRequest
			if err := r.Decode(pl); err != nil {
				wmu.Lock()
				_, _ = nc.Write(wire.AppendError(nil, h, wire.StatusBadRequest, err.Error()))
				wmu.Unlock()
				continue
			}
			s.reserves.Add(1)
			br := &wire.Bridge{ID: strconv.AppendUint(nil, r.Key, 10), Toll: []byte("+1 555 0100")}
			if hold := s.hold; hold != nil {
				hwg.Add(1)
				go func() {
					defer hwg.Done()
					select {
					case <-hold:
						send(h, br)
					case <-s.dead:
					}
				}()
				continue
			}
			send(h, br)
		default:
			wmu.Lock()
			_, _ = nc.Write(wire.AppendError(nil, h, wire.StatusUnsupported, "unsupported"))
			wmu.Unlock()
		}
	}
}

// reserve sends one RESERVE through p and checks the bridge id.
func reserve(ctx context.Context, p *Pool, key uint64) error {
	rep, err := p.RoundTrip(ctx, wire.OpReserve, &wire.UpdateRequest{Key: key, Spec: wire.Spec{Name: []byte("standup"), TimeZone: -1}})
	if err != nil {
		return err
	}
	defer rep.Release()
	var b wire.Bridge
	if err := b.Decode(rep.Payload); err != nil {
		return err
	}
	if got := string(b.ID); got != strconv.FormatUint(key, 10) {
		return &mismatch{got: got, key: key}
	}
	return nil
}

type mismatch struct {
	got string
	key uint64
}

func (m *mismatch) Error() string {
	return "bridge " + m.got + " for key " + strconv.FormatUint(m.key, 10)
}

// testConfig is a pool config for servers with test-friendly backoff.
func testConfig(servers ...string) Config {
	return Config{Tier: "primary-large", Client: "test", Servers: servers, BackoffBase: time.Millisecond, BackoffMax: 10 * time.Millisecond}
}

// newPool starts a pool and shuts it down at cleanup.
func newPool(t testing.TB, cfg Config, opts ...Option) *Pool {
	t.Helper()
	p, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return p
}

func waitReady(t testing.TB, p *Pool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

// newFakeClock returns a clock that moves only when told to.
func newFakeClock() *clocktest.Clock {
	return clocktest.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
}

// waitArmed waits until a channel timer (or, with funcs, an AfterFunc timer)
// is armed exactly d from now.
func waitArmed(t testing.TB, c *clocktest.Clock, d time.Duration, funcs bool) {
	t.Helper()
	testsupport.WaitFor(t, "timer armed at +"+d.String(), func() bool {
		tm, fn := c.Armed()
		if funcs {
			tm = fn
		}
		for _, x := range tm {
			if x == d {
				return true
			}
		}
		return false
	})
}
