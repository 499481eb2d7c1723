package daemon

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"switchboard/internal/testhook"
	"switchboard/telsim"
	"switchboard/wire"
)

// twoServerPrimary runs primary-large on two telsim processes (as
// configs/production.yaml has two servers per tier); the other tiers stay
// in-process simulators.
func twoServerPrimary(t *testing.T) (h *harness, a, b *telsimProc) {
	bin := telsimBin(t)
	a = startTelsimProc(t, bin, "primary-large", "pl-a")
	b = startTelsimProc(t, bin, "primary-large", "pl-b")
	h = startDaemon(t, func(c *Config) {
		chaosConfig(c)
		c.Tiers[0].Servers = []string{a.addr, b.addr}
		c.Tiers[0].AttemptTimeout = 2 * time.Second
		c.Server.RequestTimeout = 5 * time.Second
	})
	return h, a, b
}

// heldBy returns the server id the index records for key.
func heldBy(t *testing.T, h *harness, key uint64) string {
	t.Helper()
	id, ok := h.d.rt.SessionHolder(key)
	if !ok {
		t.Fatalf("session %d not in the index", key)
	}
	return id
}

// TestTwoServerTierFollowUpsGoToTheHolder is issue 10, point 1: with two
// servers in a tier, 37 sessions allocated one at a time are each looked
// up, updated, looked up again (from the index and, after the index lost
// it, from the servers) and released, and every one of those succeeds and
// leaves no bridge held on either telsim.
func TestTwoServerTierFollowUpsGoToTheHolder(t *testing.T) {
	h, a, b := twoServerPrimary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var keys []uint64
	for range 37 {
		al, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("one at a time")})
		if err != nil || al.Tier != "primary-large" {
			t.Fatalf("allocate: %+v %v", al, err)
		}
		keys = append(keys, al.Key)
	}
	na, nb := a.stats(t).Reservations, b.stats(t).Reservations
	if na+nb != 37 || na == 0 || nb == 0 {
		t.Fatalf("reservations %d on pl-a and %d on pl-b, want 37 spread over both", na, nb)
	}
	for i, k := range keys {
		if _, err := h.c.Lookup(ctx, k); err != nil {
			t.Fatalf("lookup %d: %v", k, err)
		}
		s2 := spec("updated")
		if _, err := h.c.Update(ctx, k, &s2, []byte("v2")); err != nil {
			t.Fatalf("update %d: %v", k, err)
		}
		if i%2 == 0 {
			h.d.rt.ForgetSession(k) // the index lost it: every server is asked
		}
		r, err := h.c.Lookup(ctx, k)
		if err != nil || r.Spec.Name != "updated" || string(r.Meta) != "v2" {
			t.Fatalf("lookup %d after update: %+v %v", k, r, err)
		}
	}
	for _, k := range keys {
		if err := h.c.Release(ctx, k); err != nil {
			t.Fatalf("release %d: %v", k, err)
		}
	}
	if n := h.d.rt.Stats().Orphans; n != 0 {
		t.Fatalf("%d releases deferred; every server was up", n)
	}
	if na, nb := a.stats(t).Reservations, b.stats(t).Reservations; na != 0 || nb != 0 {
		t.Fatalf("after 37 releases: %d bridges held on pl-a, %d on pl-b", na, nb)
	}
}

// TestHoldingServerDown: when the server holding a session is down, UPDATE
// and an index-miss LOOKUP answer UNAVAILABLE naming it (never NOT_FOUND from
// the other server), and RELEASE is accepted, deferred and carried out on
// that server once it is back.
func TestHoldingServerDown(t *testing.T) {
	h, a, b := twoServerPrimary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var onB []uint64
	for i := 0; len(onB) < 2; i++ {
		if i == 40 {
			t.Fatal("40 allocations and fewer than 2 on pl-b")
		}
		al, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("b")})
		if err != nil {
			t.Fatal(err)
		}
		if heldBy(t, h, al.Key) == "pl-b" {
			onB = append(onB, al.Key)
		} else if err := h.c.Release(ctx, al.Key); err != nil {
			t.Fatal(err)
		}
	}
	b.fault(t, telsim.Fault{Mode: telsim.ModeDown})
	pl := func() *tier { return h.d.rt.Current().Tiers[0] }
	waitFor(t, "pl-b's connections gone", 10*time.Second, func() bool {
		_, err := pl().Pool.RoundTripTo(ctx, "pl-b", wire.OpTelPing, nil)
		return err != nil && !errors.Is(err, context.DeadlineExceeded) && pl().Pool.Live() > 0
	})

	k := onB[0]
	s2 := spec("while down")
	_, err := h.c.Update(ctx, k, &s2, nil)
	var re *wire.RemoteError
	if !errors.As(err, &re) || re.Status != wire.StatusUnavailable || !strings.Contains(re.Message, "pl-b") {
		t.Fatalf("update on a down holder: %v, want UNAVAILABLE naming pl-b", err)
	}
	h.d.rt.ForgetSession(k)
	_, err = h.c.Lookup(ctx, k)
	if !errors.As(err, &re) || re.Status != wire.StatusUnavailable || !strings.Contains(re.Message, "pl-b") {
		t.Fatalf("index-miss lookup with the holder down: %v, want UNAVAILABLE naming pl-b", err)
	}
	for _, k := range onB {
		if err := h.c.Release(ctx, k); err != nil {
			t.Fatalf("release on a down holder: %v (want it deferred and OK)", err)
		}
	}
	if n := h.d.rt.Stats().Orphans; n != len(onB) {
		t.Fatalf("%d releases deferred, want %d", n, len(onB))
	}
	b.fault(t, telsim.Fault{})
	waitFor(t, "deferred releases done on pl-b", 20*time.Second, func() bool {
		return h.d.rt.Stats().Orphans == 0 && b.stats(t).Reservations == 0
	})
	// pl-a was asked about a pl-b session only by the two requests that
	// missed the index (the LOOKUP and the first RELEASE): the UPDATE and
	// the indexed RELEASE went to pl-b alone.
	if st := a.stats(t); st.Reservations != 0 || st.Errors.NotFound != 2 {
		t.Fatalf("pl-a: %d reservations, %d NOT_FOUND answers, want 0 and 2", st.Reservations, st.Errors.NotFound)
	}
}

// TestOrphanReleaseCannotOvertakeQueuedReserve is issue 10, point 4, against
// a telsim process: primary queues RESERVEs (fault queue) longer than the
// attempt timeout, so the allocation fails over and the RESERVE becomes an
// orphan; its RELEASE is answered NOT_FOUND at once, before the RESERVE
// runs. When the RESERVE does run it must not leave a bridge held.
func TestOrphanReleaseCannotOvertakeQueuedReserve(t *testing.T) {
	bin := telsimBin(t)
	p := startTelsimProc(t, bin, "primary-large", "pl-q")
	h := startDaemon(t, func(c *Config) {
		chaosConfig(c)
		c.Tiers[0].Servers = []string{p.addr}
		c.Tiers[0].AttemptTimeout = 300 * time.Millisecond
	})
	p.fault(t, telsim.Fault{Mode: telsim.ModeQueue, Latency: 3 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	al, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("queued")})
	if err != nil || al.Tier == "primary-large" {
		t.Fatalf("allocate: %+v %v, want it served by another tier", al, err)
	}
	waitFor(t, "the orphan's RELEASE answered", 20*time.Second, func() bool {
		return h.d.rt.Stats().Orphans == 0 && p.stats(t).Releases > 0
	})
	if st := p.stats(t); st.Errors.NotFound == 0 || st.Reservations != 0 {
		t.Fatalf("the RELEASE did not overtake the queued RESERVE (stats %+v): the test proves nothing", st)
	}
	waitFor(t, "the queued RESERVE executed", 20*time.Second, func() bool {
		st := p.stats(t)
		return st.Reservations > 0 || st.Tombstoned > 0
	})
	if st := p.stats(t); st.Reservations != 0 {
		t.Fatalf("a bridge is held on primary after its RESERVE was released as an orphan (stats %+v)", st)
	}
	if err := h.c.Release(ctx, al.Key); err != nil {
		t.Fatal(err)
	}
}

// TestUpdateReplyAfterReleaseDoesNotResurrect is issue 10, point 5: an
// UPDATE whose reply is handled after a RELEASE removed the session must not
// put the session back in the index.
func TestUpdateReplyAfterReleaseDoesNotResurrect(t *testing.T) {
	t.Cleanup(func() { testhook.BeforeRefresh.Store(nil) }) // after the daemon stops
	h := startDaemon(t, nil)
	ctx := ctxT(t)
	al, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("racy")})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	var relErr error
	hook := func(key uint64) {
		if key == al.Key {
			once.Do(func() { relErr = h.c.Release(ctx, key) })
		}
	}
	testhook.BeforeRefresh.Store(&hook)
	s2 := spec("late update")
	if _, err := h.c.Update(ctx, al.Key, &s2, nil); err != nil {
		t.Fatalf("update: %v", err)
	}
	testhook.BeforeRefresh.Store(nil)
	if relErr != nil {
		t.Fatalf("release inside the update: %v", relErr)
	}
	if r, err := h.c.Lookup(ctx, al.Key); !errors.Is(err, wire.StatusNotFound) {
		t.Fatalf("lookup after release: %+v %v, want NOT_FOUND (the update resurrected the session)", r, err)
	}
}

// startTCPSim starts an in-process telsim server on loopback with the given
// id; it closes at cleanup (after a daemon started later has stopped).
func startTCPSim(t *testing.T, tier, id string) (*telsim.Server, string) {
	t.Helper()
	s, err := telsim.New(telsim.Config{Tier: tier, ServerID: id})
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, "tcp://" + a.String()
}

// TestOrphanReleaserNotHeldBackBySlowServer is issue 10, point 7 (first
// part): an orphan on a server that never answers must not delay the
// release of an orphan on a healthy server of another tier.
func TestOrphanReleaserNotHeldBackBySlowServer(t *testing.T) {
	slow, slowAddr := startTCPSim(t, "primary-large", "slow")
	fast, fastAddr := startTCPSim(t, "nextgen", "fast")
	h := startDaemon(t, func(c *Config) {
		chaosConfig(c)
		c.Tiers[0].Servers = []string{slowAddr}
		c.Tiers[0].AttemptTimeout = 10 * time.Second // a release to it waits 40 s
		c.Tiers[1].Servers = []string{fastAddr}
		c.Tiers[0].Pool.HeartbeatTimeout = time.Minute // the blackholed server stays connected
	})
	ctx := ctxT(t)
	// A bridge held on the healthy server under a key only the orphan
	// knows.
	ng := h.d.rt.Current().Tiers[1]
	rep, err := ng.Pool.RoundTrip(ctx, wire.OpReserve, &wire.UpdateRequest{Key: 4242, Spec: spec("orphan")})
	if err != nil {
		t.Fatal(err)
	}
	rep.Release()
	if err := slow.SetFault(telsim.Fault{Mode: telsim.ModeBlackhole}); err != nil {
		t.Fatal(err)
	}
	h.d.rt.DeferRelease("primary-large", "slow", 4141)
	h.d.rt.DeferRelease("nextgen", "fast", 4242)
	// The simulator drops the bridge before its answer reaches the daemon,
	// which counts the orphan done only then: wait for both.
	waitFor(t, "the healthy server's orphan released", 10*time.Second, func() bool {
		return fast.Stats().Reservations == 0 && h.d.rt.Stats().Orphans <= 1
	})
	if n := h.d.rt.Stats().Orphans; n != 1 {
		t.Fatalf("%d orphans pending, want the 1 on the silent server", n)
	}
	if err := slow.SetFault(telsim.Fault{}); err != nil { // let the daemon stop without waiting for it
		t.Fatal(err)
	}
}

// TestOrphansFollowTheirServerAcrossReloads is issue 10, point 7 (second
// part): an orphan whose server a reload removed is kept and counted as
// stranded, never dropped; when a reload brings the server back under
// another tier name, the orphan is released there.
func TestOrphansFollowTheirServerAcrossReloads(t *testing.T) {
	srv, addr := startTCPSim(t, "primary-large", "s1")
	h := startDaemon(t, func(c *Config) {
		chaosConfig(c)
		c.Tiers[0].Servers = []string{addr}
	})
	ctx := reloadCtx(t)
	al, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("moved")})
	if err != nil || al.Tier != "primary-large" {
		t.Fatalf("allocate: %+v %v", al, err)
	}
	base := h.d.Config()
	without := *base
	without.Tiers = append([]TierConfig(nil), base.Tiers[1:]...)
	if err := h.d.Reload(ctx, &without); err != nil {
		t.Fatal(err)
	}
	// The front end was told the release succeeded (deferred) just as the
	// tier went away: the orphan names server s1.
	h.d.rt.DeferRelease("primary-large", "s1", al.Key)
	waitFor(t, "the orphan counted as stranded", 10*time.Second, func() bool { return h.d.rt.Stats().Stranded == 1 })
	st, err := h.d.Status()
	if err != nil || st.Orphans != 1 || st.Stranded != 1 {
		t.Fatalf("status %+v %v: want 1 orphan pending, stranded", st, err)
	}
	if n := srv.Stats().Reservations; n != 1 {
		t.Fatalf("%d reservations on s1, want the orphan's", n)
	}
	renamed := *base
	renamed.Tiers = append([]TierConfig(nil), base.Tiers...)
	renamed.Tiers[0].Name = "primary-xl"
	if err := h.d.Reload(ctx, &renamed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the orphan released through the renamed tier", 10*time.Second, func() bool {
		return h.d.rt.Stats().Orphans == 0 && srv.Stats().Reservations == 0
	})
	if n := h.d.rt.Stats().Stranded; n != 0 {
		t.Fatalf("%d stranded after the server came back", n)
	}
}

// TestOrphanWithUnknownServerReleasedOnEveryServer: an orphan whose server
// is not known ("": an old journal, crash recovery) is released on every
// server of its tier; the one holding the bridge releases it, the others
// answer NOT_FOUND, and the orphan is done.
func TestOrphanWithUnknownServerReleasedOnEveryServer(t *testing.T) {
	sa, addrA := startTCPSim(t, "primary-large", "x-a")
	sb, addrB := startTCPSim(t, "primary-large", "x-b")
	h := startDaemon(t, func(c *Config) {
		chaosConfig(c)
		c.Tiers[0].Servers = []string{addrA, addrB}
	})
	ctx := ctxT(t)
	pl := h.d.rt.Current().Tiers[0]
	rep, err := pl.Pool.RoundTripTo(ctx, "x-b", wire.OpReserve, &wire.UpdateRequest{Key: 777, Spec: spec("lost")})
	if err != nil {
		t.Fatal(err)
	}
	rep.Release()
	h.d.rt.DeferRelease("primary-large", "", 777)
	waitFor(t, "the orphan released", 10*time.Second, func() bool {
		return h.d.rt.Stats().Orphans == 0 && sb.Stats().Reservations == 0
	})
	if st := sa.Stats(); st.Releases != 1 || st.Errors.NotFound != 1 {
		t.Fatalf("x-a saw %d releases, %d NOT_FOUND; want the orphan's RELEASE, answered NOT_FOUND", st.Releases, st.Errors.NotFound)
	}
}
