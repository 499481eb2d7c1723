package pool

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// maintain is the pool's maintenance goroutine: it reconciles the
// connections with the configuration whenever it is woken (a death, a dial's
// end, Retune, a drain) or its timer fires (a backoff or a max age expires).
// Owner: the Pool; stop: Pool.stop; done: Pool.maintEnd.
func (p *Pool) maintain() {
	defer close(p.maintEnd)
	t := p.clock.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-p.wake:
		case <-t.C():
		}
		if d := p.reconcile(); d > 0 {
			t.Reset(d)
		} else {
			t.Stop()
		}
	}
}

// reconcile starts the dials that are due, marks aged connections for
// replacement and retires the connections no longer needed. It returns how
// long until something becomes due (0: nothing pending).
func (p *Pool) reconcile() time.Duration {
	cfg := p.cfg.Load()
	now := p.clock.Now()
	var next time.Duration
	soonest := func(d time.Duration) {
		if d <= 0 {
			d = time.Nanosecond
		}
		if next == 0 || d < next {
			next = d
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shut {
		return 0
	}
	changed := false
	for _, s := range p.servers {
		// Keepers: usable connections not past their max age, oldest first.
		var keepers, replacing []*conn
		for _, c := range s.conns {
			if c.draining.Load() {
				continue
			}
			if cfg.MaxAge > 0 && !c.replacing {
				due := c.created.Add(cfg.MaxAge + c.maxAgeJitter(cfg.MaxAgeJitter))
				if now.Before(due) {
					soonest(due.Sub(now))
				} else {
					c.replacing = true
					p.log.Info("pool: recycling an aged connection", zap.String("addr", s.addr), zap.Duration("age", now.Sub(c.created)))
				}
			}
			if c.replacing {
				replacing = append(replacing, c)
			} else {
				keepers = append(keepers, c)
			}
		}
		if len(keepers) >= cfg.MinConns {
			// Enough: aged connections go, and so do the oldest extras when
			// MinConns was lowered.
			for _, c := range replacing {
				p.drainLocked(c)
				changed = true
			}
			for _, c := range keepers[:len(keepers)-cfg.MinConns] {
				p.drainLocked(c)
				changed = true
			}
			continue
		}
		missing := cfg.MinConns - len(keepers) - s.dialing
		switch {
		case missing <= 0:
		case s.failures == 0:
			for range missing {
				p.startDialLocked(s)
			}
		case s.dialing > 0:
			// A probe is in flight; its result decides.
		case now.Before(s.nextDial):
			soonest(s.nextDial.Sub(now))
		default:
			p.startDialLocked(s) // one probe while failing
		}
	}
	if changed {
		p.publishLocked()
	}
	return next
}

// drainLocked takes c out of the live set; its goroutine closes it once its
// in-flight calls are done.
func (p *Pool) drainLocked(c *conn) {
	c.replacing = false
	c.draining.Store(true)
	c.kick()
}

// startDialLocked starts one asynchronous dial to s.
func (p *Pool) startDialLocked(s *server) {
	s.dialing++
	s.dials++
	p.wg.Add(1)
	go p.dialOne(s)
}

// dialOne dials and handshakes one connection to s and registers it, or
// records the failure and its backoff. Owner: the Pool (wg); bounded by
// DialTimeout and cancelled by Shutdown.
func (p *Pool) dialOne(s *server) {
	defer p.wg.Done()
	cfg := p.cfg.Load()
	ctx, cancel := context.WithTimeout(p.ctx, cfg.DialTimeout)
	defer cancel()
	c, load, id, err := p.connect(ctx, s, cfg)
	now := p.clock.Now()

	p.mu.Lock()
	s.dialing--
	var lost *conn
	if err == nil && !c.mc.Alive() {
		// Died between its HELLO and now (mux's OnClose finds it
		// unregistered): a server that accepts and drops is backed off like
		// one that refuses.
		lost = c
		err = fmt.Errorf("connection to %s lost right after HELLO: %w", s.addr, c.mc.Err())
	}
	if err == nil {
		if other := p.serverWithIDLocked(id, s); other != nil {
			// Sessions are bound to servers by this id: two servers
			// answering as one would get each other's follow-ups.
			if !s.duplicate {
				s.duplicate = true
				p.publishLocked()
			}
			lost = c
			err = fmt.Errorf("%w: %s answered HELLO as %q, already the id of %s (every server needs its own id)", ErrDuplicateServerID, s.addr, id, other.addr)
		}
	}
	if err != nil {
		if lost != nil {
			defer lost.mc.Close() // after unlocking: Close waits for OnClose, which takes p.mu
		}
		if p.shut {
			p.mu.Unlock()
			return
		}
		s.dialFailures++
		s.failures++
		s.lastErr, s.lastErrAt = err, now
		d := backoff(cfg.BackoffBase, cfg.BackoffMax, s.failures, p.randN)
		s.nextDial = now.Add(d)
		failures := s.failures
		p.mu.Unlock()
		p.kick()
		p.log.Warn("pool: dial failed", zap.String("addr", s.addr), zap.Error(err), zap.Int("failures", failures), zap.Duration("backoff", d))
		return
	}
	if p.shut {
		p.mu.Unlock()
		c.mc.Close()
		return
	}
	c.created = now
	c.jitterDraw = p.randN(jitterScale)
	c.prevFailures, s.failures = s.failures, 0
	c.registered = true
	c.serverID = id
	s.duplicate = false
	s.conns = append(s.conns, c)
	s.serverID, s.load, s.loadAt = id, load, now
	p.publishLocked()
	p.wg.Add(1)
	p.mu.Unlock()
	go c.run()
	p.kick()
	if ce := p.log.Check(zap.InfoLevel, "pool: connection up"); ce != nil {
		ce.Write(zap.String("addr", s.addr), zap.String("server_id", id))
	}
}

// serverWithIDLocked returns a server other than s that answered HELLO as
// id and has a connection now, or nil. p.mu must be held. One with none
// may be the same server, moved to s (a standby address): it is let in.
func (p *Pool) serverWithIDLocked(id string, s *server) *server {
	for _, o := range p.servers {
		if o != s && o.serverID == id && len(o.conns) > 0 {
			return o
		}
	}
	return nil
}
