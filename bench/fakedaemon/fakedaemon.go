// Package fakedaemon is a small in-memory stand-in for the daemon's
// front-end socket, speaking the real wire protocol on a Unix socket.
//
// Why it exists: the tools that drive the daemon (sbctl, sbbench, the
// benchmarks in bench) must be testable on their own, without the daemon, its
// key store and its telephony tiers. The fake answers every front-end op the
// way the protocol says — PING, ALLOCATE (counter keys, one tier, idempotency
// tokens replayed), LOOKUP, UPDATE and RELEASE (NOT_FOUND for unknown keys) —
// and can be told to answer late (to show up as latency in a load test) or
// with an error status (to exercise error accounting).
//
// It is a test fixture, not a model of the daemon's performance: never
// benchmark against it and quote the numbers as the daemon's.
package fakedaemon

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"switchboard/wire"
)

// Defaults of Config.
const (
	DefaultTier     = "primary-large"
	DefaultFirstKey = 100000000
)

// Config tunes a Server. The zero value of every field means its default.
type Config struct {
	// Tier is the tier every allocation reports. Default DefaultTier.
	Tier string
	// FirstKey is the session key of the first allocation; later ones count
	// up by one. Default DefaultFirstKey (the smallest 9-digit key).
	FirstKey uint64
	// Delay holds every answer back this long. When positive, each request
	// is answered from its own goroutine, so answers on a pipelined
	// connection come back out of order. Default 0: answered inline.
	Delay time.Duration
	// Fail, when set, is asked about every request (seq counts requests
	// from 1 across all connections); a status other than wire.StatusOK is
	// sent back instead of the normal answer, and the request has no effect.
	// Default nil: nothing fails.
	Fail func(op wire.Op, seq uint64) wire.Status
	// MaxFrame is the largest frame accepted and sent. Default
	// wire.DefaultMaxFrame.
	MaxFrame int
}

func (c Config) withDefaults() Config {
	if c.Tier == "" {
		c.Tier = DefaultTier
	}
	if c.FirstKey == 0 {
		c.FirstKey = DefaultFirstKey
	}
	if c.MaxFrame == 0 {
		c.MaxFrame = wire.DefaultMaxFrame
	}
	return c
}

// Stats counts what a Server did.
type Stats struct {
	Requests  uint64 // frames answered, all ops
	Allocated uint64 // new allocations (replays excluded)
	Replayed  uint64 // allocations answered from an earlier token
	Released  uint64 // successful releases
	Live      int    // reservations held now
	Conns     int    // connections open now
}

// record is one reservation.
type record struct {
	key    uint64
	tier   string
	bridge [5]string // id, toll, toll-free, host code, attendee code
	spec   wire.Spec // Name is a private copy
	meta   []byte    // private copy
}

// Server is a fake front-end socket. It is safe for concurrent use.
type Server struct {
	cfg  Config
	path string
	ln   net.Listener

	done      chan struct{} // closed by Close: stops delayed answers
	closeOnce sync.Once
	wg        sync.WaitGroup // accept loop, connection readers, delayed answers

	mu      sync.Mutex // guards everything below
	conns   map[net.Conn]struct{}
	seq     uint64
	nextKey uint64
	byKey   map[uint64]*record
	byToken map[string]wire.AllocateResponse
	stats   Stats
}

// Start listens on the Unix socket at path (removing nothing: the path must
// not exist) and serves until Close.
func Start(path string, cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("fakedaemon: listen: %w", err)
	}
	s := &Server{
		cfg:     cfg,
		path:    path,
		ln:      ln,
		done:    make(chan struct{}),
		conns:   make(map[net.Conn]struct{}),
		nextKey: cfg.FirstKey,
		byKey:   make(map[uint64]*record),
		byToken: make(map[string]wire.AllocateResponse),
	}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// StartTB starts a Server on a socket in tb.TempDir() and closes it in
// tb.Cleanup.
func StartTB(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	s, err := Start(filepath.Join(tb.TempDir(), "fe.sock"), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// Path returns the socket path.
func (s *Server) Path() string { return s.path }

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Live = len(s.byKey)
	st.Conns = len(s.conns)
	return st
}

// Close stops listening, closes every connection, waits for every goroutine
// and removes the socket file. It is idempotent.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.done)
		err = s.ln.Close()
		s.mu.Lock()
		conns := make([]net.Conn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
		s.wg.Wait()
		if rmErr := os.Remove(s.path); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) && err == nil {
			err = rmErr
		}
	})
	return err
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return // closed
		}
		s.mu.Lock()
		select {
		case <-s.done:
			s.mu.Unlock()
			_ = c.Close()
			return
		default:
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(c)
	}
}

// conn is one accepted connection; wmu serialises whole-frame writes.
type conn struct {
	net.Conn
	wmu sync.Mutex
}

func (c *conn) writeFrame(b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, _ = c.Write(b) // a failed write surfaces as a read error in serve
}

func (s *Server) serve(nc net.Conn) {
	defer s.wg.Done()
	defer func() {
		_ = nc.Close()
		s.mu.Lock()
		delete(s.conns, nc)
		s.mu.Unlock()
	}()
	c := &conn{Conn: nc}
	r := bufio.NewReaderSize(nc, 64<<10)
	var buf []byte
	for {
		h, payload, nb, err := wire.ReadFrame(r, buf, s.cfg.MaxFrame)
		buf = nb
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && h.ID != 0 {
				c.writeFrame(wire.AppendError(nil, h, wire.StatusBadRequest, err.Error()))
			}
			return // framing errors and EOF end the connection
		}
		if s.cfg.Delay <= 0 {
			c.writeFrame(s.answer(h, payload))
			continue
		}
		p := append([]byte(nil), payload...) // buf is reused by the next read
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			t := time.NewTimer(s.cfg.Delay)
			defer t.Stop()
			select {
			case <-t.C:
				c.writeFrame(s.answer(h, p))
			case <-s.done:
			}
		}()
	}
}

// answer builds the response frame for one request.
func (s *Server) answer(h wire.Header, p []byte) []byte {
	if h.IsResponse() {
		return wire.AppendError(nil, h, wire.StatusBadRequest, "response frame sent to the daemon")
	}
	s.mu.Lock()
	s.seq++
	seq := s.seq
	s.stats.Requests++
	s.mu.Unlock()
	if s.cfg.Fail != nil {
		if st := s.cfg.Fail(h.Op, seq); st != wire.StatusOK {
			return wire.AppendError(nil, h, st, "injected by fakedaemon")
		}
	}
	switch h.Op {
	case wire.OpPing:
		if err := (wire.Empty{}).Decode(p); err != nil {
			return wire.AppendError(nil, h, wire.StatusBadRequest, err.Error())
		}
		return s.frame(h, nil)
	case wire.OpAllocate:
		var req wire.AllocateRequest
		if err := req.Decode(p); err != nil {
			return wire.AppendError(nil, h, wire.StatusBadRequest, err.Error())
		}
		resp := s.allocate(&req)
		return s.frame(h, &resp)
	case wire.OpLookup, wire.OpRelease:
		var req wire.KeyRequest
		if err := req.Decode(p); err != nil {
			return wire.AppendError(nil, h, wire.StatusBadRequest, err.Error())
		}
		if h.Op == wire.OpRelease {
			if !s.release(req.Key) {
				return notFound(h, req.Key)
			}
			return s.frame(h, nil)
		}
		res, ok := s.lookup(req.Key)
		if !ok {
			return notFound(h, req.Key)
		}
		return s.frame(h, &res)
	case wire.OpUpdate:
		var req wire.UpdateRequest
		if err := req.Decode(p); err != nil {
			return wire.AppendError(nil, h, wire.StatusBadRequest, err.Error())
		}
		res, ok := s.update(&req)
		if !ok {
			return notFound(h, req.Key)
		}
		return s.frame(h, &res)
	}
	return wire.AppendError(nil, h, wire.StatusUnsupported, "unsupported op "+h.Op.String())
}

func (s *Server) frame(h wire.Header, p wire.Payload) []byte {
	b, err := wire.AppendFrame(nil, h.Response(wire.StatusOK), p, s.cfg.MaxFrame)
	if err != nil {
		return wire.AppendError(nil, h, wire.StatusInternal, err.Error())
	}
	return b
}

func notFound(h wire.Header, key uint64) []byte {
	return wire.AppendError(nil, h, wire.StatusNotFound, "no session "+strconv.FormatUint(key, 10))
}

func (s *Server) allocate(req *wire.AllocateRequest) wire.AllocateResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(req.Token) > 0 {
		if first, ok := s.byToken[string(req.Token)]; ok {
			s.stats.Replayed++
			first.Replayed = true
			return first
		}
	}
	key := s.nextKey
	s.nextKey++
	r := &record{key: key, tier: s.cfg.Tier, spec: req.Spec, meta: append([]byte(nil), req.Meta...)}
	r.spec.Name = append([]byte(nil), req.Spec.Name...)
	r.bridge = [5]string{
		"fake-" + strconv.FormatUint(key, 10),
		"+1-408-555-0100",
		"+1-866-555-0100",
		fmt.Sprintf("%07d", key%10000000),
		fmt.Sprintf("%07d", (key*7919)%10000000),
	}
	s.byKey[key] = r
	s.stats.Allocated++
	resp := wire.AllocateResponse{Key: key, Tier: []byte(r.tier), Bridge: r.wireBridge()}
	if len(req.Token) > 0 {
		s.byToken[string(req.Token)] = resp
	}
	return resp
}

func (s *Server) lookup(key uint64) (wire.Reservation, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.byKey[key]
	if !ok {
		return wire.Reservation{}, false
	}
	return r.reservation(), true
}

func (s *Server) update(req *wire.UpdateRequest) (wire.Reservation, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.byKey[req.Key]
	if !ok {
		return wire.Reservation{}, false
	}
	r.spec = req.Spec
	r.spec.Name = append([]byte(nil), req.Spec.Name...)
	r.meta = append([]byte(nil), req.Meta...)
	return r.reservation(), true
}

func (s *Server) release(key uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byKey[key]; !ok {
		return false
	}
	delete(s.byKey, key)
	s.stats.Released++
	return true
}

func (r *record) wireBridge() wire.Bridge {
	return wire.Bridge{
		ID:           []byte(r.bridge[0]),
		Toll:         []byte(r.bridge[1]),
		TollFree:     []byte(r.bridge[2]),
		HostCode:     []byte(r.bridge[3]),
		AttendeeCode: []byte(r.bridge[4]),
	}
}

// reservation returns r as a wire.Reservation with private copies of the
// name and meta, so it stays valid after the lock is released.
func (r *record) reservation() wire.Reservation {
	spec := r.spec
	spec.Name = append([]byte(nil), r.spec.Name...)
	return wire.Reservation{
		Key:    r.key,
		Tier:   []byte(r.tier),
		Bridge: r.wireBridge(),
		Spec:   spec,
		Meta:   append([]byte(nil), r.meta...),
	}
}
