package daemon

import (
	"io"
	"testing"
	"time"

	"switchboard/wire"
)

// TestMaxConns: at server.max_conns a new front-end connection is still
// served: the longest-idle connection is cut to make room (logged and
// counted as evicted); the recently active ones keep working.
func TestMaxConns(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { testMaxConns(t, tr) })
	}
}

func ping(id uint64, c io.ReadWriter) error {
	f, _ := wire.AppendFrame(nil, wire.Header{Op: wire.OpPing, ID: id}, nil, wire.DefaultMaxFrame)
	if _, err := c.Write(f); err != nil {
		return err
	}
	_, _, _, err := wire.ReadFrame(c, nil, wire.DefaultMaxFrame)
	return err
}

func testMaxConns(t *testing.T, tr string) {
	// The harness's client holds 2 connections: 2 more fit.
	h := startDaemon(t, func(c *Config) {
		c.Server.Transport = tr
		c.Server.MaxConns = 4
		c.Server.IdleTimeout = time.Hour // the reaper ticks every second
	})
	// The harness's connections are stamped at accept; a and b later.
	t0 := h.d.srv.clock.Load()
	waitFor(t, "a reaper tick", 5*time.Second, func() bool { return h.d.srv.clock.Load() != t0 })
	a, b := rawConn(t, h.sock), rawConn(t, h.sock)
	for i, c := range []io.ReadWriter{a, b} {
		if err := ping(uint64(i+1), c); err != nil {
			t.Fatalf("connection %d within max_conns: %v", i+3, err)
		}
	}
	waitFor(t, "4 connections counted", 5*time.Second, func() bool { return h.d.srv.open.Load() == 4 })
	over := rawConn(t, h.sock)
	if err := ping(9, over); err != nil {
		t.Fatalf("a new connection at max_conns was not served: %v", err)
	}
	if n := h.d.srv.stats.cuts[cutEvicted].Load(); n != 1 {
		t.Fatalf("%d connections evicted, want 1", n)
	}
	if n := h.d.srv.stats.refusedConns.Load(); n != 0 {
		t.Fatalf("%d connections refused, want 0", n)
	}
	waitFor(t, "the evicted connection uncounted", 5*time.Second, func() bool { return h.d.srv.open.Load() == 4 })
	// The recently active ones still work; the harness's client redials
	// (evicting its other idle connection).
	if err := ping(3, a); err != nil {
		t.Fatalf("active connection after an eviction: %v", err)
	}
	if err := ping(4, b); err != nil {
		t.Fatalf("active connection after an eviction: %v", err)
	}
	if _, err := h.c.Allocate(ctxT(t), &wire.AllocateRequest{Spec: spec("still serving")}); err != nil {
		t.Fatal(err)
	}
}
