// Command telsim runs the simulated telephony server (package telsim) as a
// process, for load tests and fault drills against a daemon configured with
// tcp:// tiers, and drives a running one's faults.
//
//	telsim [-listen ADDR] [-tier NAME] [-capacity N] [-latency D] [-jitter D]
//	       [-id ID] [-control ADDR] [-max-frame N] [-seed N] [-log-level L]
//	       [-tombstone-ttl D]
//	telsim fault -control ADDR MODE [-latency D] [-jitter D] [-fraction F] [-period D]
//	telsim stats -control ADDR
//	telsim -version
//
// -version prints the build (module version, VCS revision, Go version) and
// -h the usage, on standard output, and exit 0.
//
// Serving, it prints one line per bound address on stdout ("listen ADDR",
// then "control ADDR" with -control), so a script can start it on port 0;
// it logs with zap on stderr (JSON, or console text when stderr is a
// terminal) and stops cleanly on SIGINT or SIGTERM. -control serves the HTTP
// control API documented in package telsim (no authentication: keep it on
// loopback).
//
// `telsim fault` sets a fault (MODE: none, down, refuse, reset, blackhole,
// slow, errors, garbage, cut, full, flap, queue) and prints the fault now in force
// as JSON; `telsim stats` prints the server's counters as JSON.
//
// Exit status: 0 on success or after a signal; 1 when serving or the
// control call failed; 2 for a usage error.
package main
