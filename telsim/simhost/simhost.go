package simhost

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"switchboard/telsim"
	"switchboard/telsim/simplan"
)

// ErrNotRunning is returned by Resolve for a sim://NAME whose simulator is
// not running (never started, or stopped).
var ErrNotRunning = errors.New("simulator not started")

// Host runs named in-process simulators. The zero value is not usable:
// create one with New, and Close it once the daemon it serves has stopped.
type Host struct {
	log *zap.Logger

	mu   sync.Mutex
	sims map[string]*sim // guarded by mu
}

// sim is one running simulator and the settings it was last given.
type sim struct {
	srv     *telsim.Server
	setting simplan.Sim
}

// Option configures a Host.
type Option func(*Host)

// WithLogger sets the logger of the simulators (default: no logging). Each
// simulator logs under the name "telsim" with a field sim=NAME.
func WithLogger(l *zap.Logger) Option { return func(h *Host) { h.log = l } }

// New returns a Host running no simulator.
func New(opts ...Option) *Host {
	h := &Host{log: zap.NewNop(), sims: map[string]*sim{}}
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

// Prepare starts the simulators of want that are not running, each with its
// settings, and returns the plan that ends the change (simplan.Plan). A
// simulator already running keeps running as it is until Commit. When a
// name appears more than once, its first entry counts. On error nothing it
// started runs any more.
func (h *Host) Prepare(want []simplan.Sim) (simplan.Plan, error) {
	p := &plan{h: h, want: make(map[string]simplan.Sim, len(want))}
	for _, w := range want {
		if _, dup := p.want[w.Name]; dup {
			continue
		}
		p.want[w.Name] = w
		s, err := h.start(w)
		if err != nil {
			p.Abort()
			return nil, err
		}
		if s != nil {
			p.started = append(p.started, s)
		}
	}
	return p, nil
}

// start starts the simulator w unless one runs under its name (then it
// returns nil).
func (h *Host) start(w simplan.Sim) (*sim, error) {
	if h.Simulator(w.Name) != nil {
		return nil, nil
	}
	sc := telsim.DefaultConfig()
	sc.Tier = w.Tier
	sc.ServerID = "sim-" + w.Name
	if w.Capacity != 0 {
		sc.Capacity = w.Capacity
	}
	sc.Latency = w.Latency
	ts, err := telsim.New(sc, telsim.WithLogger(h.log.Named("telsim").With(zap.String("sim", w.Name))))
	if err != nil {
		return nil, fmt.Errorf("simulator %s: %w", w.Name, err)
	}
	if _, err := ts.Start("127.0.0.1:0"); err != nil {
		ts.Close()
		return nil, fmt.Errorf("simulator %s: %w", w.Name, err)
	}
	s := &sim{srv: ts, setting: w}
	h.mu.Lock()
	if h.sims[w.Name] != nil { // started meanwhile by another plan
		h.mu.Unlock()
		ts.Close()
		return nil, nil
	}
	h.sims[w.Name] = s
	h.mu.Unlock()
	return s, nil
}

// remove takes every simulator that keep refuses out of the host (called
// with h.mu held) and returns their servers, which the caller closes with
// no lock held.
func (h *Host) remove(keep func(name string, s *sim) bool) []*telsim.Server {
	var gone []*telsim.Server
	for n, s := range h.sims {
		if !keep(n, s) {
			delete(h.sims, n)
			gone = append(gone, s.srv)
		}
	}
	return gone
}

func closeAll(servers []*telsim.Server) {
	for _, s := range servers {
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
	if s := h.sims[name]; s != nil {
		return s.srv
	}
	return nil
}

// Close stops every running simulator. The Host can be used again after.
func (h *Host) Close() {
	h.mu.Lock()
	gone := h.remove(func(string, *sim) bool { return false })
	h.mu.Unlock()
	closeAll(gone)
}

// plan is what Prepare returns: one configuration's simulators on their way
// in. A Host serves one daemon, which ends a plan (Commit or Abort, then
// Retire) before it prepares the next.
type plan struct {
	h       *Host
	want    map[string]simplan.Sim
	started []*sim // by Prepare: Abort stops them

	mu        sync.Mutex
	committed bool // Commit ran
	ended     bool // Commit or Abort ran
}

// Commit gives the running simulators of the plan whose settings changed
// their new capacity and latency (a simulator started by Prepare has them
// already). Only the first of Commit and Abort has an effect.
func (p *plan) Commit() {
	if !p.end(true) {
		return
	}
	type retune struct {
		srv      *telsim.Server
		capacity int
		latency  time.Duration
	}
	var todo []retune
	p.h.mu.Lock()
	for n, w := range p.want {
		s := p.h.sims[n]
		if s == nil || (s.setting.Capacity == w.Capacity && s.setting.Latency == w.Latency) {
			continue
		}
		s.setting.Capacity, s.setting.Latency = w.Capacity, w.Latency
		c := w.Capacity
		if c == 0 {
			c = telsim.DefaultCapacity
		}
		todo = append(todo, retune{s.srv, c, w.Latency})
	}
	p.h.mu.Unlock()
	for _, r := range todo {
		r.srv.SetCapacity(r.capacity)
		r.srv.SetLatency(r.latency, 0)
	}
}

// Abort stops the simulators Prepare started; the others keep running as
// they were. Only the first of Commit and Abort has an effect.
func (p *plan) Abort() {
	if !p.end(false) {
		return
	}
	p.h.mu.Lock()
	gone := p.h.remove(func(_ string, s *sim) bool { return !slices.Contains(p.started, s) })
	p.h.mu.Unlock()
	closeAll(gone)
}

// Retire stops every simulator of the host that the plan does not name. It
// does nothing unless the plan was committed.
func (p *plan) Retire() {
	p.mu.Lock()
	committed := p.committed
	p.mu.Unlock()
	if !committed {
		return
	}
	p.h.mu.Lock()
	gone := p.h.remove(func(n string, _ *sim) bool { _, ok := p.want[n]; return ok })
	p.h.mu.Unlock()
	closeAll(gone)
}

// end marks the plan ended (committed when commit) and reports whether this
// call ended it.
func (p *plan) end(commit bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return false
	}
	p.ended, p.committed = true, commit
	return true
}
