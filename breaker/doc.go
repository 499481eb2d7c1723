// Package breaker gives each telephony tier a circuit breaker, built on
// sony/gobreaker v2's TwoStepCircuitBreaker.
//
// Why two-step: an allocation attempt is asynchronous — the request is written
// to a pooled connection and the reply arrives on the connection's reader — so
// the breaker is asked first (Allow) and told the outcome later (done). The
// one rule that matters is that done is called exactly once on every path: a
// half-open breaker admits only Probes requests, and a probe whose done is
// never called holds its slot for ever, so the tier would never be tried again
// (docs/libraries.md G2). Breaker.Allow returns a Done that is safe to call more
// than once (only the first call counts) so the caller can both defer it and
// call it early.
//
// Why a mirror: gobreaker takes a mutex and reads the clock on every call. The
// request path must skip a tier known to be bad at the cost of an atomic load,
// so OnStateChange (which gobreaker runs under its own mutex, P10: it only
// stores atomics here) mirrors the state, and while the mirror says "open" and
// the open period has not elapsed, Allow answers without touching gobreaker.
// Once the open period is over, Allow asks gobreaker again, which moves to
// half-open and admits a probe: the mirror never prevents probing.
//
// The mirror is one immutable snapshot (state, end of the open period, and
// the generation of the gobreaker it describes) swapped atomically. Retune
// builds a new gobreaker as a new generation and resets the mirror to closed
// for it before the new gobreaker is reachable; a state change of the old
// gobreaker still being reported (gobreaker runs the callback under its lock,
// so it can race a reload) then finds a newer generation and is dropped. A
// closed tier can thus never be left mirrored as open.
//
// What an outcome means is decided by the caller, never here: the router
// classifies each attempt once (route/outcome.go) and tells the breaker a
// Verdict (Done.Record): only what the telephony server did, or failed to do
// in time, counts; local limits (a full pool, no connection, a closing
// pool), a timeout while this process was behind, and the caller's own
// deadline are NoVerdict. The breaker has no error classifier of its own, so
// the two cannot drift apart.
//
// Operators can force a breaker open or closed (Override); the override
// survives Retune, which swaps in a new gobreaker with new settings.
package breaker
