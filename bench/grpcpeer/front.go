package grpcpeer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	pb "switchboard/bench/grpcpeer/peerpb"
)

// Defaults of Config, and the peer's key domain.
const (
	// DefaultConnsPerTier is Config.ConnsPerTier's default: pooled
	// connections to each tier's stub, as switchboard's pool min_conns in
	// the configuration the benchmark runs.
	DefaultConnsPerTier = 2
	// DefaultAttemptTimeout is Config.AttemptTimeout's default, the same as
	// a switchboard tier's attempt_timeout.
	DefaultAttemptTimeout = 250 * time.Millisecond

	// FirstKey is the first session key; later ones count up by one. Keys
	// are nine-digit numbers, as switchboard's default.
	FirstKey = 100_000_000
	lastKey  = 999_999_999
)

// Tiers are switchboard's tiers, in its failover order.
var Tiers = []string{"primary-large", "nextgen", "backup2-large"}

// TierConfig is one telephony tier of the front.
type TierConfig struct {
	Name string // reported in AllocateResponse.Tier
	Addr string // the tier's stub, host:port
}

// Config describes a front. Zero fields mean their defaults, except Socket
// and Tiers, which are required.
type Config struct {
	// Socket is the Unix socket path the front listens on. Required.
	Socket string
	// Tiers are tried in this order for every allocation. Required.
	Tiers []TierConfig
	// ConnsPerTier is the number of gRPC client connections to each
	// tier's stub, used round robin. Default DefaultConnsPerTier.
	ConnsPerTier int
	// AttemptTimeout bounds each call to a stub. Default
	// DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// Options selects grpc-go's default or tuned configuration.
	Options Options
}

// tier is a tier's pool: ConnsPerTier connections, taken round robin.
type tier struct {
	name  string
	conns []*grpc.ClientConn
	stubs []pb.TelephonyClient
	next  atomic.Uint32
}

func (t *tier) stub() pb.TelephonyClient {
	return t.stubs[int(t.next.Add(1))%len(t.stubs)]
}

// session is one live allocation as the front records it.
type session struct {
	token string
	tier  *tier
	resp  *pb.AllocateResponse
	spec  *pb.Spec
	meta  []byte
}

// Front is the peer's allocation service: Allocate and Release over gRPC
// on a Unix socket, reserving on the first tier whose stub takes the
// reservation. It is safe for concurrent use.
type Front struct {
	pb.UnimplementedSwitchboardServer

	cfg   Config
	tiers []*tier
	next  atomic.Uint64 // keys issued so far

	mu sync.Mutex
	// Guarded by mu.
	sessions map[uint64]*session
	tokens   map[string]*pb.AllocateResponse // the first answer per live token

	srv  *grpc.Server
	done chan struct{} // closed when Serve has returned
}

// NewFront checks cfg and opens its pools (connections are dialed at once,
// in the background, so the first calls find them warm). It does not serve
// yet; Close releases the pools.
func NewFront(cfg Config) (*Front, error) {
	if cfg.Socket == "" || len(cfg.Tiers) == 0 {
		return nil, errors.New("grpcpeer: Socket and Tiers are required")
	}
	if cfg.ConnsPerTier <= 0 {
		cfg.ConnsPerTier = DefaultConnsPerTier
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = DefaultAttemptTimeout
	}
	f := &Front{
		cfg:      cfg,
		sessions: make(map[uint64]*session),
		tokens:   make(map[string]*pb.AllocateResponse),
	}
	for _, tc := range cfg.Tiers {
		t := &tier{name: tc.Name}
		f.tiers = append(f.tiers, t)
		for range cfg.ConnsPerTier {
			// passthrough: the address is used as given, no resolver.
			cc, err := grpc.NewClient("passthrough:///"+tc.Addr, dialOptions(cfg.Options)...)
			if err != nil {
				f.closePools()
				return nil, fmt.Errorf("grpcpeer: tier %s: %w", tc.Name, err)
			}
			cc.Connect()
			t.conns = append(t.conns, cc)
			t.stubs = append(t.stubs, pb.NewTelephonyClient(cc))
		}
	}
	return f, nil
}

// Start listens on the Unix socket and serves until Close, on a goroutine
// Close waits for. Call it once.
func (f *Front) Start() error {
	ln, err := net.Listen("unix", f.cfg.Socket)
	if err != nil {
		return fmt.Errorf("grpcpeer: front: %w", err)
	}
	f.srv = grpc.NewServer(serverOptions(f.cfg.Options)...)
	pb.RegisterSwitchboardServer(f.srv, f)
	f.done = make(chan struct{})
	go func() {
		defer close(f.done)
		_ = f.srv.Serve(ln) // returns when Stop closes the listener
	}()
	return nil
}

// Close stops serving (closing the socket and every connection), waits for
// the serving goroutine and closes the pools. Idempotent.
func (f *Front) Close() error {
	if f.srv != nil {
		f.srv.Stop()
		<-f.done
	}
	return f.closePools()
}

func (f *Front) closePools() error {
	var errs []error
	for _, t := range f.tiers {
		for _, cc := range t.conns {
			if err := cc.Close(); err != nil && !errors.Is(err, context.Canceled) {
				errs = append(errs, err)
			}
		}
		t.conns = nil
	}
	return errors.Join(errs...)
}

// Live returns the number of live sessions.
func (f *Front) Live() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sessions)
}

// Allocate implements pb.SwitchboardServer: a token seen before (and not
// yet released) replays its first answer; otherwise the next key is
// reserved on the first tier that takes it.
func (f *Front) Allocate(ctx context.Context, req *pb.AllocateRequest) (*pb.AllocateResponse, error) {
	switch {
	case len(req.Token) > MaxToken:
		return nil, toStatus(fmt.Errorf("%w: token is %d bytes, at most %d", ErrBadRequest, len(req.Token), MaxToken))
	case len(req.Meta) > MaxMeta:
		return nil, toStatus(fmt.Errorf("%w: meta is %d bytes, at most %d", ErrBadRequest, len(req.Meta), MaxMeta))
	}
	if err := validateSpec(req.Spec); err != nil {
		return nil, toStatus(err)
	}
	if req.Token != "" {
		f.mu.Lock()
		first, ok := f.tokens[req.Token]
		f.mu.Unlock()
		if ok {
			return &pb.AllocateResponse{Key: first.Key, Replayed: true, Tier: first.Tier, Bridge: first.Bridge}, nil
		}
	}
	key := FirstKey + f.next.Add(1) - 1
	if key > lastKey {
		return nil, toStatus(fmt.Errorf("%w: keys exhausted", ErrUnavailable))
	}
	rr := &pb.ReserveRequest{Key: key, Spec: req.Spec, Meta: req.Meta}
	var last error
	for _, t := range f.tiers {
		b, err := f.reserve(ctx, t, rr)
		if err != nil {
			last = err
			if ctx.Err() != nil {
				break
			}
			continue
		}
		resp := &pb.AllocateResponse{Key: key, Tier: t.name, Bridge: b}
		f.mu.Lock()
		f.sessions[key] = &session{token: req.Token, tier: t, resp: resp, spec: req.Spec, meta: req.Meta}
		if req.Token != "" {
			f.tokens[req.Token] = resp
		}
		f.mu.Unlock()
		return resp, nil
	}
	return nil, toStatus(fmt.Errorf("%w: every tier failed, last: %w", ErrUnavailable, last))
}

// reserve asks one tier's stub under the attempt timeout.
func (f *Front) reserve(ctx context.Context, t *tier, rr *pb.ReserveRequest) (*pb.Bridge, error) {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.AttemptTimeout)
	defer cancel()
	b, err := t.stub().Reserve(ctx, rr)
	return b, fromStatus(err)
}

// Release implements pb.SwitchboardServer: the tier that reserved the key
// is asked to release it, then the session and its token are forgotten.
// A release the stub did not answer keeps the session, so a retry can
// release it (the peer has no background releaser).
func (f *Front) Release(ctx context.Context, req *pb.KeyRequest) (*pb.Empty, error) {
	f.mu.Lock()
	s, ok := f.sessions[req.Key]
	f.mu.Unlock()
	if !ok {
		return nil, toStatus(fmt.Errorf("%w: %d", ErrNotFound, req.Key))
	}
	actx, cancel := context.WithTimeout(ctx, f.cfg.AttemptTimeout)
	_, err := s.tier.stub().Release(actx, &pb.KeyRequest{Key: req.Key})
	cancel()
	err = fromStatus(err)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, toStatus(fmt.Errorf("%w: %w", ErrUnavailable, err))
	}
	f.mu.Lock()
	delete(f.sessions, req.Key)
	if s.token != "" {
		delete(f.tokens, s.token)
	}
	f.mu.Unlock()
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.Empty{}, nil
}
