// Package simplan is the contract between the daemon and a host of
// in-process telephony simulators (telsim/simhost): the simulators a
// configuration names (Sim) and the steps that put them in force (Plan).
//
// Why it exists: the daemon must not link the simulator, and the host must
// not depend on the daemon (whose tests run it). Both depend on this package
// instead, which holds plain values and one interface and imports nothing
// of ours. The daemon says what a configuration needs; the host decides
// what to start, retune and stop to get there, and owns every simulator it
// runs: whoever creates the host closes it.
package simplan
