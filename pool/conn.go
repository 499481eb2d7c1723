package pool

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"switchboard/mux"
	"switchboard/wire"
)

// jitterScale is the resolution of a connection's max-age jitter draw.
const jitterScale = 1 << 20

// conn is one handshaken connection of a pool. Its mutable fields are
// atomics or guarded by Pool.mu, as marked.
type conn struct {
	p   *Pool
	srv *server
	mc  *mux.Conn

	serverID string // from its HELLO; set before it is published, then read-only

	inflight atomic.Int64 // RoundTrips using it
	draining atomic.Bool  // out of the live set; closes when inflight is 0

	// Guarded by Pool.mu.
	created      time.Time
	jitterDraw   int64 // uniform in [0, jitterScale): its share of MaxAgeJitter
	prevFailures int   // the server's failure count before this handshake
	registered   bool  // in srv.conns
	replacing    bool  // past its max age; a replacement is wanted

	wake chan struct{} // 1-buffered: drain check, retune
	dead chan struct{} // closed once the connection has died
}

// kick wakes the connection's goroutine without blocking.
func (c *conn) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// maxAgeJitter is the connection's share of j.
func (c *conn) maxAgeJitter(j time.Duration) time.Duration {
	return time.Duration(float64(j) * float64(c.jitterDraw) / jitterScale)
}

// connect dials addr and handshakes. The returned connection is not yet
// registered with the pool.
func (p *Pool) connect(ctx context.Context, s *server, cfg *Config) (*conn, wire.Load, string, error) {
	nc, err := p.dial(ctx, "tcp", s.addr)
	if err != nil {
		return nil, wire.Load{}, "", fmt.Errorf("dial %s: %w", s.addr, err)
	}
	c := &conn{p: p, srv: s, wake: make(chan struct{}, 1), dead: make(chan struct{})}
	c.mc = mux.New(nc, mux.Config{MaxFrame: cfg.MaxFrame, MaxInFlight: cfg.MaxInFlight},
		mux.WithOnClose(func(err error) { p.connDied(c, err) }),
		mux.WithLogger(p.log))
	rep, err := c.mc.Call(ctx, wire.OpHello, &wire.Hello{Client: []byte(cfg.Client)})
	if err != nil {
		c.mc.Close()
		return nil, wire.Load{}, "", fmt.Errorf("HELLO to %s: %w", s.addr, err)
	}
	var hr wire.HelloResponse
	err = hr.Decode(rep.Payload)
	id, tier, load := string(hr.Server), string(hr.Tier), hr.Load
	rep.Release()
	if err != nil {
		c.mc.Close()
		return nil, wire.Load{}, "", fmt.Errorf("HELLO response from %s: %w", s.addr, err)
	}
	if tier != cfg.Tier {
		p.log.Warn("pool: server serves another tier", zap.String("addr", s.addr), zap.String("server_id", id), zap.String("server_tier", tier))
	}
	return c, load, id, nil
}

// run is the connection's goroutine: heartbeats, retune and drain. Owner:
// the Pool (wg); stop: Pool.stop or the connection's death; done: wg.
func (c *conn) run() {
	defer c.p.wg.Done()
	p := c.p
	interval := p.cfg.Load().HeartbeatInterval
	t := p.clock.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			c.mc.Close()
			return
		case <-c.dead:
			c.mc.Close() // reaps mux's reader
			return
		case <-c.wake:
			if c.draining.Load() && c.inflight.Load() == 0 {
				c.mc.Close()
				return
			}
			if iv := p.cfg.Load().HeartbeatInterval; iv != interval {
				interval = iv
				t.Reset(iv)
			}
		case <-t.C():
			c.heartbeat()
			interval = p.cfg.Load().HeartbeatInterval
			t.Reset(interval)
			if c.draining.Load() && c.inflight.Load() == 0 {
				c.kick()
			}
		}
	}
}

// heartbeat sends one TPING and kills the connection if no PONG comes back
// within HeartbeatTimeout.
func (c *conn) heartbeat() {
	p := c.p
	cfg := p.cfg.Load()
	ctx, cancel := context.WithCancel(p.ctx)
	var timedOut atomic.Bool
	tm := p.clock.AfterFunc(cfg.HeartbeatTimeout, func() {
		timedOut.Store(true)
		cancel()
	})
	rep, err := c.mc.Call(ctx, wire.OpTelPing, nil)
	tm.Stop()
	cancel()
	switch {
	case err == nil:
		var l wire.Load
		derr := l.Decode(rep.Payload)
		rep.Release()
		if derr != nil {
			c.mc.CloseWithError(fmt.Errorf("%w: bad PONG: %w", mux.ErrProtocol, derr))
			return
		}
		now := p.clock.Now()
		p.mu.Lock()
		c.srv.load, c.srv.loadAt = l, now
		p.mu.Unlock()
	case timedOut.Load() && errors.Is(err, mux.ErrUnknownOutcome):
		c.mc.CloseWithError(ErrHeartbeatTimeout)
	default:
		// An error response means the server is alive; ErrBusy means the
		// connection is saturated, hence alive; a dead connection is
		// noticed through c.dead; a cancelled pool is shutting down.
		if ce := p.log.Check(zap.DebugLevel, "pool: heartbeat not answered with a PONG"); ce != nil {
			ce.Write(zap.String("addr", c.srv.addr), zap.Error(err))
		}
	}
}

// connDied is mux's OnClose: it runs on the dead connection's reader
// goroutine, removes the connection from the live set at once and wakes the
// maintenance goroutine.
func (p *Pool) connDied(c *conn, cause error) {
	now := p.clock.Now()
	retired := errors.Is(cause, mux.ErrClosed) // closed by the pool: drained or shut down
	var backoffFor time.Duration
	p.mu.Lock()
	registered := c.registered
	if registered {
		c.registered = false
		s := c.srv
		for i, x := range s.conns {
			if x == c {
				s.conns = append(s.conns[:i:i], s.conns[i+1:]...)
				break
			}
		}
		if !retired && !p.shut {
			s.lastErr, s.lastErrAt = cause, now
			cfg := p.cfg.Load()
			if now.Sub(c.created) < cfg.HeartbeatInterval {
				// Died right after its handshake: back off as for a failed dial.
				s.failures = c.prevFailures + 1
				backoffFor = backoff(cfg.BackoffBase, cfg.BackoffMax, s.failures, p.randN)
				s.nextDial = now.Add(backoffFor)
			}
		}
		p.publishLocked()
	}
	p.mu.Unlock()
	close(c.dead)
	p.kick()
	if registered && !retired {
		p.log.Warn("pool: connection lost", zap.String("addr", c.srv.addr), zap.Error(cause), zap.Duration("backoff", backoffFor))
	}
}
