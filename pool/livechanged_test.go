package pool

import (
	"context"
	"testing"
	"time"
)

// closedWithin reports whether ch is closed within d (a generous bound for a
// progress wait, never a latency check).
func closedWithin(ch <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestLiveChangedOnDeathAndShutdown: the channel LiveChanged returns stays
// open while nothing happens, is closed by the peer's close of the only
// connection with Live() already 0 when it is seen closed (the death swaps
// the live set before it wakes the waiters), and a fresh one is closed by
// Shutdown.
func TestLiveChangedOnDeathAndShutdown(t *testing.T) {
	s := startTel(t, "127.0.0.1:0")
	cfg := testConfig(s.addr)
	cfg.MinConns = 1
	cfg.HeartbeatInterval = time.Hour
	p := newPool(t, cfg)
	waitReady(t, p)

	ch := p.LiveChanged()
	if p.Live() != 1 {
		t.Fatalf("Live() = %d, want 1", p.Live())
	}
	if isClosed(ch) {
		t.Fatal("LiveChanged closed with nothing changed")
	}
	s.kill() // listener and connection: no redial can succeed
	if !closedWithin(ch, 10*time.Second) {
		t.Fatal("LiveChanged not closed 10s after the peer closed the only connection")
	}
	if n := p.Live(); n != 0 {
		t.Fatalf("Live() = %d when LiveChanged closed after the death, want 0", n)
	}

	ch = p.LiveChanged()
	if isClosed(ch) {
		t.Fatal("a fresh LiveChanged is already closed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if !isClosed(ch) {
		t.Fatal("LiveChanged not closed by Shutdown")
	}
}
