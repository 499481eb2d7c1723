package daemon

import (
	"io"
	"testing"
	"time"

	"switchboard/wire"
)

// TestMaxConns: past server.max_conns a new front-end connection is closed
// at accept and counted; the connections already open keep working, and a
// slot freed by a close is taken by the next connection.
func TestMaxConns(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { testMaxConns(t, tr) })
	}
}

func testMaxConns(t *testing.T, tr string) {
	// The harness's client holds 2 connections: 2 more fit.
	h := startDaemon(t, func(c *Config) {
		c.Server.Transport = tr
		c.Server.MaxConns = 4
	})
	ping := func(id uint64, c io.ReadWriter) error {
		f, _ := wire.AppendFrame(nil, wire.Header{Op: wire.OpPing, ID: id}, nil, wire.DefaultMaxFrame)
		if _, err := c.Write(f); err != nil {
			return err
		}
		_, _, _, err := wire.ReadFrame(c, nil, wire.DefaultMaxFrame)
		return err
	}
	a, b := rawConn(t, h.sock), rawConn(t, h.sock)
	for i, c := range []io.ReadWriter{a, b} {
		if err := ping(uint64(i+1), c); err != nil {
			t.Fatalf("connection %d within max_conns: %v", i+3, err)
		}
	}
	waitFor(t, "4 connections counted", 5*time.Second, func() bool { return h.d.srv.open.Load() == 4 })
	over := rawConn(t, h.sock)
	if err := ping(9, over); err == nil {
		t.Fatal("a connection past max_conns was served")
	}
	if n := h.d.srv.stats.refusedConns.Load(); n != 1 {
		t.Fatalf("%d connections refused, want 1", n)
	}
	// The open ones still work; closing one frees its slot.
	if err := ping(3, a); err != nil {
		t.Fatalf("open connection after a refusal: %v", err)
	}
	b.Close()
	waitFor(t, "the closed connection uncounted", 5*time.Second, func() bool { return h.d.srv.open.Load() == 3 })
	if err := ping(4, rawConn(t, h.sock)); err != nil {
		t.Fatalf("connection into a freed slot: %v", err)
	}
	if _, err := h.c.Allocate(ctxT(t), &wire.AllocateRequest{Spec: spec("still serving")}); err != nil {
		t.Fatal(err)
	}
}
