package daemon

import (
	"switchboard/route"
	"switchboard/telsim"
	"switchboard/telsim/simhost"
)

// Simulator returns the simulator behind sim://name in the daemon's
// simulator host (the tests' helpers give every daemon a simhost.Host), or
// nil.
func (d *Daemon) Simulator(name string) *telsim.Server {
	if h, ok := d.simHost.(*simhost.Host); ok {
		return h.Simulator(name)
	}
	return nil
}

// withKeySource replaces the key generator (tests of the KEY_EXISTS defence).
func withKeySource(k route.KeySource) Option { return func(d *Daemon) { d.keysOverride = k } }
