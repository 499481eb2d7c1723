package breaker

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fail reports n failed attempts.
func fail(t *testing.T, b *Breaker, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		d, err := b.Allow()
		if err != nil {
			t.Fatalf("attempt %d refused: %v", i, err)
		}
		d.Record(Unhealthy)
	}
}

func TestOpensAfterConsecutiveFailuresAndProbes(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Unix(1000, 0).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	var changes []string
	b := New("primary", Settings{Failures: 3, OpenFor: 20 * time.Millisecond},
		WithClock(clock), WithOnStateChange(func(tier string, from, to State) {
			changes = append(changes, from.String()+">"+to.String())
		}))

	// Healthy answers never trip it.
	for i := 0; i < 10; i++ {
		d, err := b.Allow()
		if err != nil {
			t.Fatal(err)
		}
		d.Record(Healthy) // a CAPACITY answer: the tier works
	}
	fail(t, b, 2)
	if b.State() != Closed {
		t.Fatalf("state %v after 2 failures, want closed", b.State())
	}
	fail(t, b, 1)
	if b.State() != Open || !b.Skip() {
		t.Fatalf("state %v skip %v after 3 failures, want open and skipped", b.State(), b.Skip())
	}
	if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("Allow while open = %v, want ErrOpen", err)
	}

	// Once the mirror's open period is over Allow consults gobreaker; its own
	// timer runs on the wall clock, so wait for it (bounded).
	now.Add(int64(time.Hour))
	if b.Skip() {
		t.Fatal("Skip after the open period")
	}
	deadline := time.Now().Add(5 * time.Second)
	var d Done
	for {
		var err error
		d, err = b.Allow()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never half-open: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if b.State() != HalfOpen {
		t.Fatalf("state %v, want half-open", b.State())
	}
	// One probe at a time; a second is refused.
	if _, err := b.Allow(); !errors.Is(err, ErrTooManyProbes) {
		t.Fatalf("second probe: %v, want ErrTooManyProbes", err)
	}
	d.Record(Healthy)
	d.Record(Unhealthy) // ignored: only the first report counts
	if b.State() != Closed {
		t.Fatalf("state %v after a good probe, want closed", b.State())
	}
	want := []string{"closed>open", "open>half-open", "half-open>closed"}
	if fmt.Sprint(changes) != fmt.Sprint(want) {
		t.Fatalf("changes %v, want %v", changes, want)
	}
}

// A probe whose caller went away must free the half-open slot.
func TestExcludedProbeDoesNotStrand(t *testing.T) {
	b := New("nextgen", Settings{Failures: 1, OpenFor: time.Millisecond})
	fail(t, b, 1)
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; i < 3; i++ {
		var d Done
		for {
			var err error
			if d, err = b.Allow(); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("probe %d never admitted: %v", i, err)
			}
			time.Sleep(time.Millisecond)
		}
		d.Record(NoVerdict) // the caller went away
	}
}

func TestOverride(t *testing.T) {
	b := New("backup", Settings{Failures: 1})
	b.SetOverride(ForceOpen)
	if _, err := b.Allow(); !errors.Is(err, ErrForcedOpen) || !b.Skip() {
		t.Fatalf("forced open: %v", err)
	}
	b.SetOverride(ForceClosed)
	fail(t, b, 10) // not counted
	if b.State() != Closed {
		t.Fatalf("state %v under ForceClosed", b.State())
	}
	b.Retune(Settings{Failures: 2})
	if b.Override() != ForceClosed || b.Settings().Failures != 2 {
		t.Fatalf("retune lost override or settings: %v %+v", b.Override(), b.Settings())
	}
	b.SetOverride(Auto)
	fail(t, b, 2)
	if b.State() != Open {
		t.Fatalf("state %v, want open", b.State())
	}
	b.Retune(Settings{Failures: 2})
	if b.State() != Closed {
		t.Fatalf("state %v after retune, want closed", b.State())
	}
	for _, s := range []string{"auto", "open", "closed"} {
		o, err := ParseOverride(s)
		if err != nil || o.String() != s {
			t.Fatalf("ParseOverride(%q) = %v, %v", s, o, err)
		}
	}
	if _, err := ParseOverride("sideways"); err == nil {
		t.Fatal("ParseOverride accepted nonsense")
	}
}

// BenchmarkSkipOpen is the cost of passing over a tier known to be down.
func BenchmarkSkipOpen(b *testing.B) {
	br := New("primary", Settings{Failures: 1, OpenFor: time.Hour})
	d, _ := br.Allow()
	d.Record(Unhealthy)
	b.ReportAllocs()
	for b.Loop() {
		if !br.Skip() {
			b.Fatal("not skipped")
		}
	}
}

// BenchmarkAllowDone is the cost of an admitted attempt on a closed breaker.
func BenchmarkAllowDone(b *testing.B) {
	br := New("primary", Settings{})
	b.ReportAllocs()
	for b.Loop() {
		d, err := br.Allow()
		if err != nil {
			b.Fatal(err)
		}
		d.Record(Healthy)
	}
}

// TestRetuneDuringStateChange forces the interleaving of issue 10 point 7: a
// breaker trips (gobreaker runs the state-change callback under its lock)
// while a reload retunes it. The new gobreaker starts closed, so the mirror
// must end closed too; a mirror left "open" would refuse the healthy tier
// (Skip, Allow's fast path) and report it open until something else changes.
func TestRetuneDuringStateChange(t *testing.T) {
	b := New("t", Settings{Failures: 1, OpenFor: time.Hour})
	retuned := false
	b.SetTestHookMirror(func() {
		if !retuned {
			retuned = true
			b.Retune(Settings{Failures: 1, OpenFor: time.Hour})
		}
	})
	fail(t, b, 1)
	if !retuned {
		t.Fatal("the state-change callback never ran")
	}
	if got, want := b.Counts().Requests, uint32(0); got != want {
		t.Fatalf("new gobreaker saw %d requests, want %d", got, want)
	}
	if got := b.State(); got != Closed {
		t.Errorf("State() = %v after a retune raced a trip, want closed (gobreaker is closed)", got)
	}
	if b.Skip() {
		t.Error("Skip() = true: a closed tier would be skipped")
	}
	if _, err := b.Allow(); err != nil {
		t.Errorf("Allow() = %v, want admitted", err)
	}
}

// TestRecordVerdicts: Record counts Unhealthy against the tier, Healthy for
// it, and NoVerdict neither way.
func TestRecordVerdicts(t *testing.T) {
	b := New("t", Settings{Failures: 2, OpenFor: time.Hour})
	for i := 0; i < 10; i++ {
		d, err := b.Allow()
		if err != nil {
			t.Fatalf("attempt %d refused: %v", i, err)
		}
		d.Record(NoVerdict)
		d.Record(Unhealthy) // ignored: only the first counts
	}
	if c := b.Counts(); c.TotalFailures != 0 || c.TotalSuccesses != 0 || c.TotalExclusions != 10 || b.State() != Closed {
		t.Fatalf("after NoVerdicts: counts %+v, state %v; want 10 exclusions, closed", c, b.State())
	}
	d, _ := b.Allow()
	d.Record(Healthy)
	if c := b.Counts(); c.TotalSuccesses != 1 {
		t.Fatalf("after Healthy: counts %+v, want 1 success", c)
	}
	for i := 0; i < 2; i++ {
		d, _ := b.Allow()
		d.Record(Unhealthy)
	}
	if b.State() != Open {
		t.Fatalf("state %v after 2 Unhealthy, want open", b.State())
	}
}
