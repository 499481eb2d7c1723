package httpbound

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// newGrace is how long a connection may stay without a first request
// before it can be closed to make room, like an idle one.
const newGrace = time.Second

// Bound returns ln wrapped so that srv holds at most n connections open
// at once (n < 1 means 1), and sets srv.ConnState to track them (a hook
// already set is still called). Serve srv on the returned listener only.
func Bound(srv *http.Server, ln net.Listener, n int) net.Listener {
	l := &listener{Listener: ln, max: max(n, 1), conns: map[*conn]struct{}{}, freed: make(chan struct{}, 1), done: make(chan struct{}), now: time.Now}
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		l.state(c, st)
		if prev != nil {
			prev(c, st)
		}
	}
	return l
}

type listener struct {
	net.Listener
	max   int
	now   func() time.Time
	freed chan struct{} // a slot was freed, or a connection went idle (1-buffered)
	done  chan struct{} // closed by Close
	once  sync.Once

	mu    sync.Mutex
	conns map[*conn]struct{} // open connections; guarded by mu
}

// conn is an accepted connection; its state is guarded by listener.mu.
type conn struct {
	net.Conn
	l       *listener
	waiting bool      // new (no request yet) or idle (between requests)
	idle    bool      // idle: it has served a request
	since   time.Time // when it started waiting
	once    sync.Once
}

// Close closes the connection and frees its slot (once).
func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
		c.l.wake()
	})
	return err
}

// wake tells an Accept waiting for a slot to look again; it never blocks.
func (l *listener) wake() {
	select {
	case l.freed <- struct{}{}:
	default:
	}
}

func (l *listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := &conn{Conn: nc, l: l, waiting: true}
	for {
		l.mu.Lock()
		now := l.now()
		if len(l.conns) < l.max {
			c.since = now
			l.conns[c] = struct{}{}
			l.mu.Unlock()
			return c, nil
		}
		victim := l.victimLocked(now)
		l.mu.Unlock()
		if victim != nil {
			victim.Close() // frees its slot now; its server goroutine then ends
			continue
		}
		// Every connection busy: wait for one to end or go idle, or for a
		// silent one to pass newGrace.
		t := time.NewTimer(newGrace)
		select {
		case <-l.freed:
		case <-t.C:
		case <-l.done:
			t.Stop()
			nc.Close()
			return nil, net.ErrClosed
		}
		t.Stop()
	}
}

// victimLocked returns the connection idle the longest, else the one
// waiting the longest for its first request past newGrace; nil when every
// connection has a request in progress.
func (l *listener) victimLocked(now time.Time) *conn {
	var idle, fresh *conn
	for c := range l.conns {
		switch {
		case !c.waiting:
		case c.idle:
			if idle == nil || c.since.Before(idle.since) {
				idle = c
			}
		case now.Sub(c.since) >= newGrace:
			if fresh == nil || c.since.Before(fresh.since) {
				fresh = c
			}
		}
	}
	if idle != nil {
		return idle
	}
	return fresh
}

// state is srv.ConnState: it records whether c has a request in progress.
func (l *listener) state(nc net.Conn, st http.ConnState) {
	c, ok := nc.(*conn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch st {
	case http.StateActive:
		c.waiting = false
	case http.StateIdle:
		c.waiting, c.idle, c.since = true, true, l.now()
		l.wake() // it may make room
	case http.StateHijacked:
		c.waiting = false // the handler owns it now
	}
}

// Close closes the listener and wakes an Accept waiting for a slot.
func (l *listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}
