package daemon

import (
	"errors"
	"fmt"
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

func rawPing(id uint64, c io.ReadWriter) error {
	f, _ := wire.AppendFrame(nil, wire.Header{Op: wire.OpPing, ID: id}, nil, wire.DefaultMaxFrame)
	if _, err := c.Write(f); err != nil {
		return err
	}
	h, pl, _, err := wire.ReadFrame(c, nil, wire.DefaultMaxFrame)
	if err == nil && (h.Op != wire.OpPing || h.ID != id || h.Status != wire.StatusOK) {
		err = fmt.Errorf("answer %v id %d %v: %w", h.Op, h.ID, h.Status, wire.DecodeError(h.Status, pl))
	}
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
	t0 := h.d.srv.Stats().Clock
	waitFor(t, "a reaper tick", 5*time.Second, func() bool { return h.d.srv.Stats().Clock != t0 })
	a, b := rawConn(t, h.sock), rawConn(t, h.sock)
	for i, c := range []io.ReadWriter{a, b} {
		if err := rawPing(uint64(i+1), c); err != nil {
			t.Fatalf("connection %d within max_conns: %v", i+3, err)
		}
	}
	waitFor(t, "4 connections counted", 5*time.Second, func() bool { return h.d.srv.Stats().Open == 4 })
	over := rawConn(t, h.sock)
	if err := rawPing(9, over); err != nil {
		t.Fatalf("a new connection at max_conns was not served: %v", err)
	}
	if n := h.d.srv.Stats().CutCount("evicted"); n != 1 {
		t.Fatalf("%d connections evicted, want 1", n)
	}
	if n := h.d.srv.Stats().Refused; n != 0 {
		t.Fatalf("%d connections refused, want 0", n)
	}
	waitFor(t, "the evicted connection uncounted", 5*time.Second, func() bool { return h.d.srv.Stats().Open == 4 })
	// The recently active ones still work; the harness's client redials
	// (evicting its other idle connection).
	if err := rawPing(3, a); err != nil {
		t.Fatalf("active connection after an eviction: %v", err)
	}
	if err := rawPing(4, b); err != nil {
		t.Fatalf("active connection after an eviction: %v", err)
	}
	if _, err := h.c.Allocate(ctxT(t), &wire.AllocateRequest{Spec: spec("still serving")}); err != nil {
		t.Fatal(err)
	}
}

// TestMaxConnsPerUID: past server.max_conns_per_uid a connection from the
// same uid is refused at accept and counted; closing one frees its slot.
// (Every connection of the test has the test's uid.)
func TestMaxConnsPerUID(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			// The harness's client holds 2 connections: 1 more fits.
			h := startDaemon(t, func(c *Config) {
				c.Server.Transport = tr
				c.Server.MaxConnsPerUID = 3
			})
			a := rawConn(t, h.sock)
			if err := rawPing(1, a); err != nil {
				t.Fatalf("connection within max_conns_per_uid: %v", err)
			}
			if err := rawPing(2, rawConn(t, h.sock)); err == nil {
				t.Fatal("a connection past max_conns_per_uid was served")
			}
			if n := h.d.srv.Stats().Refused; n != 1 {
				t.Fatalf("%d connections refused, want 1", n)
			}
			a.Close()
			waitFor(t, "the closed connection uncounted", 5*time.Second, func() bool { return h.d.srv.Stats().Open == 2 })
			if err := rawPing(3, rawConn(t, h.sock)); err != nil {
				t.Fatalf("connection into a freed slot: %v", err)
			}
		})
	}
}

// TestRefusedConnectionToldGoodbye: a connection refused at accept reads a
// GOODBYE frame (op 0, id 0, OVERLOADED, the limit named) before EOF, so a
// client knows nothing it wrote on it was read (docs/protocol.md §2.3).
// Before, it read EOF alone and could not tell a refusal from a cut.
func TestRefusedConnectionToldGoodbye(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			h := startDaemon(t, func(c *Config) {
				c.Server.Transport = tr
				c.Server.MaxConnsPerUID = 2 // the harness's client holds 2
			})
			c := rawConn(t, h.sock)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			hd, pl, _, err := wire.ReadFrame(c, nil, wire.DefaultMaxFrame)
			if err != nil {
				t.Fatalf("a connection refused at max_conns_per_uid: %v, want a GOODBYE frame", err)
			}
			var m wire.ErrorMessage
			if hd.Op != wire.OpGoodbye || hd.ID != 0 || !hd.IsResponse() || hd.Status != wire.StatusOverloaded || m.Decode(pl) != nil || string(m.Message) != "refused: at max_conns_per_uid" {
				t.Fatalf("refusal frame %+v %q, want GOODBYE id 0 OVERLOADED %q", hd, m.Message, "refused: at max_conns_per_uid")
			}
			if _, _, _, err := wire.ReadFrame(c, nil, wire.DefaultMaxFrame); !errors.Is(err, io.EOF) {
				t.Fatalf("after GOODBYE: %v, want EOF", err)
			}
		})
	}
}
