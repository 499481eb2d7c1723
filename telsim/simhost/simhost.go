package simhost

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"switchboard/telsim"
)

// ErrNotRunning is returned by Resolve for a sim://NAME whose simulator is
// not running (never started, or stopped).
var ErrNotRunning = errors.New("simulator not started")

// Host runs named in-process simulators. The zero value is not usable:
// create one with New.
type Host struct {
	log *zap.Logger

	mu   sync.Mutex
	sims map[string]*telsim.Server // guarded by mu
}

// Option configures a Host.
type Option func(*Host)

// WithLogger sets the logger of the simulators (default: no logging). Each
// simulator logs under the name "telsim" with a field sim=NAME.
func WithLogger(l *zap.Logger) Option { return func(h *Host) { h.log = l } }

// New returns a Host running no simulator.
func New(opts ...Option) *Host {
	h := &Host{log: zap.NewNop(), sims: map[string]*telsim.Server{}}
	for _, o := range opts {
		o(h)
	}
	return h
}

// Resolve maps sim://NAME to the address of NAME's running simulator. Any
// other server, or a simulator not running, is an error.
func (h *Host) Resolve(server string) (string, error) {
	name, ok := strings.CutPrefix(server, "sim://")
	if !ok {
		return "", fmt.Errorf("%s: not a sim:// server", server)
	}
	s := h.Simulator(name)
	if s == nil {
		return "", fmt.Errorf("%s: %w", server, ErrNotRunning)
	}
	return s.Addr().String(), nil
}

// StartSim starts the simulator NAME for the tier named tier, unless one runs
// under that name already (then it changes nothing and returns false).
// capacity and latency are its settings; zero capacity means telsim's
// default. It reports whether it started one.
func (h *Host) StartSim(name, tier string, capacity int, latency time.Duration) (bool, error) {
	if h.Simulator(name) != nil {
		return false, nil
	}
	sc := telsim.DefaultConfig()
	sc.Tier = tier
	sc.ServerID = "sim-" + name
	if capacity != 0 {
		sc.Capacity = capacity
	}
	sc.Latency = latency
	ts, err := telsim.New(sc, telsim.WithLogger(h.log.Named("telsim").With(zap.String("sim", name))))
	if err != nil {
		return false, fmt.Errorf("simulator %s: %w", name, err)
	}
	if _, err := ts.Start("127.0.0.1:0"); err != nil {
		ts.Close()
		return false, fmt.Errorf("simulator %s: %w", name, err)
	}
	h.mu.Lock()
	if h.sims[name] != nil { // started meanwhile by another caller
		h.mu.Unlock()
		ts.Close()
		return false, nil
	}
	h.sims[name] = ts
	h.mu.Unlock()
	return true, nil
}

// RetuneSim sets the capacity and latency of the running simulator NAME (no
// effect when it does not run). Zero capacity means telsim's default.
func (h *Host) RetuneSim(name string, capacity int, latency time.Duration) {
	s := h.Simulator(name)
	if s == nil {
		return
	}
	if capacity == 0 {
		capacity = telsim.DefaultCapacity
	}
	s.SetCapacity(capacity)
	s.SetLatency(latency, 0)
}

// StopSim stops the simulator NAME, if it runs.
func (h *Host) StopSim(name string) {
	h.mu.Lock()
	s := h.sims[name]
	delete(h.sims, name)
	h.mu.Unlock()
	if s != nil {
		s.Close()
	}
}

// Sims returns the names of the running simulators, sorted.
func (h *Host) Sims() []string {
	h.mu.Lock()
	names := make([]string, 0, len(h.sims))
	for n := range h.sims {
		names = append(names, n)
	}
	h.mu.Unlock()
	sort.Strings(names)
	return names
}

// Simulator returns the running simulator NAME, or nil. Tests and drills use
// it to inject faults and read stats.
func (h *Host) Simulator(name string) *telsim.Server {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sims[name]
}

// Close stops every running simulator.
func (h *Host) Close() {
	for _, n := range h.Sims() {
		h.StopSim(n)
	}
}
