package route

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"switchboard/breaker"
	"switchboard/internal/clock/clocktest"
	"switchboard/internal/testsupport"
	"switchboard/pool"
	"switchboard/telsim"
	"switchboard/wire"
)

// The Router's own tests: a Router over real in-process telephony servers
// (telsim) and real pools on loopback, as the daemon builds it, without the
// daemon. The token TTL of the index runs on a fake clock; the breakers too.

// testKeys issues distinct 9-digit session keys.
type testKeys struct{ n atomic.Uint64 }

func (k *testKeys) Next() (uint64, error) { return 100_000_000 + k.n.Add(1), nil }

// outcomes counts a tier's attempts by Outcome (a TierObserver).
type outcomes struct{ n [NumOutcomes]atomic.Int64 }

func (c *outcomes) Attempt(o Outcome)   { c.n[o].Add(1) }
func (c *outcomes) get(o Outcome) int64 { return c.n[o].Load() }

// count is a Counter.
type count struct{ atomic.Int64 }

func (c *count) Inc() { c.Add(1) }

// testTier is one tier of a test Router: its simulator, pool and tier.
type testTier struct {
	sim  *telsim.Server
	tier *Tier
	obs  *outcomes
}

// testRouter is a Router with its tiers, its token clock and its orphan
// releaser started.
type testRouter struct {
	*Router
	tiers []*testTier
	clock *clocktest.Clock
}

const tokenTTL = time.Hour

// newTestRouter starts one simulator per tier name (capacity 100), a pool
// of one connection to each, waits until every pool is ready and returns a
// Router over them. Everything stops at cleanup: the releaser, the pools,
// then the simulators.
func newTestRouter(t *testing.T, names ...string) *testRouter {
	t.Helper()
	clk := clocktest.New(time.Unix(1_800_000_000, 0))
	tr := &testRouter{clock: clk}
	var tiers []*Tier
	for i, name := range names {
		sim, err := telsim.New(telsim.Config{Tier: name, ServerID: "sim-" + name, Capacity: 100})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sim.Close() })
		addr, err := sim.Start("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p, err := pool.New(pool.Config{Tier: name, Servers: []string{addr.String()}, MinConns: 1,
			BackoffBase: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond},
			pool.WithLogger(zap.NewNop()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			p.Shutdown(ctx)
		})
		ctx, cancel := context.WithTimeout(context.Background(), testsupport.WaitBound)
		err = p.WaitReady(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		obs := &outcomes{}
		tier := &Tier{Name: name, NameB: []byte(name), Pos: i, Pool: p,
			// Opened by one failure, and held open: its clock is fake.
			Breaker: breaker.New(name, breaker.Settings{Failures: 1, OpenFor: time.Hour}, breaker.WithClock(clk.Now)),
			Attempt: 5 * time.Second, Addrs: []string{addr.String()}, Ctl: &TierCtl{}, Obs: obs}
		tiers = append(tiers, tier)
		tr.tiers = append(tr.tiers, &testTier{sim: sim, tier: tier, obs: obs})
	}
	for _, tier := range tiers {
		tier.FailoverFrom = make([]Counter, len(tiers))
		for i := range tiers {
			tier.FailoverFrom[i] = &count{}
		}
	}
	r := New(zap.NewNop(), &testKeys{}, 32, tokenTTL, clk.Now)
	r.Swap(tiers)
	stop, err := r.OpenOrphans(t.TempDir(), 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop()
		r.Close()
	})
	tr.Router = r
	return tr
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testsupport.WaitBound)
	t.Cleanup(cancel)
	return ctx
}

func allocReq(name string) *wire.AllocateRequest {
	return &wire.AllocateRequest{Spec: wire.Spec{Name: []byte(name), TimeZone: 4, Duration: 30}, Meta: []byte("meta of " + name)}
}

// allocate runs one ALLOCATE and decodes its answer.
func (tr *testRouter) allocate(ctx context.Context, req *wire.AllocateRequest) (wire.AllocateResponse, error) {
	var rs Scratch
	var resp wire.AllocateResponse
	out, err := tr.Allocate(ctx, &rs, req, nil)
	if err != nil {
		return resp, err
	}
	if err := resp.Decode(out); err != nil {
		return resp, err
	}
	return resp, nil
}

// held is how many bridges the simulators hold in all.
func (tr *testRouter) held() int64 {
	var n int64
	for _, tt := range tr.tiers {
		n += tt.sim.Stats().Reservations
	}
	return n
}

func TestRouterAllocatesOnTheFirstTier(t *testing.T) {
	tr := newTestRouter(t, "primary", "nextgen")
	resp, err := tr.allocate(testCtx(t), allocReq("standup"))
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Tier) != "primary" || resp.Replayed || len(resp.Bridge.AttendeeCode) == 0 {
		t.Fatalf("answer %+v, want a fresh bridge on primary", resp)
	}
	p, n := tr.tiers[0], tr.tiers[1]
	if got := p.sim.Stats().Reservations; got != 1 {
		t.Fatalf("primary holds %d bridges, want 1", got)
	}
	if st := n.sim.Stats(); st.Reserves != 0 {
		t.Fatalf("nextgen got %d RESERVEs, want none", st.Reserves)
	}
	if p.obs.get(OutcomeOK) != 1 || tr.Stats().Failovers != 0 {
		t.Fatalf("primary's ok attempts %d, failovers %d; want 1 and 0", p.obs.get(OutcomeOK), tr.Stats().Failovers)
	}
	if id, ok := tr.SessionHolder(resp.Key); !ok || id != "sim-primary" {
		t.Fatalf("the index says %q (%v) holds the session, want sim-primary", id, ok)
	}
}

func TestRouterFailsOverWhenTheFirstTierIsFull(t *testing.T) {
	tr := newTestRouter(t, "primary", "nextgen")
	p, n := tr.tiers[0], tr.tiers[1]
	p.sim.SetCapacity(0)
	resp, err := tr.allocate(testCtx(t), allocReq("full"))
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Tier) != "nextgen" {
		t.Fatalf("served by %s, want nextgen", resp.Tier)
	}
	if p.obs.get(OutcomeCapacity) != 1 || n.obs.get(OutcomeOK) != 1 {
		t.Fatalf("primary: %d capacity; nextgen: %d ok; want 1 and 1", p.obs.get(OutcomeCapacity), n.obs.get(OutcomeOK))
	}
	if got, from := tr.Stats().Failovers, n.tier.FailoverFrom[0].(*count).Load(); got != 1 || from != 1 {
		t.Fatalf("%d failovers, %d to nextgen from primary; want 1 and 1", got, from)
	}
	// A full server is a healthy answer: primary's breaker stays closed.
	if st := p.tier.Breaker.State(); st != breaker.Closed {
		t.Fatalf("primary's breaker %v after CAPACITY, want closed", st)
	}
	// Every tier full: CAPACITY.
	n.sim.SetCapacity(1)
	if _, err := tr.allocate(testCtx(t), allocReq("all full")); !errors.Is(err, wire.StatusCapacity) {
		t.Fatalf("every tier full: %v, want CAPACITY", err)
	}
}

// TestRouterFailsOverWhenTheServerClosesMidRequest: the first tier's server
// takes the RESERVE and goes down before it answers. The allocation is
// served by the next tier (one retry, no error); the key the first server
// may hold is released there once it is back.
func TestRouterFailsOverWhenTheServerClosesMidRequest(t *testing.T) {
	tr := newTestRouter(t, "primary", "nextgen")
	p, n := tr.tiers[0], tr.tiers[1]
	p.sim.SetLatency(time.Minute, 0) // the RESERVE waits on the server
	type answer struct {
		resp wire.AllocateResponse
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := tr.allocate(testCtx(t), allocReq("cut"))
		done <- answer{resp, err}
	}()
	testsupport.WaitFor(t, "the RESERVE on primary", func() bool { return p.sim.Stats().Reserves == 1 })
	if err := p.sim.SetFault(telsim.Fault{Mode: telsim.ModeDown}); err != nil {
		t.Fatal(err)
	}
	a := <-done
	if a.err != nil {
		t.Fatalf("ALLOCATE with its first tier's server gone mid-request: %v", a.err)
	}
	if string(a.resp.Tier) != "nextgen" {
		t.Fatalf("served by %s, want nextgen", a.resp.Tier)
	}
	if got := n.sim.Stats().Reserves; got != 1 {
		t.Fatalf("nextgen got %d RESERVEs, want 1 (one retry)", got)
	}
	if p.obs.get(OutcomeFailure) != 1 || n.obs.get(OutcomeOK) != 1 {
		t.Fatalf("primary: %d failures; nextgen: %d ok; want 1 and 1", p.obs.get(OutcomeFailure), n.obs.get(OutcomeOK))
	}
	// The outcome on primary is unknown: its key is an orphan until
	// primary answers again, then released there (or found never held).
	if got := tr.Stats().Orphans; got != 1 {
		t.Fatalf("%d orphans pending, want 1 (the key primary may hold)", got)
	}
	p.sim.SetLatency(0, 0)
	if err := p.sim.SetFault(telsim.Fault{}); err != nil {
		t.Fatal(err)
	}
	testsupport.WaitFor(t, "the orphan released on primary", func() bool {
		return tr.Stats().Orphans == 0 && p.sim.Stats().Releases >= 1
	})
	if got := tr.held(); got != 1 {
		t.Fatalf("the simulators hold %d bridges, want 1 (the one nextgen answered)", got)
	}
}

// TestRouterSkipsATierWhoseBreakerIsOpen: a failing tier opens its breaker
// (one failure opens it here); the next allocation does not try it.
func TestRouterSkipsATierWhoseBreakerIsOpen(t *testing.T) {
	tr := newTestRouter(t, "primary", "nextgen")
	p, n := tr.tiers[0], tr.tiers[1]
	if err := p.sim.SetFault(telsim.Fault{Mode: telsim.ModeErrors}); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if resp, err := tr.allocate(ctx, allocReq("first")); err != nil || string(resp.Tier) != "nextgen" {
		t.Fatalf("with primary failing: %+v %v, want a bridge on nextgen", resp, err)
	}
	if st := p.tier.Breaker.State(); st != breaker.Open {
		t.Fatalf("primary's breaker %v after its failure, want open", st)
	}
	if err := p.sim.SetFault(telsim.Fault{}); err != nil { // healthy again, breaker still open
		t.Fatal(err)
	}
	if resp, err := tr.allocate(ctx, allocReq("second")); err != nil || string(resp.Tier) != "nextgen" {
		t.Fatalf("with primary's breaker open: %+v %v, want a bridge on nextgen", resp, err)
	}
	if got := p.sim.Stats().Reserves; got != 1 {
		t.Fatalf("primary got %d RESERVEs, want 1: its open breaker must skip it", got)
	}
	if p.obs.get(OutcomeFailure) != 1 || n.obs.get(OutcomeOK) != 2 {
		t.Fatalf("primary: %d failures; nextgen: %d ok; want 1 and 2", p.obs.get(OutcomeFailure), n.obs.get(OutcomeOK))
	}
}

func TestRouterLookupUpdateRelease(t *testing.T) {
	tr := newTestRouter(t, "primary", "nextgen")
	p := tr.tiers[0]
	ctx := testCtx(t)
	al, err := tr.allocate(ctx, allocReq("weekly"))
	if err != nil {
		t.Fatal(err)
	}
	var rs Scratch
	lookup := func() (wire.Reservation, error) {
		rs.Reset()
		var res wire.Reservation
		out, err := tr.Lookup(ctx, &rs, al.Key, nil)
		if err == nil {
			err = res.Decode(out)
		}
		return res, err
	}

	res, err := lookup()
	if err != nil {
		t.Fatal(err)
	}
	if res.Key != al.Key || string(res.Spec.Name) != "weekly" || string(res.Bridge.AttendeeCode) != string(al.Bridge.AttendeeCode) {
		t.Fatalf("LOOKUP %+v, want the session allocated (%+v)", res, al)
	}
	if got := p.sim.Stats().Lookups; got != 0 {
		t.Fatalf("%d LOOKUPs sent for an indexed session, want 0", got)
	}

	rs.Reset()
	upd := &wire.UpdateRequest{Key: al.Key, Spec: wire.Spec{Name: []byte("weekly, renamed"), TimeZone: 4, Duration: 60}}
	out, err := tr.Update(ctx, &rs, upd, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Decode(out); err != nil || string(res.Spec.Name) != "weekly, renamed" || string(res.Tier) != "primary" {
		t.Fatalf("UPDATE answered %+v (%v)", res, err)
	}
	if got := p.sim.Stats().Updates; got != 1 {
		t.Fatalf("%d UPDATEs reached primary, want 1", got)
	}

	// Not in the index: the servers are asked, and the update is there.
	tr.ForgetSession(al.Key)
	if res, err = lookup(); err != nil || res.Spec.Duration != 60 {
		t.Fatalf("LOOKUP of an unindexed session: %+v %v, want the updated one", res, err)
	}
	if got := p.sim.Stats().Lookups; got != 1 {
		t.Fatalf("%d LOOKUPs sent for an unindexed session, want 1", got)
	}

	rs.Reset()
	if _, err := tr.Release(ctx, &rs, al.Key, nil); err != nil {
		t.Fatal(err)
	}
	if got := tr.held(); got != 0 {
		t.Fatalf("the simulators hold %d bridges after RELEASE, want 0", got)
	}
	if _, err := lookup(); !errors.Is(err, wire.StatusNotFound) {
		t.Fatalf("LOOKUP after RELEASE: %v, want NOT_FOUND", err)
	}
	rs.Reset()
	if _, err := tr.Release(ctx, &rs, al.Key, nil); !errors.Is(err, wire.StatusNotFound) {
		t.Fatalf("second RELEASE: %v, want NOT_FOUND", err)
	}
	rs.Reset()
	if _, err := tr.Update(ctx, &rs, upd, nil); !errors.Is(err, wire.StatusNotFound) {
		t.Fatalf("UPDATE after RELEASE: %v, want NOT_FOUND", err)
	}
}

// TestRouterDefersAReleaseWhileItsServerIsDown: RELEASE of a session whose
// server is down is accepted, and carried out once the server is back: no
// bridge leaks.
func TestRouterDefersAReleaseWhileItsServerIsDown(t *testing.T) {
	tr := newTestRouter(t, "primary", "nextgen")
	p := tr.tiers[0]
	ctx := testCtx(t)
	al, err := tr.allocate(ctx, allocReq("deferred"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.sim.SetFault(telsim.Fault{Mode: telsim.ModeDown}); err != nil {
		t.Fatal(err)
	}
	testsupport.WaitFor(t, "primary's pool without a live connection", func() bool { return p.tier.Pool.Live() == 0 })
	var rs Scratch
	if _, err := tr.Release(ctx, &rs, al.Key, nil); err != nil {
		t.Fatalf("RELEASE with its server down: %v, want it accepted", err)
	}
	if got := tr.Stats().Orphans; got != 1 {
		t.Fatalf("%d releases pending, want 1", got)
	}
	if got := tr.held(); got != 1 {
		t.Fatalf("the simulators hold %d bridges while primary is down, want 1", got)
	}
	rs.Reset()
	if _, err := tr.Lookup(ctx, &rs, al.Key, nil); !errors.Is(err, wire.StatusNotFound) {
		t.Fatalf("LOOKUP of a session whose release is deferred: %v, want NOT_FOUND", err)
	}
	if err := p.sim.SetFault(telsim.Fault{}); err != nil {
		t.Fatal(err)
	}
	testsupport.WaitFor(t, "the deferred release carried out", func() bool { return tr.held() == 0 && tr.Stats().Orphans == 0 })
}

// TestRouterReplaysAnIdempotencyToken: a second ALLOCATE with a token gets
// the first one's bridge, flagged Replayed, without a second RESERVE; so do
// concurrent ones (one flight). Once the token's TTL has passed, the token
// allocates afresh.
func TestRouterReplaysAnIdempotencyToken(t *testing.T) {
	tr := newTestRouter(t, "primary", "nextgen")
	p := tr.tiers[0]
	ctx := testCtx(t)
	req := allocReq("retried")
	req.Token = []byte("token-1")
	first, err := tr.allocate(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.Replayed {
		t.Fatal("the first ALLOCATE of a token answered as replayed")
	}
	const retries = 8
	var wg sync.WaitGroup
	answers := make([]wire.AllocateResponse, retries)
	errs := make([]error, retries)
	for i := range retries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i], errs[i] = tr.allocate(ctx, req)
		}()
	}
	wg.Wait()
	for i := range retries {
		a := answers[i]
		if errs[i] != nil || !a.Replayed || a.Key != first.Key || string(a.Tier) != string(first.Tier) ||
			string(a.Bridge.AttendeeCode) != string(first.Bridge.AttendeeCode) {
			t.Fatalf("retry %d: %+v %v, want the first answer (%+v) replayed", i, a, errs[i], first)
		}
	}
	if got := p.sim.Stats().Reserves; got != 1 {
		t.Fatalf("%d RESERVEs for one token, want 1", got)
	}
	tr.clock.Advance(tokenTTL + time.Second)
	again, err := tr.allocate(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if again.Replayed || again.Key == first.Key {
		t.Fatalf("the token after its TTL: %+v, want a fresh allocation", again)
	}
	if got := tr.held(); got != 2 {
		t.Fatalf("the simulators hold %d bridges, want 2", got)
	}
}
