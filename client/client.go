package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"switchboard/mux"
	"switchboard/wire"
)

// Sentinel errors. Match them with errors.Is.
var (
	// ErrClosed: the Client was closed. Not sent.
	ErrClosed = errors.New("client: closed")
)

// Dialer opens a connection to the daemon's socket. It must be safe for
// concurrent use (redials of different connections may overlap).
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// Option configures a Client. Options are applied once, by Dial.
type Option func(*options)

type options struct {
	conns    int
	maxFrame int
	dial     Dialer
	log      *zap.Logger
}

// WithConns sets the number of connections calls are spread over (default
// 1; n < 1 means 1).
func WithConns(n int) Option {
	return func(o *options) { o.conns = max(n, 1) }
}

// WithMaxFrame sets the largest frame sent or accepted (default
// wire.DefaultMaxFrame; it must match the daemon's, and at least
// wire.MinMaxFrame).
func WithMaxFrame(n int) Option { return func(o *options) { o.maxFrame = n } }

// WithDialer replaces the dialer (default: net.Dialer on network "unix").
func WithDialer(d Dialer) Option {
	return func(o *options) {
		if d != nil {
			o.dial = d
		}
	}
}

// WithLogger sets the logger (default: none).
func WithLogger(l *zap.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// Client is a pipelining client of the daemon's socket. It is safe for
// concurrent use.
type Client struct {
	path   string
	dial   Dialer
	muxCfg mux.Config
	log    *zap.Logger

	slots  []*slot
	rr     atomic.Uint64
	closed atomic.Bool
}

// slot is one connection position; its connection is replaced when it dies.
type slot struct {
	mc atomic.Pointer[mux.Conn]

	mu sync.Mutex
	// Guarded by mu.
	redial chan struct{} // non-nil while a redial is in progress; closed when it ends
	err    error         // the last redial's error, for its waiters
	closed bool          // Close ran: no new connection is stored
}

// Dial connects to the daemon's socket at socketPath with every connection
// WithConns asks for. ctx bounds the dials only.
func Dial(ctx context.Context, socketPath string, opts ...Option) (*Client, error) {
	o := options{conns: 1, maxFrame: wire.DefaultMaxFrame, log: zap.NewNop()}
	o.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.maxFrame < wire.MinMaxFrame {
		return nil, fmt.Errorf("client: max frame %d is below %d", o.maxFrame, wire.MinMaxFrame)
	}
	c := &Client{path: socketPath, dial: o.dial, log: o.log, muxCfg: mux.Config{MaxFrame: o.maxFrame}}
	if err := c.muxCfg.Validate(); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	for range o.conns {
		s := &slot{}
		mc, err := c.connect(ctx)
		if err != nil {
			c.Close()
			return nil, err
		}
		s.mc.Store(mc)
		c.slots = append(c.slots, s)
	}
	return c, nil
}

func (c *Client) connect(ctx context.Context) (*mux.Conn, error) {
	nc, err := c.dial(ctx, "unix", c.path)
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", c.path, err)
	}
	return mux.New(nc, c.muxCfg, mux.WithLogger(c.log), mux.WithGoodbye()), nil
}

// Close closes every connection, failing calls in flight with
// mux.ErrConnLost, and waits for their reader goroutines. Idempotent.
func (c *Client) Close() error {
	c.closed.Store(true)
	var errs []error
	for _, s := range c.slots {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		if mc := s.mc.Load(); mc != nil {
			if err := mc.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// conn returns a live connection, redialing the picked slot if it is dead.
func (c *Client) conn(ctx context.Context) (*mux.Conn, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	s := c.slots[c.rr.Add(1)%uint64(len(c.slots))]
	if mc := s.mc.Load(); mc.Alive() {
		return mc, nil
	}
	return c.redial(ctx, s)
}

// redial replaces s's dead connection. Concurrent callers share one dial;
// no lock is held across it.
func (c *Client) redial(ctx context.Context, s *slot) (*mux.Conn, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		if mc := s.mc.Load(); mc.Alive() {
			s.mu.Unlock()
			return mc, nil
		}
		if wait := s.redial; wait != nil {
			s.mu.Unlock()
			select {
			case <-wait:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			s.mu.Lock()
			err := s.err
			s.mu.Unlock()
			if err != nil {
				return nil, err
			}
			continue
		}
		done := make(chan struct{})
		s.redial = done
		old := s.mc.Load()
		s.mu.Unlock()

		old.Close() // dead already: reaps its reader
		mc, err := c.connect(ctx)
		s.mu.Lock()
		s.redial, s.err = nil, err
		if err == nil {
			if s.closed {
				err = ErrClosed
			} else {
				s.mc.Store(mc)
			}
		}
		close(done)
		s.mu.Unlock()
		if err != nil {
			if mc != nil {
				mc.Close()
			}
			return nil, err
		}
		if ce := c.log.Check(zap.InfoLevel, "client: reconnected"); ce != nil {
			ce.Write(zap.String("socket", c.path), zap.NamedError("previous", old.Err()))
		}
		return mc, nil
	}
}

// call sends one request and returns its reply.
//
// A call that was not sent (the connection was found dead before its frame
// was written, or the daemon refused the connection unread with a GOODBYE
// frame at its max_conns, or evicted it with a GOODBYE after answering
// everything it had read: a call unanswered then was not read) is sent
// again on a new connection, whatever the request: the daemon never saw it. The first retry after a dead connection
// is immediate; after a refusal, and after the first retry, the client
// waits a backoff doubling from retryBase to retryMax with full jitter. It
// keeps trying after refusals until ctx ends (the daemon said "busy,
// retry"), after connections found dead without a refusal at most
// maxNotSent times in a row. A call that ends with ctx after a refusal,
// without having been sent since, fails with an error matching the
// refusal (mux.ErrRefused, wire.StatusOverloaded) and ctx's error. A call
// that may have been sent (mux.ErrConnLost: the connection died before the
// answer) is sent once more only when it is idempotent.
func (c *Client) call(ctx context.Context, op wire.Op, req wire.Payload) (*mux.Reply, error) {
	resent := false   // an idempotent call lost in flight was sent again
	var refused error // the last refusal, while nothing was sent since
	dead := 0         // not-sent tries in a row without a refusal
	var backoff time.Duration
	for tries := 1; ; tries++ {
		mc, err := c.conn(ctx)
		if err != nil {
			return nil, gaveUp(ctx, err, refused)
		}
		rep, err := mc.Call(ctx, op, req)
		if err == nil {
			return rep, nil
		}
		if ended(ctx) || !errors.Is(err, mux.ErrClosed) && !errors.Is(err, mux.ErrConnLost) {
			return rep, gaveUp(ctx, err, refused)
		}
		if c.closed.Load() {
			if errors.Is(err, mux.ErrClosed) {
				return nil, ErrClosed
			}
			return nil, err // lost in flight at Close: the outcome is unknown
		}
		isRefusal := errors.Is(err, mux.ErrRefused)
		switch {
		case isRefusal:
			// Refused unread at the daemon's max_conns: "busy, retry".
			refused, dead = err, 0
		case !mux.Sent(err) && dead < maxNotSent:
			// Not sent: safe to send again, whatever the op.
			dead++
		case mux.Sent(err) && !resent && idempotent(op, req):
			// Sent, but the connection died before the answer (the
			// daemon closed it: idle, evicted at its max_conns,
			// shutting down): sending it again does what sending it
			// once does.
			resent, refused = true, nil
			continue
		default:
			return nil, err
		}
		if tries == 1 && !isRefusal {
			continue // the connection was found dead: redial at once
		}
		// Refused at the daemon's max_conns, or dead again: give the
		// daemon time to make room.
		backoff = min(max(2*backoff, retryBase), retryMax)
		t := time.NewTimer(rand.N(backoff) + 1)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, gaveUp(ctx, err, refused)
		}
	}
}

// gaveUp is the error of a call that ends with err: when ctx has ended
// and the daemon refused the call's connection since it was last sent
// (refused), it matches that refusal too, not sent, so that a front end
// answers "busy, retry" (OVERLOADED) rather than "daemon not responding"
// for a daemon that only refused it until its deadline.
func gaveUp(ctx context.Context, err, refused error) error {
	if refused == nil || err == refused || !ended(ctx) || mux.Sent(err) {
		return err
	}
	return fmt.Errorf("client: %w, after the daemon refused the call's connections: %w", err, refused)
}

// ended reports whether ctx has ended, by its error or by the clock: mux
// fails a call with context.DeadlineExceeded as soon as the clock passes
// ctx's deadline, which on a loaded machine can be before ctx's own timer
// has fired and ctx.Err() says so.
func ended(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// Resending a call that was not sent: after a refusal a backoff doubling
// from retryBase up to retryMax, until the call's deadline; after a
// connection found dead without a refusal, at most maxNotSent tries in a
// row.
const (
	maxNotSent = 64
	retryBase  = time.Millisecond
	retryMax   = 100 * time.Millisecond
)

// idempotent reports whether sending req again has the effect of sending
// it once: LOOKUP, UPDATE (the same Spec and meta), PING, and an ALLOCATE
// with an idempotency token (answered the first result). Not RELEASE (a
// second one answers NOT_FOUND when the first landed) nor an ALLOCATE
// without a token (a second bridge).
func idempotent(op wire.Op, req wire.Payload) bool {
	switch op {
	case wire.OpLookup, wire.OpUpdate, wire.OpPing:
		return true
	case wire.OpAllocate:
		a, ok := req.(*wire.AllocateRequest)
		return ok && len(a.Token) > 0
	}
	return false
}
