package httpbaseline

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// DefaultCapacity is StubConfig.Capacity's default, telsim's.
const DefaultCapacity = 100000

// The stub's call-in numbers, shared by its bridges as on a real bridge.
const (
	stubToll     = "+1-408-555-0100"
	stubTollFree = "+1-866-555-0100"
)

// StubConfig tunes a Stub. The zero value means every default.
type StubConfig struct {
	// Capacity is the maximum number of live reservations; a reserve
	// beyond it is answered 507 (ErrCapacity). Default DefaultCapacity.
	Capacity int
}

// StubStats counts what a Stub did.
type StubStats struct {
	Reserved uint64 // successful reserves
	Released uint64 // successful releases
	Live     int    // reservations held now
	Conns    uint64 // connections accepted (few: callers keep them alive)
}

// stubRecord is one live reservation: what a telephony server keeps.
type stubRecord struct {
	bridge Bridge
	spec   Spec
	meta   []byte
}

// Stub is the HTTP telephony stub: POST /reserve and POST /release over
// TCP with keep-alive. It is safe for concurrent use.
type Stub struct {
	seq      atomic.Uint64 // numbers bridges and access codes
	reserved atomic.Uint64
	released atomic.Uint64

	mu sync.Mutex
	// Guarded by mu.
	live     map[uint64]*stubRecord
	capacity int

	hs  *httpServer
	url string
}

// NewStub returns a stub that is not serving yet.
func NewStub(cfg StubConfig) *Stub {
	if cfg.Capacity <= 0 {
		cfg.Capacity = DefaultCapacity
	}
	return &Stub{capacity: cfg.Capacity, live: make(map[uint64]*stubRecord)}
}

// Start listens on the TCP address addr (such as "127.0.0.1:0") and serves
// until Close. It returns the stub's base URL. Call it once.
func (s *Stub) Start(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("httpbaseline: stub: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /reserve", s.handleReserve)
	mux.HandleFunc("POST /release", s.handleRelease)
	s.url = "http://" + ln.Addr().String()
	s.hs = serve(ln, mux)
	return s.url, nil
}

// URL returns the base URL Start returned.
func (s *Stub) URL() string { return s.url }

// Close stops serving and waits for the serving goroutine. Idempotent.
func (s *Stub) Close() error {
	if s.hs == nil {
		return nil
	}
	return s.hs.close()
}

// SetCapacity retunes the capacity (n ≤ 0: DefaultCapacity). Reservations
// beyond a lowered capacity are kept; new ones are refused until below it.
func (s *Stub) SetCapacity(n int) {
	if n <= 0 {
		n = DefaultCapacity
	}
	s.mu.Lock()
	s.capacity = n
	s.mu.Unlock()
}

// Stats returns the stub's counters.
func (s *Stub) Stats() StubStats {
	s.mu.Lock()
	live := len(s.live)
	s.mu.Unlock()
	st := StubStats{Reserved: s.reserved.Load(), Released: s.released.Load(), Live: live}
	if s.hs != nil {
		st.Conns = s.hs.accepted.Load()
	}
	return st
}

func (s *Stub) handleReserve(w http.ResponseWriter, r *http.Request) {
	var req ReserveRequest
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	if err := req.Spec.validate(); err != nil {
		writeError(w, err)
		return
	}
	if req.Key == 0 {
		writeError(w, fmt.Errorf("%w: key 0", ErrBadRequest))
		return
	}
	n := s.seq.Add(1)
	rec := &stubRecord{
		bridge: Bridge{
			ID:           fmt.Sprintf("stub/bridge-%012d", req.Key),
			Toll:         stubToll,
			TollFree:     stubTollFree,
			HostCode:     fmt.Sprintf("%08d", 10_000_000+n%90_000_000),
			AttendeeCode: fmt.Sprintf("%09d", 100_000_000+n%900_000_000),
		},
		spec: req.Spec,
		meta: req.Meta, // decoded into its own memory by encoding/json
	}
	s.mu.Lock()
	_, held := s.live[req.Key]
	full := len(s.live) >= s.capacity
	if !held && !full {
		s.live[req.Key] = rec
	}
	s.mu.Unlock()
	switch {
	case held:
		writeError(w, fmt.Errorf("%w: %d", ErrKeyExists, req.Key))
	case full:
		writeError(w, fmt.Errorf("%w: at capacity", ErrCapacity))
	default:
		s.reserved.Add(1)
		writeJSON(w, http.StatusOK, &rec.bridge)
	}
}

func (s *Stub) handleRelease(w http.ResponseWriter, r *http.Request) {
	var req KeyRequest
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	s.mu.Lock()
	_, held := s.live[req.Key]
	delete(s.live, req.Key)
	s.mu.Unlock()
	if !held {
		writeError(w, fmt.Errorf("%w: %d", ErrNotFound, req.Key))
		return
	}
	s.released.Add(1)
	w.WriteHeader(http.StatusNoContent)
}
