// Package httpbaseline is the yardstick of switchboard's throughput budget:
// the allocation service written the ordinary way, with net/http and
// encoding/json, so that "≥ 10 × the baseline" has something honest to be
// measured against.
//
// Why it exists: the design promises that pipelining binary frames over a
// Unix socket, with a warm multiplexed pool to the telephony tier, is worth
// an order of magnitude over the obvious implementation. That claim is only
// as good as the obvious implementation is, so this one is small, plain and
// not handicapped: every HTTP hop keeps its connections alive, the
// transports are tuned (idle pools as large as the concurrency, no
// compression, no HTTP/2 negotiation), bodies are drained so connections are
// reused, and nothing is logged on the happy path.
//
// It has three parts, all in one process in the benchmark, as switchboard's
// daemon and its sim:// tiers are:
//
//   - Stub: an HTTP telephony stub on TCP loopback. POST /reserve
//     {key, spec, meta} → 200 {bridge}; POST /release {key} → 204. It keeps
//     live reservations in a map under a mutex, refuses a key it already holds
//     (409) and a reservation beyond its capacity (507).
//   - Daemon: the baseline daemon on a Unix socket. POST /allocate
//     {token, spec, meta} → 200 {key, tier, bridge, replayed}: a token seen
//     before (and not yet released) replays its answer; otherwise the key is
//     the next value of an atomic counter (10^8 + n: nine digits, unique, and
//     the cheapest possible key, so the baseline pays nothing for keys where
//     switchboard pays a keyed permutation), the stub is asked to reserve it,
//     and the reservation is recorded. POST /release {key} → 204 asks the stub
//     to release and forgets the reservation and its token.
//   - Client: the front end's side, an http.Client over the Unix socket with
//     a keep-alive pool sized for the callers.
//
// What it leaves out, each in the baseline's favour: one telephony tier and
// no failover or circuit breaker; no sharing of an allocation between
// concurrent requests with one token (tokens are unique in the benchmark);
// no overload shedding; no lease of keys to disk.
//
// Stub, Daemon and Client are safe for concurrent use. Start owns the
// server's goroutines; Close stops them and waits for the serving goroutine.
package httpbaseline
