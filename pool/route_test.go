package pool

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"switchboard/internal/testsupport"
	"switchboard/mux"
	"switchboard/wire"
)

// TestRoundTripToGoesToThatServer: with two servers in one tier, RoundTripOn
// names the server that served each call, RoundTripTo reaches only the server
// asked for, and a server with no live connection is ErrServerDown (an
// unknown id ErrUnknownServer), neither of them sent.
func TestRoundTripToGoesToThatServer(t *testing.T) {
	a, b := startTel(t, "127.0.0.1:0"), startTel(t, "127.0.0.1:0")
	cfg := testConfig(a.addr, b.addr)
	cfg.HeartbeatInterval = time.Hour
	p := newPool(t, cfg)
	waitReady(t, p)
	idA, idB := "tel-"+a.addr, "tel-"+b.addr
	if got, want := p.ServerIDs(), []string{idA, idB}; !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Fatalf("ServerIDs %v, want %v", got, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seen := map[string]int{}
	for k := range 8 {
		rep, id, err := p.RoundTripOn(ctx, wire.OpReserve, &wire.UpdateRequest{Key: uint64(k + 1)})
		if err != nil {
			t.Fatal(err)
		}
		rep.Release()
		seen[id]++
	}
	if seen[idA] == 0 || seen[idB] == 0 || len(seen) != 2 {
		t.Fatalf("RoundTripOn served by %v, want both servers", seen)
	}
	before := b.reserves.Load()
	for k := range 8 {
		rep, err := p.RoundTripTo(ctx, idA, wire.OpReserve, &wire.UpdateRequest{Key: uint64(100 + k)})
		if err != nil {
			t.Fatal(err)
		}
		rep.Release()
	}
	if n := b.reserves.Load(); n != before {
		t.Fatalf("RoundTripTo(%s) reached the other server %d times", idA, n-before)
	}

	b.kill()
	testsupport.WaitFor(t, "b's connections gone", func() bool { return p.Live() == cfg.withDefaults().MinConns })
	_, err := p.RoundTripTo(ctx, idB, wire.OpReserve, &wire.UpdateRequest{Key: 200})
	if !errors.Is(err, ErrServerDown) || mux.Sent(err) {
		t.Fatalf("RoundTripTo a down server: %v, want ErrServerDown", err)
	}
	if !p.HasServer(idB) || !slices.Contains(p.ServerIDs(), idB) {
		t.Fatalf("a down server is still a server of the pool: %v", p.ServerIDs())
	}
	_, err = p.RoundTripTo(ctx, "nobody", wire.OpReserve, &wire.UpdateRequest{Key: 201})
	if !errors.Is(err, ErrUnknownServer) || mux.Sent(err) {
		t.Fatalf("RoundTripTo an unknown server: %v, want ErrUnknownServer", err)
	}
}
