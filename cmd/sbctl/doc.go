// Command sbctl is the operator's command line for a running switchboard
// daemon.
//
//	sbctl [-socket PATH] [-json] [-timeout D] COMMAND [ARGS]
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
// Output: readable lines by default; with -json exactly one JSON object on
// stdout, with session keys as strings (they are 64-bit, beyond what a
// JSON number holds exactly in many consumers). A reservation's meta (the
// front end's meeting record) is never printed, only its length.
//
// Exit status: 0 on success; 1 when the operation failed (exactly one line
// on stderr, e.g. "sbctl: lookup 123456789: NOT_FOUND: no session
// 123456789"); 2 for a usage error (also one line).
//
// Admin commands (status, reload, drain, breaker) will use the daemon's
// separate admin socket; they plug into the same command table.
package main
