// Command sbctl is the operator's command line for a running switchboard
// daemon.
//
//	sbctl [-socket PATH] [-admin-socket PATH] [-json] [-timeout D] COMMAND [ARGS]
//	sbctl -version
//
// The global flags may come before or after the command and its arguments
// ("sbctl -json ping" and "sbctl ping -json" are the same). -version prints
// the build (module version, VCS revision, Go version) and -h the usage, on
// standard output, and exit 0.
//
// Front-end commands go through the daemon's front-end socket, the same one
// the XML front end uses, so what sbctl shows is what a front end would get:
//
//	ping                                   round trip to the daemon
//	allocate -name NAME [-token T] [-meta STRING]   schedule a bridge, print the session key
//	lookup KEY                             print a reservation
//	update KEY -name NAME [-meta STRING]   rename a reservation (other fields kept)
//	release KEY                            give a reservation's bridge back
//
// The socket is -socket, else $SWITCHBOARD_SOCKET, else
// /run/switchboard/switchboard.sock (the daemon's default).
//
// Admin commands go through the daemon's admin socket (HTTP on a Unix
// socket with mode 0600, served only when the daemon has admin.socket or
// its -admin-socket; run sbctl as the daemon's user):
//
//	status                        instance, config version, uptime, in-flight, keys issued and
//	                              left, the key store (file and data directory, or etcd
//	                              endpoints and prefix), whether keys are ready and why not,
//	                              the last lease, orphans, last reload; then a table of the tiers in
//	                              failover order (breaker state, override, drained, available,
//	                              live/dialing/draining connections, in-flight) with each
//	                              tier's servers (address, counts, server id, last error)
//	reload                        re-read the configuration; prints "reloaded: config version N"
//	drain TIER                    the tier takes no new allocations (its sessions stay reachable)
//	undrain TIER                  the tier takes new allocations again
//	breaker TIER open|closed|auto force the tier's breaker open or closed, or back to automatic
//	log-level [LEVEL]             print the daemon's log level, or set it until the next reload
//	fleet                         with keys.store: etcd, the daemons registered in the key
//	                              space (instance, version, host, socket, started, last lease);
//	                              a daemon that dies drops out within 10 s
//
// The admin socket is -admin-socket, else $SWITCHBOARD_ADMIN_SOCKET; there
// is no default, and an admin command without one is a usage error. The
// drain switch and breaker overrides belong to the tier's name and survive
// reloads. A refused reload (invalid configuration, a change that requires
// a restart, new pools not warm) changes nothing: sbctl prints the daemon's
// reason, e.g. "sbctl: reload: requires restart: keys.digits changed (the
// configuration in force is unchanged)", and exits 1.
//
// -timeout bounds a command, dial included (default 5s). reload waits for
// the daemon's answer, which comes after new pools are warm: without
// -timeout it is bounded by 75s instead, a little more than the minute the
// daemon gives a reload. When -timeout runs out, sbctl says so and, for a
// command that changes something, that the outcome is unknown.
//
// Output: readable lines by default; with -json exactly one JSON object on
// stdout, with session keys as strings (they are 64-bit, beyond what a
// JSON number holds exactly in many consumers); for admin commands the
// object is the daemon's answer as it sent it (status: instance,
// config_version, ... and tiers, a list of name, breaker, override,
// drained, available, live, dialing, draining, in_flight, servers). A reservation's meta (the
// front end's meeting record) is never printed, only its length.
//
// Exit status: 0 on success; 1 when the operation failed or the daemon
// could not be reached (exactly one line on stderr, e.g. "sbctl: lookup
// 123456789: NOT_FOUND: no session 123456789", "sbctl: drain nope: unknown
// tier \"nope\""); 2 for a usage error (also one line).
package main
