// Package route decides where a front-end request goes and what its answer
// is: it is switchboard's routing, apart from serving. For ALLOCATE it
// issues a session key, walks the tier order (Primary Large, NextGen,
// Backup 2 Large) and reserves a bridge on the first tier that takes it;
// LOOKUP, UPDATE and RELEASE go only to the telephony server that holds the
// session, which the session index records.
//
// It is its own concept because everything here is about tiers, sessions
// and the outcome of an attempt, and nothing about sockets or frames: a
// Router takes a decoded request, a context and the caller's per-request
// Scratch, and appends the response payload to a buffer. The front-end
// server (package frontend) owns connections, framing and admission, and
// reaches the Router through the daemon's handler; the daemon builds the
// tiers and hands each tier order to Swap. The router imports neither: it
// reports each attempt to a TierObserver (the daemon's metrics implement
// it) and exposes its counters through Stats.
//
// What it holds:
//
//   - the tier order (TierSet), swapped whole by a reload and held by each
//     request while it uses its tiers, and each request's Scratch
//     (router.go);
//   - ONE outcome classifier (outcome.go): what the result of any call to
//     a telephony server means — for an attempt, which metric label, what
//     the tier's breaker is told, whether the allocation waits, takes a
//     fresh key or tries the next tier; for a follow-up or an orphan's
//     RELEASE, whether the session is gone, the server busy or
//     unreachable, the release deferred — and the status a request's
//     error gives the client (StatusOf);
//   - idempotency flights and the token records, so that a retried
//     ALLOCATE gets the same bridge (router.go, index.go);
//   - the in-flight table, so that a crash does not leak a bridge whose
//     answer never left (inflight.go);
//   - the session index (index.go), a cache on fastcache, never the source
//     of truth;
//   - the orphan releaser and its journal (orphans.go, orphanlog.go):
//     reservations whose outcome is unknown, and deferred releases, are
//     released on their server once it answers, across restarts.
//
// The request path holds no lock across I/O and, in steady state,
// allocates nothing: the tier order is an immutable slice behind an atomic
// pointer, a tier's availability is three atomic loads (drain switch, live
// connections, breaker mirror), a tier attempt is bounded by a reusable
// deadline (internal/deadline) kept in the request's Scratch. Goroutines:
// the orphan releaser (OpenOrphans starts it, the function it returns stops
// it) with at most one release worker per telephony server at a time.
package route
