// Package daemon is switchboard itself: it loads and validates the
// configuration, owns the lifecycle (New, Run, shutdown on context end), and
// wires the parts together — session keys (keygen), per-tier warm connection
// pools (pool) and circuit breakers (breaker), the session index (fastcache),
// the in-process telephony simulators of sim:// tiers through a SimHost
// (telsim/simhost: this package does not link the simulator), and the
// front-end socket server on netpoll.
//
// It is the only package that knows all the others; the packages below it
// receive plain values, never the YAML types.
//
// The request path (server.go → service.go) holds no lock across I/O: a
// front-end frame is copied out of netpoll's buffer and handled on its own
// goroutine (requests on one connection run concurrently and are answered
// out of order), the tier order is an immutable slice behind an atomic
// pointer, a tier's availability is three atomic loads (drain switch, live
// connections, breaker mirror), and responses are written by
// flush-combining. A session's follow-ups (LOOKUP, UPDATE, RELEASE, the
// release of an orphan) go only to the telephony server that holds it, whose
// HELLO id the index records: the servers of a tier do not share
// reservations. Goroutines: Run owns the event loop, the orphan releaser
// (with at most one release worker per telephony server at a time) and each
// request's handler goroutine (bounded by server.max_in_flight and
// awaited on shutdown); the pools, the key generator and the simulators own
// theirs and stop them when closed.
package daemon
