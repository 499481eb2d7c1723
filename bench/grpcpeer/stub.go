package grpcpeer

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"

	pb "switchboard/bench/grpcpeer/peerpb"
)

// DefaultCapacity is StubConfig.Capacity's default, telsim's.
const DefaultCapacity = 100000

// The stub's call-in numbers, shared by its bridges as on a real bridge.
const (
	stubToll     = "+1-408-555-0100"
	stubTollFree = "+1-866-555-0100"
)

// StubConfig describes a Stub. The zero value means every default.
type StubConfig struct {
	// Tier is the tier name the stub serves, used in its bridge ids.
	// Default "stub".
	Tier string
	// Capacity is the maximum number of live reservations; a reserve
	// beyond it is answered ResourceExhausted (ErrCapacity). Default
	// DefaultCapacity.
	Capacity int
	// Options selects grpc-go's default or tuned configuration.
	Options Options
}

// StubStats counts what a Stub did.
type StubStats struct {
	Reserved uint64 // successful reserves
	Released uint64 // successful releases
	Live     int    // reservations held now
}

// stubRecord is one live reservation: what a telephony server keeps.
type stubRecord struct {
	bridge *pb.Bridge
	spec   *pb.Spec
	meta   []byte
}

// Stub is the gRPC telephony stub of one server: Reserve and Release over
// TCP. It keeps live reservations in a map under a mutex, refuses a key it
// already holds (AlreadyExists) and a reservation beyond its capacity
// (ResourceExhausted), as httpbaseline's stub does. It is safe for
// concurrent use.
type Stub struct {
	pb.UnimplementedTelephonyServer

	cfg      StubConfig
	seq      atomic.Uint64 // numbers bridges and access codes
	reserved atomic.Uint64
	released atomic.Uint64

	mu sync.Mutex
	// Guarded by mu.
	live     map[uint64]*stubRecord
	capacity int

	srv  *grpc.Server
	addr string
	done chan struct{} // closed when Serve has returned
}

// NewStub returns a stub that is not serving yet.
func NewStub(cfg StubConfig) *Stub {
	if cfg.Tier == "" {
		cfg.Tier = "stub"
	}
	if cfg.Capacity <= 0 {
		cfg.Capacity = DefaultCapacity
	}
	return &Stub{cfg: cfg, capacity: cfg.Capacity, live: make(map[uint64]*stubRecord)}
}

// Start listens on the TCP address addr (such as "127.0.0.1:0") and serves
// until Close, on a goroutine Close waits for. It returns the bound
// address. Call it once.
func (s *Stub) Start(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("grpcpeer: stub: %w", err)
	}
	s.srv = grpc.NewServer(serverOptions(s.cfg.Options)...)
	pb.RegisterTelephonyServer(s.srv, s)
	s.addr = ln.Addr().String()
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln) // returns when Stop closes the listener
	}()
	return s.addr, nil
}

// Addr returns the address Start returned.
func (s *Stub) Addr() string { return s.addr }

// Close stops serving at once (closing every connection: to a caller, the
// server is down) and waits for the serving goroutine. Idempotent.
func (s *Stub) Close() error {
	if s.srv == nil {
		return nil
	}
	s.srv.Stop()
	<-s.done
	return nil
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
	return StubStats{Reserved: s.reserved.Load(), Released: s.released.Load(), Live: live}
}

// Reserve implements pb.TelephonyServer.
func (s *Stub) Reserve(_ context.Context, req *pb.ReserveRequest) (*pb.Bridge, error) {
	if err := validateSpec(req.Spec); err != nil {
		return nil, toStatus(err)
	}
	if req.Key == 0 {
		return nil, toStatus(fmt.Errorf("%w: key 0", ErrBadRequest))
	}
	n := s.seq.Add(1)
	rec := &stubRecord{
		bridge: &pb.Bridge{
			Id:           fmt.Sprintf("%s/bridge-%012d", s.cfg.Tier, req.Key),
			Toll:         stubToll,
			TollFree:     stubTollFree,
			HostCode:     fmt.Sprintf("%08d", 10_000_000+n%90_000_000),
			AttendeeCode: fmt.Sprintf("%09d", 100_000_000+n%900_000_000),
		},
		spec: req.Spec,
		meta: req.Meta, // unmarshalled into its own memory by protobuf
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
		return nil, toStatus(fmt.Errorf("%w: %d", ErrKeyExists, req.Key))
	case full:
		return nil, toStatus(fmt.Errorf("%w: at capacity", ErrCapacity))
	}
	s.reserved.Add(1)
	return rec.bridge, nil
}

// Release implements pb.TelephonyServer.
func (s *Stub) Release(_ context.Context, req *pb.KeyRequest) (*pb.Empty, error) {
	s.mu.Lock()
	_, held := s.live[req.Key]
	delete(s.live, req.Key)
	s.mu.Unlock()
	if !held {
		return nil, toStatus(fmt.Errorf("%w: %d", ErrNotFound, req.Key))
	}
	s.released.Add(1)
	return &pb.Empty{}, nil
}
