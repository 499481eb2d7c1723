// Package simhost runs in-process telephony simulators (package telsim) for
// the sim://NAME servers of a switchboard configuration, and resolves those
// servers to the loopback addresses the simulators listen on.
//
// Why it exists: the daemon (package daemon) is the production composition
// root and must not link or host the simulator. It dials whatever address its
// server-address resolver gives it; a tcp:// server resolves to itself, and
// a sim:// server needs a host. Development builds, tests and drills hand the
// daemon a *Host (daemon.WithSimHost): the daemon then asks it to start the
// simulators a configuration names before it builds that configuration's
// tiers (at start and at each reload), to retune those whose `simulators:`
// settings changed once a reload is in force, and to stop those no longer
// named once the previous tier order has drained. cmd/switchboard wires one,
// so its embedded default configuration (three sim:// tiers) runs as is.
//
// A Host is safe for concurrent use. Every simulator it starts listens on
// 127.0.0.1 (an ephemeral port) and is closed by StopSim or Close.
package simhost
