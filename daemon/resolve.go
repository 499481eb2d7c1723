package daemon

import (
	"fmt"

	"switchboard/telsim/simplan"
)

// Resolver maps a tier's server URL to the address its pool dials.
type Resolver interface {
	// Resolve returns the dial address (host:port) of server, an entry of
	// tiers[].servers that is not tcp:// (a tcp:// server is its own
	// address).
	Resolve(server string) (addr string, err error)
}

// SimHost hosts the in-process telephony simulators behind sim://NAME
// servers and resolves those servers to their addresses. The daemon does not
// link the simulator: development builds and tests hand it a host
// (telsim/simhost's *Host, through WithSimHost), which owns the simulators
// it runs; whoever creates the host closes it once Run has returned.
//
// The daemon tells the host which simulators a configuration names
// (simplan.Sim: its tiers' sim:// servers with their simulators: settings)
// and leaves the rest to it: Prepare before the configuration's tiers are
// built (at start and at each reload), then on the plan it returns Commit
// once the configuration is in force, Abort if it is refused (or Run fails
// to start on it), and Retire once the previous tier order has drained.
type SimHost interface {
	Resolver
	// Prepare starts the simulators of sims that are not running and
	// returns the plan that ends the change. On error nothing it started
	// runs.
	Prepare(sims []simplan.Sim) (simplan.Plan, error)
}

// WithResolver hands the daemon a resolver for the servers that are not
// tcp://, for a daemon whose sim:// servers run elsewhere (no hosting).
// When both are given, it resolves in place of the SimHost. Default: the
// SimHost, if any.
func WithResolver(r Resolver) Option { return func(d *Daemon) { d.resolver = r } }

// WithSimHost hands the daemon a host for the simulators of sim:// servers
// (telsim/simhost), which also resolves them. Default: none, sim:// servers
// resolve only through WithResolver.
func WithSimHost(h SimHost) Option { return func(d *Daemon) { d.simHost = h } }

// resolve turns a tier's server URLs into dialable addresses: tcp://host:port
// is host:port, any other server is what the resolver says (WithResolver,
// else the SimHost).
func (d *Daemon) resolve(urls []string) ([]string, error) {
	r := d.resolver
	if r == nil && d.simHost != nil {
		r = d.simHost
	}
	addrs := make([]string, 0, len(urls))
	for _, u := range urls {
		s, err := ParseServer(u)
		if err != nil {
			return nil, err
		}
		if s.Addr == "" {
			if r == nil {
				return nil, fmt.Errorf("%s: no simulator host: sim:// servers run in development builds and tests only; production configures tcp:// servers", u)
			}
			if s.Addr, err = r.Resolve(u); err != nil {
				return nil, err
			}
		}
		addrs = append(addrs, s.Addr)
	}
	return addrs, nil
}

// hostedSims lists the simulators cfg's tiers name, in tier order, each
// with its simulators: settings (zero when not listed: the simulator's
// defaults).
func hostedSims(cfg *Config) []simplan.Sim {
	settings := make(map[string]SimConfig, len(cfg.Simulators))
	for _, s := range cfg.Simulators {
		settings[s.Name] = s
	}
	var sims []simplan.Sim
	for _, t := range cfg.Tiers {
		for _, u := range t.Servers {
			if srv, err := ParseServer(u); err == nil && srv.Sim != "" {
				c := settings[srv.Sim]
				sims = append(sims, simplan.Sim{Name: srv.Sim, Tier: t.Name, Capacity: c.Capacity, Latency: c.Latency})
			}
		}
	}
	return sims
}

// prepareSims asks the SimHost to prepare cfg's simulators. Without a host
// the plan does nothing (sim:// servers are left to the resolver).
func (d *Daemon) prepareSims(cfg *Config) (simplan.Plan, error) {
	if d.simHost == nil {
		return noPlan{}, nil
	}
	return d.simHost.Prepare(hostedSims(cfg))
}

// noPlan is the plan of a daemon without a SimHost.
type noPlan struct{}

func (noPlan) Commit() {}
func (noPlan) Abort()  {}
func (noPlan) Retire() {}
