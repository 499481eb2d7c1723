// Package simhost runs in-process telephony simulators (package telsim) for
// the sim://NAME servers of a switchboard configuration, and resolves those
// servers to the loopback addresses the simulators listen on.
//
// Why it exists: the daemon (package daemon) is the production composition
// root and must not link or host the simulator. It dials whatever address its
// server-address resolver gives it; a tcp:// server resolves to itself, and
// a sim:// server needs a host. Development builds, tests and drills hand the
// daemon a *Host (daemon.WithSimHost). The daemon only says which
// simulators a configuration names (simplan.Sim: name, tier, capacity,
// latency); the decisions are the Host's. Prepare, called before the
// configuration's tiers are built (at start and at each reload), starts
// those not running; on the plan it returns, Commit (the configuration is
// in force) gives the running simulators whose settings changed their new
// ones, Abort (the reload was refused, or the start failed) stops what
// Prepare started, and Retire (the previous tier order has drained) stops
// those the configuration no longer names. A plan compares settings with
// those the Host last gave each simulator, so a fault or capacity set by a
// drill on a simulator whose configuration does not change stays.
//
// The Host owns its simulators: the daemon never stops one except through a
// plan, and whoever creates the Host closes it once the daemon's Run has
// returned (cmd/switchboard, internal/daemontest, the daemon's tests).
// A capacity of 0 means telsim's default (telsim.DefaultCapacity), which is
// the documented default of the daemon's simulators[].capacity.
//
// A Host is safe for concurrent use; it serves one daemon, which ends each
// plan before it prepares the next. Every simulator it starts listens on
// 127.0.0.1 (an ephemeral port).
package simhost
