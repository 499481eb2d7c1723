package telsim

import (
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"switchboard/internal/clock"
)

// retryInterval is how often the server tries to listen again when it should
// be up (fault none after down, flap's up phase) but the address was busy.
const retryInterval = 100 * time.Millisecond

// Server is a simulated telephony server. All its methods are safe for
// concurrent use.
//
// Goroutines: Serve (or the one Start runs it in) owns the listener and is
// the only goroutine that opens or closes it; it starts one accept goroutine
// per listener and one goroutine per connection, and each connection starts
// one goroutine per delayed reply. Close stops all of them and waits.
type Server struct {
	cfg      Config // defaults applied; immutable
	log      *zap.Logger
	clock    Clock
	serverID []byte // reported in HELLO; read-only
	tier     []byte // reported in HELLO; read-only
	tab      *table
	stats    counters

	latency   atomic.Int64 // time.Duration: service latency of data ops
	jitter    atomic.Int64 // time.Duration
	fault     atomic.Pointer[Fault]
	listening atomic.Bool

	rngMu sync.Mutex
	rng   *rand.Rand // guarded by rngMu; seeds connections' generators

	quit      chan struct{} // closed by Close
	closeOnce sync.Once
	ctrl      chan faultReq  // SetFault → the serve loop
	wg        sync.WaitGroup // the serve loop and Start's goroutine
	workers   sync.WaitGroup // accept loops and connections

	mu      sync.Mutex // guards the fields below; never held across I/O
	closed  bool
	serving bool
	down    bool // the listener is deliberately closed (down, flap's down phase)
	addr    net.Addr
	conns   map[*conn]struct{}
}

// faultReq asks the serve loop to apply a fault; the loop answers on reply.
type faultReq struct {
	f     Fault
	reply chan error
}

// New returns a server for cfg (zero fields mean defaults). It starts no
// goroutine: call Serve or Start, then Close.
func New(cfg Config, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	o := options{log: zap.NewNop(), clock: clock.Real{}}
	for _, opt := range opts {
		opt(&o)
	}
	if !o.seeded {
		_, _ = crand.Read(o.seed[:]) // never fails (Go ≥ 1.24)
	}
	rng := rand.New(rand.NewChaCha8(o.seed))
	nonce := rng.Uint32()
	trunk := rng.IntN(10000)
	s := &Server{
		cfg:      cfg,
		log:      o.log.With(zap.String("tier", cfg.Tier), zap.String("server", cfg.ServerID)),
		clock:    o.clock,
		serverID: []byte(cfg.ServerID),
		tier:     []byte(cfg.Tier),
		tab: newTable(cfg.Capacity, fmt.Sprintf("br-%08x-", nonce),
			fmt.Sprintf("%s%04d", cfg.NumberPrefix, trunk),
			fmt.Sprintf("%s%04d", cfg.TollFreePrefix, trunk),
			cfg.TombstoneTTL, cfg.MaxTombstones, unixNow(o.clock)),
		rng:   rng,
		quit:  make(chan struct{}),
		ctrl:  make(chan faultReq),
		conns: make(map[*conn]struct{}),
	}
	s.latency.Store(int64(cfg.Latency))
	s.jitter.Store(int64(cfg.Jitter))
	s.fault.Store(&Fault{})
	return s, nil
}

// Serve serves ln until Close, then returns nil (ErrClosed if the server was
// already closed, ErrServing if it already serves). It takes ownership of ln:
// the down and flap faults close it and listen again on the same address.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.register(ln); err != nil {
		return err
	}
	defer s.wg.Done()
	s.run(ln)
	return nil
}

// Start listens on addr over TCP (e.g. "127.0.0.1:0") and serves in a
// goroutine owned by the server until Close. It returns the bound address.
func (s *Server) Start(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("telsim: listen: %w", err)
	}
	if err := s.register(ln); err != nil {
		return nil, err
	}
	go func() {
		defer s.wg.Done()
		s.run(ln)
	}()
	return ln.Addr(), nil
}

// register marks the server as serving ln and counts the serve loop in wg.
// On failure it closes ln.
func (s *Server) register(ln net.Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.serving {
		_ = ln.Close()
		if s.closed {
			return ErrClosed
		}
		return ErrServing
	}
	s.serving = true
	s.addr = ln.Addr()
	s.wg.Add(1)
	return nil
}

// Addr returns the address served (the same across down and up), or nil
// before Serve or Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Close stops listening, closes every connection (pending delayed replies
// are dropped) and waits for every goroutine of the server. It is idempotent
// and always returns nil.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.closeOnce.Do(func() { close(s.quit) })
	s.wg.Wait()
	s.workers.Wait()
	return nil
}

// SetLatency sets the service latency and jitter of RESERVE, UPDATE, RELEASE
// and LOOKUP replies from now on; negative values mean 0.
func (s *Server) SetLatency(d, jitter time.Duration) {
	s.latency.Store(int64(max(d, 0)))
	s.jitter.Store(int64(max(jitter, 0)))
}

// SetCapacity sets the maximum number of live reservations from now on.
// n ≤ 0 means 0 (every RESERVE answered CAPACITY); values above
// math.MaxUint32 are clamped. Lowering it below the live count releases
// nothing: new reservations are refused until enough are released.
func (s *Server) SetCapacity(n int) {
	s.tab.capacity.Store(min(max(int64(n), 0), math.MaxUint32))
}

// Fault returns the fault in force, with defaults filled in.
func (s *Server) Fault() Fault { return *s.fault.Load() }

// SetFault injects f (replacing the previous fault); ModeNone restores
// normal service, listening again on the same address if needed. It returns
// once the listener and the connections reflect f, an error wrapping
// ErrBadFault for an invalid f, ErrClosed after Close, or the error of
// listening again (the server keeps retrying every 100 ms in that case).
func (s *Server) SetFault(f Fault) error {
	f, err := f.normalize()
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if !s.serving {
		s.fault.Store(&f) // the serve loop applies it when it starts
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	req := faultReq{f: f, reply: make(chan error, 1)}
	select {
	case s.ctrl <- req:
	case <-s.quit:
		return ErrClosed
	}
	select {
	case err := <-req.reply:
		return err
	case <-s.quit:
		return ErrClosed
	}
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Tier:         s.cfg.Tier,
		ServerID:     s.cfg.ServerID,
		Fault:        *s.fault.Load(),
		Listening:    s.listening.Load(),
		Reservations: s.tab.live.Load(),
		Capacity:     s.tab.capacity.Load(),
	}
	s.stats.fill(&st)
	return st
}

// newRand returns a generator for one connection, seeded from the server's.
func (s *Server) newRand() *rand.Rand {
	var seed [32]byte
	s.rngMu.Lock()
	for i := 0; i < len(seed); i += 8 {
		binary.LittleEndian.PutUint64(seed[i:], s.rng.Uint64())
	}
	s.rngMu.Unlock()
	return rand.New(rand.NewChaCha8(seed))
}

// loop is the serve loop's state; only the serve loop touches it.
type loop struct {
	s       *Server
	network string
	addr    string
	ln      net.Listener // nil while down

	flapT  Timer
	flapOn bool
	flapUp bool
	period time.Duration

	retryT  Timer
	retryOn bool
}

// run is the serve loop: it owns the listener and applies faults, flap
// phases and listen retries one at a time until Close.
func (s *Server) run(ln net.Listener) {
	lp := &loop{s: s, network: ln.Addr().Network(), addr: ln.Addr().String(), ln: ln}
	s.listening.Store(true)
	s.startAccept(ln)
	if f := *s.fault.Load(); f.Mode != ModeNone {
		if err := lp.apply(f); err != nil {
			s.log.Warn("initial fault", zap.Error(err))
		}
	}
	s.log.Info("telsim serving", zap.String("addr", lp.addr))
	for {
		select {
		case <-s.quit:
			lp.shutdown()
			return
		case req := <-s.ctrl:
			req.reply <- lp.apply(req.f)
		case <-lp.flapC():
			lp.flapTick()
		case <-lp.retryC():
			lp.retryOn = false
			if err := lp.up(); err != nil {
				s.log.Warn("listen again failed", zap.String("addr", lp.addr), zap.Error(err))
			}
		}
	}
}

func (lp *loop) flapC() <-chan time.Time {
	if !lp.flapOn {
		return nil
	}
	return lp.flapT.C()
}

func (lp *loop) retryC() <-chan time.Time {
	if !lp.retryOn {
		return nil
	}
	return lp.retryT.C()
}

// apply puts f in force: it stores it (under mu, so that accepts see it
// atomically with the connection set), then drops connections and closes or
// reopens the listener as the mode requires.
func (lp *loop) apply(f Fault) error {
	s := lp.s
	lp.stopFlap()
	s.mu.Lock()
	s.fault.Store(&f)
	s.mu.Unlock()
	s.log.Info("fault set", zap.Stringer("fault", f))
	switch f.Mode {
	case ModeDown:
		lp.down()
		return nil
	case ModeFlap:
		lp.down()
		lp.flapUp = false
		lp.period = f.Period
		lp.armFlap()
		return nil
	case ModeRefuse:
		s.dropConns(false)
	case ModeReset:
		s.dropConns(true)
	}
	return lp.up()
}

// flapTick switches between flap's down and up phases. The next switch is
// armed first, so the period runs from the tick and whoever observes the new
// phase knows the next one is scheduled.
func (lp *loop) flapTick() {
	lp.flapOn = false
	lp.armFlap()
	lp.flapUp = !lp.flapUp
	if lp.flapUp {
		if err := lp.up(); err != nil {
			lp.s.log.Warn("listen again failed", zap.String("addr", lp.addr), zap.Error(err))
		}
	} else {
		lp.down()
	}
}

func (lp *loop) armFlap() {
	if lp.flapT == nil {
		lp.flapT = lp.s.clock.NewTimer(lp.period)
	} else {
		lp.flapT.Reset(lp.period)
	}
	lp.flapOn = true
}

func (lp *loop) stopFlap() {
	if lp.flapOn {
		lp.flapT.Stop()
		lp.flapOn = false
	}
}

func (lp *loop) stopRetry() {
	if lp.retryOn {
		lp.retryT.Stop()
		lp.retryOn = false
	}
}

// down stops listening and closes every connection.
func (lp *loop) down() {
	s := lp.s
	lp.stopRetry()
	s.mu.Lock()
	s.down = true
	s.mu.Unlock()
	if lp.ln != nil {
		_ = lp.ln.Close()
		lp.ln = nil
		s.listening.Store(false)
		s.stats.downs.Add(1)
	}
	s.dropConns(false)
}

// up listens again on the same address if needed. On failure it arms the
// retry timer.
func (lp *loop) up() error {
	s := lp.s
	s.mu.Lock()
	s.down = false
	s.mu.Unlock()
	if lp.ln != nil {
		return nil
	}
	ln, err := net.Listen(lp.network, lp.addr)
	if err != nil {
		if lp.retryT == nil {
			lp.retryT = s.clock.NewTimer(retryInterval)
		} else {
			lp.retryT.Reset(retryInterval)
		}
		lp.retryOn = true
		return fmt.Errorf("telsim: listen again on %s: %w", lp.addr, err)
	}
	lp.stopRetry()
	lp.ln = ln
	s.listening.Store(true)
	s.stats.relistens.Add(1)
	s.startAccept(ln)
	return nil
}

// shutdown closes the listener and every connection and waits for the
// accept loops and connections (Close has set closed, so no new one is
// admitted).
func (lp *loop) shutdown() {
	lp.stopFlap()
	lp.stopRetry()
	if lp.ln != nil {
		_ = lp.ln.Close()
		lp.ln = nil
	}
	lp.s.listening.Store(false)
	lp.s.dropConns(false)
	lp.s.workers.Wait()
	lp.s.log.Info("telsim stopped", zap.String("addr", lp.addr))
}

// dropConns closes (or resets) every open connection.
func (s *Server) dropConns(reset bool) {
	s.mu.Lock()
	victims := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		victims = append(victims, c)
	}
	s.mu.Unlock()
	for _, c := range victims {
		if reset {
			s.stats.reset.Add(1)
			c.reset()
		} else {
			c.close()
		}
	}
}

func (s *Server) startAccept(ln net.Listener) {
	s.workers.Add(1)
	go s.acceptLoop(ln)
}

// acceptLoop accepts on ln until it is closed. Other accept errors (EMFILE,
// ENFILE, …) are retried with back-off, like net/http.
func (s *Server) acceptLoop(ln net.Listener) {
	defer s.workers.Done()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Error("accept failed", zap.Error(err), zap.Duration("retry_in", delay))
			t := s.clock.NewTimer(delay)
			select {
			case <-t.C():
			case <-s.quit:
				t.Stop()
				return
			}
			continue
		}
		delay = 0
		s.admit(nc)
	}
}

// admit serves nc, or closes or resets it at once as the fault requires.
func (s *Server) admit(nc net.Conn) {
	c := newConn(s, nc)
	s.mu.Lock()
	mode := s.fault.Load().Mode
	switch {
	case s.closed || s.down || mode == ModeRefuse:
		s.mu.Unlock()
		s.stats.refused.Add(1)
		c.close()
		return
	case mode == ModeReset:
		s.mu.Unlock()
		s.stats.reset.Add(1)
		c.reset()
		return
	}
	s.conns[c] = struct{}{}
	s.workers.Add(1)
	s.mu.Unlock()
	c.init()
	s.stats.conns.Add(1)
	s.stats.connsTotal.Add(1)
	go c.serve()
}

// forget removes a finished connection.
func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.stats.conns.Add(-1)
}
