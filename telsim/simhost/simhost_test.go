package simhost_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"switchboard/daemon"
	"switchboard/telsim"
	"switchboard/telsim/simhost"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The daemon drives a Host through its SimHost interface.
var _ daemon.SimHost = (*simhost.Host)(nil)

func TestStartResolveRetuneStop(t *testing.T) {
	h := simhost.New()
	defer h.Close()
	if _, err := h.Resolve("sim://a"); !errors.Is(err, simhost.ErrNotRunning) {
		t.Fatalf("Resolve before start: %v, want ErrNotRunning", err)
	}
	if _, err := h.Resolve("tcp://127.0.0.1:1"); err == nil {
		t.Fatal("Resolve of a tcp:// server succeeded")
	}
	started, err := h.StartSim("a", "primary-large", 0, 0)
	if err != nil || !started {
		t.Fatalf("StartSim: %v, %v", started, err)
	}
	if started, err := h.StartSim("a", "primary-large", 5, 0); err != nil || started {
		t.Fatalf("second StartSim: %v, %v; want a no-op", started, err)
	}
	s := h.Simulator("a")
	if s == nil {
		t.Fatal("no simulator a")
	}
	if got := s.Stats().Capacity; got != int64(telsim.DefaultCapacity) {
		t.Errorf("capacity %d, want telsim's default %d", got, telsim.DefaultCapacity)
	}
	addr, err := h.Resolve("sim://a")
	if err != nil || addr != s.Addr().String() {
		t.Fatalf("Resolve: %q, %v; want %s", addr, err, s.Addr())
	}
	if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" {
		t.Errorf("listens on %s, want loopback", addr)
	}
	h.RetuneSim("a", 7, time.Millisecond)
	if got := s.Stats().Capacity; got != 7 {
		t.Errorf("capacity after RetuneSim %d, want 7", got)
	}
	if _, err := h.StartSim("b", "nextgen", 3, 0); err != nil {
		t.Fatal(err)
	}
	if got := h.Sims(); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("Sims %v, want [a b]", got)
	}
	h.StopSim("a")
	if h.Simulator("a") != nil {
		t.Error("a still runs after StopSim")
	}
	if _, err := h.Resolve("sim://a"); !errors.Is(err, simhost.ErrNotRunning) {
		t.Errorf("Resolve after StopSim: %v", err)
	}
	h.Close()
	if got := h.Sims(); len(got) != 0 {
		t.Errorf("Sims after Close: %v", got)
	}
}

// The daemon's documented simulators[].capacity default is telsim's own.
func TestDaemonSimDefaultIsTelsims(t *testing.T) {
	cfg, err := daemon.ParseConfig([]byte("tiers:\n  - name: a\n    servers: [sim://a]\nsimulators:\n  - name: a\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Simulators[0].Capacity; got != telsim.DefaultCapacity {
		t.Errorf("daemon default capacity %d, telsim's %d", got, telsim.DefaultCapacity)
	}
}
