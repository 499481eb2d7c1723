package simplan

import "time"

// Sim is one simulator a configuration names: the NAME of a sim://NAME
// server of one of its tiers, with that simulator's settings.
type Sim struct {
	// Name is the NAME of sim://NAME.
	Name string
	// Tier is the name of the tier whose servers name it (the first such
	// tier when several do); the simulator reports it in its HELLO.
	Tier string
	// Capacity is the number of bridges it holds; 0 means the simulator's
	// default.
	Capacity int
	// Latency is added to every reply.
	Latency time.Duration
}

// Plan is what a host prepared for one configuration (its Prepare started
// the simulators the configuration names that were not running). The daemon
// ends it with exactly one of Commit or Abort, and after Commit calls
// Retire once the previous tier order no longer serves requests. Its
// methods do not fail: what they cannot do they log.
type Plan interface {
	// Commit is called once the configuration is in force: the running
	// simulators whose settings the configuration changes take them.
	Commit()
	// Abort is called when the configuration is refused (or the daemon
	// fails to start on it): the simulators Prepare started stop, the
	// others are left as they were.
	Abort()
	// Retire is called after Commit, once no request holds the previous
	// tier order: the simulators the configuration does not name stop.
	Retire()
}
