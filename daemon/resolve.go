package daemon

import (
	"fmt"
	"time"
)

// Resolver maps a tier's server URL to the address its pool dials.
type Resolver interface {
	// Resolve returns the dial address (host:port) of server, an entry of
	// tiers[].servers.
	Resolve(server string) (addr string, err error)
}

// SimHost hosts the in-process telephony simulators behind sim://NAME
// servers and resolves those servers to their addresses. The daemon does not
// link the simulator: development builds and tests hand it a host
// (telsim/simhost's *Host, through WithSimHost). Without one, a configuration
// whose tiers name a sim:// server does not start (tcp:// servers need no
// host).
//
// The daemon calls StartSim for every sim:// name of a configuration before
// it builds that configuration's tiers (at start and at each reload; a
// refused reload stops those it started), RetuneSim once a reload that
// changes a simulator's settings is in force, and StopSim for the names no
// longer used once the previous tier order has drained, and for every name
// when Run ends.
type SimHost interface {
	Resolver
	// StartSim starts the simulator name for the tier named tier, unless it
	// runs already; it reports whether it started it. A zero capacity means
	// the simulator's default.
	StartSim(name, tier string, capacity int, latency time.Duration) (started bool, err error)
	// RetuneSim changes a running simulator's capacity and latency.
	RetuneSim(name string, capacity int, latency time.Duration)
	// StopSim stops the simulator name, if it runs.
	StopSim(name string)
	// Sims lists the running simulators' names.
	Sims() []string
}

// WithSimHost hands the daemon a host for the simulators of sim:// servers
// (telsim/simhost). Default: none, sim:// servers cannot be resolved.
func WithSimHost(h SimHost) Option { return func(d *Daemon) { d.simHost = h } }

// resolve turns a tier's server URLs into dialable addresses: tcp://host:port
// is host:port, sim://NAME is what the simulator host says.
func (d *Daemon) resolve(urls []string) ([]string, error) {
	addrs := make([]string, 0, len(urls))
	for _, u := range urls {
		s, err := ParseServer(u)
		if err != nil {
			return nil, err
		}
		if s.Sim != "" {
			if d.simHost == nil {
				return nil, fmt.Errorf("%s: no simulator host: sim:// servers run in development builds and tests only; production configures tcp:// servers", u)
			}
			if s.Addr, err = d.simHost.Resolve(u); err != nil {
				return nil, err
			}
		}
		addrs = append(addrs, s.Addr)
	}
	return addrs, nil
}

// startSims asks the simulator host to start a simulator for every sim://
// name of cfg not running yet, and returns the names it started. On error
// the simulators it started are running: the caller stops them.
func (d *Daemon) startSims(cfg *Config) ([]string, error) {
	simCfg := map[string]SimConfig{}
	for _, s := range cfg.Simulators {
		simCfg[s.Name] = s
	}
	var started []string
	for _, t := range cfg.Tiers {
		for _, u := range t.Servers {
			srv, _ := ParseServer(u)
			if srv.Sim == "" || d.simHost == nil {
				continue // resolve reports a sim:// server without a host
			}
			c := simCfg[srv.Sim] // zero when not listed: the simulator's defaults
			ok, err := d.simHost.StartSim(srv.Sim, t.Name, c.Capacity, c.Latency)
			if err != nil {
				return started, err
			}
			if ok {
				started = append(started, srv.Sim)
			}
		}
	}
	return started, nil
}

// stopSims stops the named simulators.
func (d *Daemon) stopSims(names []string) {
	if d.simHost == nil {
		return
	}
	for _, n := range names {
		d.simHost.StopSim(n)
	}
}

// closeSims stops every simulator the host runs (Run's end).
func (d *Daemon) closeSims() {
	if d.simHost != nil {
		d.stopSims(d.simHost.Sims())
	}
}

// retuneSims applies the simulators: settings of nc that differ from old's
// to the running simulators (a reload just put nc in force).
func (d *Daemon) retuneSims(old, nc *Config) {
	if d.simHost == nil {
		return
	}
	oldSims := map[string]SimConfig{}
	for _, sc := range old.Simulators {
		oldSims[sc.Name] = sc
	}
	for _, sc := range nc.Simulators {
		if prev, ok := oldSims[sc.Name]; ok && prev == sc {
			continue
		}
		d.simHost.RetuneSim(sc.Name, sc.Capacity, sc.Latency)
	}
}

// retireSims stops the simulators nc's tiers no longer name (the previous
// tier order has drained).
func (d *Daemon) retireSims(nc *Config) {
	if d.simHost == nil {
		return
	}
	named := map[string]bool{}
	for _, tc := range nc.Tiers {
		for _, u := range tc.Servers {
			if s, err := ParseServer(u); err == nil && s.Sim != "" {
				named[s.Sim] = true
			}
		}
	}
	var stop []string
	for _, n := range d.simHost.Sims() {
		if !named[n] {
			stop = append(stop, n)
		}
	}
	d.stopSims(stop)
}
