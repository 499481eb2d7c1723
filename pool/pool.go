package pool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"switchboard/internal/clock"
	"switchboard/mux"
	"switchboard/wire"
)

// Sentinel errors. Match them with errors.Is.
var (
	// ErrNoConn: the pool has no live connection right now. Not sent;
	// returned at once, never after waiting for a dial.
	ErrNoConn = errors.New("pool: no live connection")
	// ErrClosed: the pool is shutting down or shut down. Not sent.
	ErrClosed = errors.New("pool: closed")
	// ErrRequiresNewPool: Retune was asked to change Tier, Client, Servers
	// or MaxFrame, which only a new Pool can do.
	ErrRequiresNewPool = errors.New("pool: change requires a new pool")
	// ErrServerDown: RoundTripTo was asked for a server of this pool that
	// has no live connection right now. Not sent.
	ErrServerDown = errors.New("pool: server has no live connection")
	// ErrUnknownServer: RoundTripTo was asked for a server id that no
	// server of this pool has reported in a HELLO. Not sent.
	ErrUnknownServer = errors.New("pool: unknown server id")
	// ErrDuplicateServerID: a server answered HELLO with the id of another
	// server of the pool. Its connections are refused (and the dial backed
	// off, with this as its last error) until the ids differ: follow-ups
	// are routed by id.
	ErrDuplicateServerID = errors.New("pool: duplicate server id")
	// ErrHeartbeatTimeout is the cause of death of a connection whose
	// PONG did not arrive within HeartbeatTimeout.
	ErrHeartbeatTimeout = errors.New("pool: heartbeat timeout")
)

// Option sets a test seam or collaborator of a Pool. Options are applied
// once, by New.
type Option func(*options)

type options struct {
	dial  Dialer
	log   *zap.Logger
	clock Clock
	randN func(n int64) int64
}

// WithDialer replaces the dialer (default NetDialer; see NetpollDialer).
func WithDialer(d Dialer) Option {
	return func(o *options) {
		if d != nil {
			o.dial = d
		}
	}
}

// WithLogger sets the logger (default: none). The pool adds a "tier" field.
func WithLogger(l *zap.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// WithClock replaces the wall clock (tests).
func WithClock(c Clock) Option {
	return func(o *options) {
		if c != nil {
			o.clock = c
		}
	}
}

// WithRand replaces the random source of backoff and max-age jitter: r(n)
// returns a uniform value in [0, n) for n > 0. It is only called with the
// pool's mutex held, so it need not be safe for concurrent use.
func WithRand(r func(n int64) int64) Option {
	return func(o *options) {
		if r != nil {
			o.randN = r
		}
	}
}

// Pool is a warm pool of multiplexed connections to the servers of one tier.
// It is safe for concurrent use; RoundTrip and Live are lock-free.
type Pool struct {
	dial  Dialer
	log   *zap.Logger
	clock Clock
	randN func(n int64) int64

	cfg  atomic.Pointer[Config]  // current tuning; Retune swaps it
	live atomic.Pointer[[]*conn] // immutable snapshot of usable connections
	// routes is the live set grouped by server id (from HELLO), published
	// with live: RoundTripTo reads it lock-free.
	routes atomic.Pointer[routes]
	rr     atomic.Uint64 // round-robin cursor
	rrTo   atomic.Uint64 // RoundTripTo's cursor: follow-ups do not skew RoundTrip's

	closed    atomic.Bool  // Shutdown started: RoundTrip refuses
	calls     atomic.Int64 // RoundTrips in progress
	drainOnce sync.Once
	drained   chan struct{} // closed when calls reach 0 after closed

	ctx      context.Context // cancelled by Shutdown: dials and heartbeats stop
	cancel   context.CancelFunc
	wake     chan struct{} // 1-buffered: wakes the maintenance goroutine
	stop     chan struct{} // closed by Shutdown: every goroutine returns
	maintEnd chan struct{} // closed when the maintenance goroutine returns
	wg       sync.WaitGroup
	teardown sync.Once

	mu sync.Mutex
	// Guarded by mu.
	servers []*server
	changed chan struct{} // closed and replaced when the live set changes
	shut    bool          // teardown started: no connection is added any more
}

// server is the state of one server address. Guarded by Pool.mu.
type server struct {
	addr     string
	conns    []*conn // handshaken connections that have not died yet (live, replacing or draining)
	dialing  int
	failures int       // consecutive failed dials (and short-lived connections)
	nextDial time.Time // no dial before, while failures > 0

	dials, dialFailures uint64
	lastErr             error
	lastErrAt           time.Time
	serverID            string
	duplicate           bool // its last HELLO answered another server's id
	load                wire.Load
	loadAt              time.Time
}

// routes is an immutable snapshot of the live connections by server id, and
// of every server id this pool has ever handshaken with.
type routes struct {
	byID map[string][]*conn
	ids  []string // sorted; includes servers with no live connection now
	// unanswered counts the servers that never said who they are (no
	// HELLO answered yet, and not refused as a duplicate of a known id).
	unanswered int
}

// New validates cfg, fills in defaults and starts the pool's maintenance
// goroutine, which begins dialing at once; New itself does not dial. Use
// WaitReady to wait for the warm-up.
func New(cfg Config, opts ...Option) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	o := options{dial: NetDialer, log: zap.NewNop(), clock: clock.Real{}, randN: rand.Int64N}
	for _, opt := range opts {
		opt(&o)
	}
	p := &Pool{
		dial:     o.dial,
		log:      o.log.With(zap.String("tier", cfg.Tier)),
		clock:    o.clock,
		randN:    o.randN,
		drained:  make(chan struct{}),
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		maintEnd: make(chan struct{}),
		changed:  make(chan struct{}),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.cfg.Store(&cfg)
	p.live.Store(new([]*conn))
	p.routes.Store(&routes{})
	for _, addr := range cfg.Servers {
		p.servers = append(p.servers, &server{addr: addr})
	}
	go p.maintain()
	p.kick()
	return p, nil
}

// kick wakes the maintenance goroutine without blocking.
func (p *Pool) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Live returns the number of live, handshaken connections RoundTrip can use
// (an atomic load).
func (p *Pool) Live() int { return len(*p.live.Load()) }

// LiveChanged returns a channel that is closed the next time the pool
// publishes its live set: when a connection is handshaken, dies, drains or
// is retired, and on Retune and Shutdown (so it may close with Live
// unchanged). To wait for a condition on Live without polling, take the
// channel, then check the condition, then wait on the channel and repeat:
// a change after the check closes the channel taken before it. A
// connection's death closes it from that connection's reader goroutine,
// right after the live set is swapped.
func (p *Pool) LiveChanged() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.changed
}

// Capacity returns how many calls the pool can carry at once right now: its
// live connections times Config.MaxInFlight (atomic loads; read-only). A
// RoundTrip beyond it finds every connection full (mux.ErrBusy).
func (p *Pool) Capacity() int { return len(*p.live.Load()) * p.cfg.Load().MaxInFlight }

// RoundTrip sends one request on a live connection and waits for its reply
// (see mux.Conn.Call for the reply's ownership and the errors). It never
// dials and never waits for a connection: with none live it returns
// ErrNoConn at once. A connection that turns out dead or full before the
// request is written is skipped for the next one.
func (p *Pool) RoundTrip(ctx context.Context, op wire.Op, req wire.Payload) (*mux.Reply, error) {
	rep, _, err := p.RoundTripOn(ctx, op, req)
	return rep, err
}

// RoundTripOn is RoundTrip that also reports the id (from its HELLO) of the
// server whose connection carried the request: on success, the server that
// answered; on a sent failure (mux.Sent), the server that may have executed
// it; "" when nothing was sent.
func (p *Pool) RoundTripOn(ctx context.Context, op wire.Op, req wire.Payload) (*mux.Reply, string, error) {
	return p.roundTripOn(ctx, op, req, false)
}

// RoundTripOnNow is RoundTripOn with mux.Conn.CallNow: the request is
// written without yielding for other callers' frames to join its write,
// for a caller that must not wait behind others (a polite client's
// request beside a burst).
func (p *Pool) RoundTripOnNow(ctx context.Context, op wire.Op, req wire.Payload) (*mux.Reply, string, error) {
	return p.roundTripOn(ctx, op, req, true)
}

func (p *Pool) roundTripOn(ctx context.Context, op wire.Op, req wire.Payload, now bool) (*mux.Reply, string, error) {
	p.calls.Add(1)
	defer p.callDone()
	if p.closed.Load() {
		return nil, "", ErrClosed
	}
	live := *p.live.Load()
	n := uint64(len(live))
	if n == 0 {
		return nil, "", ErrNoConn
	}
	i := p.rr.Add(1)
	if n > 1 && live[(i+1)%n].inflight.Load() < live[i%n].inflight.Load() {
		i++ // the less loaded of two neighbours
	}
	return p.callAny(ctx, live, i, op, req, now)
}

// RoundTripTo sends one request to the server whose HELLO reported
// serverID, on one of its live connections only: a session's follow-ups go
// to the server that holds it. With no live connection to that server it
// returns ErrServerDown (ErrUnknownServer if no server of the pool has that
// id), at once and without sending. Lock-free, like RoundTrip.
func (p *Pool) RoundTripTo(ctx context.Context, serverID string, op wire.Op, req wire.Payload) (*mux.Reply, error) {
	p.calls.Add(1)
	defer p.callDone()
	if p.closed.Load() {
		return nil, ErrClosed
	}
	r := p.routes.Load()
	live := r.byID[serverID]
	if len(live) == 0 {
		if r.has(serverID) {
			return nil, fmt.Errorf("%w: %q", ErrServerDown, serverID)
		}
		return nil, fmt.Errorf("%w: %q", ErrUnknownServer, serverID)
	}
	i := p.rrTo.Add(1)
	rep, _, err := p.callAny(ctx, live, i, op, req, false)
	if errors.Is(err, ErrNoConn) {
		err = fmt.Errorf("%w: %q", ErrServerDown, serverID)
	}
	return rep, err
}

// ServerIDs returns the ids of the servers this pool has handshaken with,
// sorted, whether or not they have a live connection now (an atomic load;
// the slice is shared: do not modify it).
func (p *Pool) ServerIDs() []string { return p.routes.Load().ids }

// Unanswered returns how many of the pool's server addresses have never
// said who they are: no HELLO answered yet (an address refused as the
// duplicate of a known id does not count: its id is known). A key could
// be held by one of them, under an id not in ServerIDs yet.
func (p *Pool) Unanswered() int { return p.routes.Load().unanswered }

// HasServer reports whether a server of this pool has reported id in a
// HELLO (an atomic load).
func (p *Pool) HasServer(id string) bool { return p.routes.Load().has(id) }

func (r *routes) has(id string) bool {
	_, ok := slices.BinarySearch(r.ids, id)
	return ok
}

// callAny calls the connections of live from index i on, skipping those
// that turn out dead or full before the request is written.
func (p *Pool) callAny(ctx context.Context, live []*conn, i uint64, op wire.Op, req wire.Payload, now bool) (*mux.Reply, string, error) {
	n := uint64(len(live))
	var busy error
	for k := uint64(0); k < n; k++ {
		c := live[(i+k)%n]
		c.inflight.Add(1)
		var rep *mux.Reply
		var err error
		if now {
			rep, err = c.mc.CallNow(ctx, op, req)
		} else {
			rep, err = c.mc.Call(ctx, op, req)
		}
		if c.inflight.Add(-1) == 0 && c.draining.Load() {
			c.kick()
		}
		switch {
		case err == nil:
			return rep, c.serverID, nil
		case mux.Sent(err):
			return nil, c.serverID, err
		case errors.Is(err, mux.ErrBusy):
			busy = err
		case errors.Is(err, mux.ErrClosed):
			// Died since the snapshot was taken; nothing was sent.
		default:
			return nil, "", err
		}
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
	}
	if busy != nil {
		return nil, "", busy
	}
	return nil, "", ErrNoConn
}

// callDone ends a RoundTrip and tells a waiting Shutdown when the last one is
// done.
func (p *Pool) callDone() {
	if p.calls.Add(-1) == 0 && p.closed.Load() {
		p.drainOnce.Do(func() { close(p.drained) })
	}
}

// WaitReady waits until every server has MinConns live connections. When ctx
// ends first it returns an error wrapping ctx's error that names the servers
// not ready and why; after Shutdown it returns ErrClosed.
func (p *Pool) WaitReady(ctx context.Context) error {
	for {
		p.mu.Lock()
		shut, ready, ch := p.shut, p.readyLocked(), p.changed
		var missing []string
		if !ready && ctx.Err() != nil {
			missing = p.notReadyLocked()
		}
		p.mu.Unlock()
		switch {
		case shut || p.closed.Load():
			return ErrClosed
		case ready:
			return nil
		case missing != nil:
			return fmt.Errorf("pool %q not ready: %s: %w", p.cfg.Load().Tier, strings.Join(missing, "; "), ctx.Err())
		}
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
}

func (p *Pool) readyLocked() bool {
	want := p.cfg.Load().MinConns
	for _, s := range p.servers {
		if s.usableLocked() < want {
			return false
		}
	}
	return true
}

func (p *Pool) notReadyLocked() []string {
	want := p.cfg.Load().MinConns
	var out []string
	for _, s := range p.servers {
		if n := s.usableLocked(); n < want {
			msg := fmt.Sprintf("%s has %d/%d live", s.addr, n, want)
			if s.lastErr != nil {
				msg += " (last error: " + s.lastErr.Error() + ")"
			}
			out = append(out, msg)
		}
	}
	return out
}

// usableLocked counts the server's connections that are in the live set.
func (s *server) usableLocked() int {
	n := 0
	for _, c := range s.conns {
		if !c.draining.Load() {
			n++
		}
	}
	return n
}

// publishLocked rebuilds the live snapshot (servers interleaved, so round
// robin alternates between them) and wakes WaitReady callers.
func (p *Pool) publishLocked() {
	var live []*conn
	for i := 0; ; i++ {
		added := false
		for _, s := range p.servers {
			k := 0
			for _, c := range s.conns {
				if c.draining.Load() {
					continue
				}
				if k == i {
					live = append(live, c)
					added = true
					break
				}
				k++
			}
		}
		if !added {
			break
		}
	}
	if p.shut {
		live = nil
	}
	r := &routes{byID: make(map[string][]*conn)}
	for _, c := range live {
		r.byID[c.serverID] = append(r.byID[c.serverID], c)
	}
	for _, s := range p.servers {
		if s.serverID == "" && !s.duplicate {
			r.unanswered++
		}
		if s.serverID != "" && !slices.Contains(r.ids, s.serverID) {
			r.ids = append(r.ids, s.serverID)
		}
		for _, c := range s.conns {
			if !slices.Contains(r.ids, c.serverID) {
				r.ids = append(r.ids, c.serverID)
			}
		}
	}
	slices.Sort(r.ids)
	p.routes.Store(r)
	p.live.Store(&live)
	close(p.changed)
	p.changed = make(chan struct{})
}

// Retune applies a new configuration live: MinConns, MaxInFlight,
// DialTimeout, heartbeats, backoff and max age. Tier, Client, Servers and
// MaxFrame cannot change (ErrRequiresNewPool). It does not block: the
// maintenance goroutine and the connections pick the change up at once
// (a heartbeat interval from the connection's next heartbeat).
func (p *Pool) Retune(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	if p.closed.Load() {
		return ErrClosed
	}
	p.mu.Lock()
	if old := p.cfg.Load(); !old.sameFixed(&cfg) {
		p.mu.Unlock()
		return fmt.Errorf("%w: Tier, Client, Servers and MaxFrame are fixed for pool %q", ErrRequiresNewPool, old.Tier)
	}
	p.cfg.Store(&cfg)
	for _, s := range p.servers {
		for _, c := range s.conns {
			c.mc.SetMaxInFlight(cfg.MaxInFlight)
			c.kick()
		}
	}
	p.publishLocked() // readiness may have changed with MinConns
	p.mu.Unlock()
	p.kick()
	return nil
}

// Shutdown stops taking calls (RoundTrip returns ErrClosed), waits for the
// calls in flight to finish or for ctx to end, then closes every connection
// (failing what is still in flight with mux.ErrConnLost) and waits for every
// goroutine of the pool. It is idempotent; it returns ctx's error if the
// drain was cut short.
func (p *Pool) Shutdown(ctx context.Context) error {
	p.closed.Store(true)
	var err error
	for p.calls.Load() > 0 && err == nil {
		select {
		case <-p.drained:
			runtime.Gosched() // a RoundTrip that saw closed is leaving
		case <-ctx.Done():
			err = fmt.Errorf("pool %q: shutdown cut the drain short: %w", p.cfg.Load().Tier, ctx.Err())
		}
	}
	p.teardown.Do(p.tearDown)
	return err
}

func (p *Pool) tearDown() {
	close(p.stop)
	p.cancel()
	<-p.maintEnd
	p.mu.Lock()
	p.shut = true
	var all []*conn
	for _, s := range p.servers {
		all = append(all, s.conns...)
	}
	p.publishLocked()
	p.mu.Unlock()
	for _, c := range all {
		c.mc.Close()
	}
	p.wg.Wait()
	p.log.Info("pool: shut down")
}

// backoff returns the delay before dial number failures+1 after failures
// consecutive failures: full jitter, uniform in [0, min(max, base·2^(failures-1))].
func backoff(base, maxD time.Duration, failures int, randN func(int64) int64) time.Duration {
	if failures <= 0 {
		return 0
	}
	ceil := maxD
	if failures-1 < 62 {
		if b := base << (failures - 1); b > 0 && b < maxD && b>>(failures-1) == base {
			ceil = b
		}
	}
	return time.Duration(randN(int64(ceil) + 1))
}
