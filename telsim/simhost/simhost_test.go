package simhost_test

import (
	"errors"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"switchboard/daemon"
	"switchboard/telsim"
	"switchboard/telsim/simhost"
	"switchboard/telsim/simplan"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The daemon drives a Host through its SimHost interface.
var _ daemon.SimHost = (*simhost.Host)(nil)

func TestResolve(t *testing.T) {
	h := simhost.New()
	defer h.Close()
	if _, err := h.Resolve("sim://a"); !errors.Is(err, simhost.ErrNotRunning) {
		t.Fatalf("Resolve before start: %v, want ErrNotRunning", err)
	}
	if _, err := h.Resolve("tcp://127.0.0.1:1"); err == nil {
		t.Fatal("Resolve of a tcp:// server succeeded")
	}
	p, err := h.Prepare([]simplan.Sim{{Name: "a", Tier: "primary-large"}})
	if err != nil {
		t.Fatal(err)
	}
	p.Commit()
	s := h.Simulator("a")
	if s == nil {
		t.Fatal("no simulator a")
	}
	addr, err := h.Resolve("sim://a")
	if err != nil || addr != s.Addr().String() {
		t.Fatalf("Resolve: %q, %v; want %s", addr, err, s.Addr())
	}
	if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" {
		t.Errorf("listens on %s, want loopback", addr)
	}
	h.Close()
	if _, err := h.Resolve("sim://a"); !errors.Is(err, simhost.ErrNotRunning) {
		t.Errorf("Resolve after Close: %v", err)
	}
}

// capacity reads the capacity of the running simulator name (-1: none).
func capacity(h *simhost.Host, name string) int64 {
	if s := h.Simulator(name); s != nil {
		return s.Stats().Capacity
	}
	return -1
}

func wantSims(t *testing.T, h *simhost.Host, step string, want ...string) {
	t.Helper()
	if got := h.Sims(); !slices.Equal(got, want) {
		t.Fatalf("%s: running %v, want %v", step, got, want)
	}
}

// A plan's steps, as the daemon takes them at start and over reloads: what
// Prepare starts, Commit retunes (only what changed), Abort stops (only what
// its Prepare started) and Retire stops (what the plan does not name, once
// committed).
func TestPlanLifecycle(t *testing.T) {
	h := simhost.New()
	defer h.Close()

	// Start: a at the simulator's default capacity, b at 3; a named twice
	// (its first entry counts).
	p1, err := h.Prepare([]simplan.Sim{{Name: "a", Tier: "t1"}, {Name: "b", Tier: "t2", Capacity: 3}, {Name: "a", Tier: "t2", Capacity: 9}})
	if err != nil {
		t.Fatal(err)
	}
	wantSims(t, h, "prepared", "a", "b")
	p1.Commit()
	if got := capacity(h, "a"); got != telsim.DefaultCapacity {
		t.Errorf("a's capacity %d, want telsim's default %d", got, telsim.DefaultCapacity)
	}
	if got := capacity(h, "b"); got != 3 {
		t.Errorf("b's capacity %d, want 3", got)
	}
	a, b := h.Simulator("a"), h.Simulator("b")

	// A refused reload: c started by Prepare stops at Abort; a's new
	// settings are never applied; b (not named) keeps running.
	p2, err := h.Prepare([]simplan.Sim{{Name: "a", Capacity: 7}, {Name: "c", Capacity: 4}})
	if err != nil {
		t.Fatal(err)
	}
	wantSims(t, h, "second plan prepared", "a", "b", "c")
	if got := capacity(h, "a"); got != telsim.DefaultCapacity {
		t.Errorf("a retuned to %d before Commit", got)
	}
	p2.Abort()
	p2.Commit() // after Abort: nothing
	p2.Retire() // not committed: nothing
	wantSims(t, h, "second plan aborted", "a", "b")
	if h.Simulator("a") != a || h.Simulator("b") != b {
		t.Fatal("Abort replaced a simulator it did not start")
	}
	if got := capacity(h, "a"); got != telsim.DefaultCapacity {
		t.Errorf("a's capacity %d after an aborted plan, want %d", got, telsim.DefaultCapacity)
	}

	// A reload in force: a retuned in place at Commit; b, not named, runs
	// as it is until Retire stops it; the new d runs.
	b.SetCapacity(5)
	p3, err := h.Prepare([]simplan.Sim{{Name: "a", Capacity: 7, Latency: time.Millisecond}, {Name: "d"}})
	if err != nil {
		t.Fatal(err)
	}
	p3.Commit()
	if h.Simulator("a") != a {
		t.Fatal("Commit replaced a instead of retuning it")
	}
	if got := capacity(h, "a"); got != 7 {
		t.Errorf("a's capacity %d after Commit, want 7", got)
	}
	if got := capacity(h, "b"); got != 5 {
		t.Errorf("b's capacity %d, want 5 (not named: left alone until Retire)", got)
	}
	p3.Abort() // after Commit: nothing
	wantSims(t, h, "third plan committed", "a", "b", "d")
	p3.Retire()
	wantSims(t, h, "third plan retired", "a", "d")

	// Settings changed behind the host's back stay when a plan does not
	// change them; a capacity back to 0 is the simulator's default.
	a.SetCapacity(2)
	p4, err := h.Prepare([]simplan.Sim{{Name: "a", Capacity: 7, Latency: time.Millisecond}, {Name: "d", Capacity: 11}})
	if err != nil {
		t.Fatal(err)
	}
	p4.Commit()
	p4.Retire()
	if got := capacity(h, "a"); got != 2 {
		t.Errorf("a's capacity %d after a plan that kept its settings, want 2 (left alone)", got)
	}
	if got := capacity(h, "d"); got != 11 {
		t.Errorf("d's capacity %d, want 11", got)
	}
	p5, err := h.Prepare([]simplan.Sim{{Name: "d"}})
	if err != nil {
		t.Fatal(err)
	}
	p5.Commit()
	p5.Retire()
	wantSims(t, h, "fifth plan retired", "d")
	if got := capacity(h, "d"); got != telsim.DefaultCapacity {
		t.Errorf("d's capacity %d back at 0, want telsim's default %d", got, telsim.DefaultCapacity)
	}
}

// A Prepare that fails leaves nothing it started running, and what ran
// before untouched.
func TestPrepareFailureStopsWhatItStarted(t *testing.T) {
	h := simhost.New()
	defer h.Close()
	p, err := h.Prepare([]simplan.Sim{{Name: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	p.Commit()
	if _, err := h.Prepare([]simplan.Sim{{Name: "a"}, {Name: "b"}, {Name: "c", Capacity: -1}}); err == nil {
		t.Fatal("Prepare of a simulator with capacity -1 succeeded")
	}
	wantSims(t, h, "failed Prepare", "a")
}

// docs/operations.md states the default of simulators[].capacity, which is
// telsim's (the daemon's config leaves it at 0).
func TestDocumentedCapacityIsTelsims(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `simulators\\[\\]\\.capacity` \\|([^|]*)\\|").FindSubmatch(doc)
	if row == nil {
		t.Fatal("no simulators[].capacity row in docs/operations.md")
	}
	if want := "`" + strconv.Itoa(telsim.DefaultCapacity) + "`"; !strings.Contains(string(row[1]), want) {
		t.Errorf("documented default %q, want it to name telsim's %s", row[1], want)
	}
	cfg, err := daemon.ParseConfig([]byte("tiers:\n  - name: a\n    servers: [sim://a]\nsimulators:\n  - name: a\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Simulators[0].Capacity; got != 0 {
		t.Errorf("the daemon's config sets capacity %d, want 0 (the simulator's default)", got)
	}
}
