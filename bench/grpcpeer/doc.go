// Package grpcpeer is the gRPC peer of switchboard: the allocation service
// as a team would most likely build it instead, with grpc-go unary calls
// and protobuf messages, so that "switchboard against what people would
// otherwise build" is measured against something real and not handicapped.
//
// Why it exists: httpbaseline (net/http + JSON, one request per
// connection) is the obvious implementation, but not the one a team
// designing a low-latency internal service would pick. That team would
// pick gRPC: HTTP/2 multiplexes many calls on a few connections, as
// switchboard's pipelined frames do, protobuf is a compact binary
// encoding, and grpc-go is a mature, tuned library. Switchboard's design
// claims to beat that too, by a margin issue 14 states; this package is
// the other side of the comparison.
//
// It has three parts, each its own process in the benchmark
// (cmd/peerbench, bench/peers.sh), in one process in the tests (Start):
//
//   - Stub: the gRPC telephony stub of one server, on TCP loopback.
//     Reserve {key, spec, meta} → Bridge; Release {key} → Empty. It keeps
//     live reservations in a map under a mutex, refuses a key it holds
//     (AlreadyExists) and a reservation beyond its capacity
//     (ResourceExhausted). One stub per tier.
//   - Front: the peer's daemon, on a Unix socket. Allocate {token, spec,
//     meta} → {key, tier, bridge, replayed}: a token seen before (and not
//     yet released) replays its first answer; otherwise the key is the next
//     value of an atomic counter (10^8 + n, nine digits, unique: the
//     cheapest key there is, where switchboard pays a keyed permutation),
//     reserved on the first tier that takes it, in switchboard's order
//     primary-large → nextgen → backup2-large, each attempt bounded by 250
//     ms (switchboard's attempt_timeout). A tier is a pool of two gRPC
//     client connections to its stub, dialed at start and used round robin
//     (switchboard's pool keeps two warm connections per server in the
//     benchmark's configuration). Release {key} asks the tier that holds
//     the key, then forgets the session and its token.
//   - Client: the front end's side, a given number of gRPC connections to
//     the front's socket (two in the benchmark, as switchboard's client),
//     used round robin, each carrying many concurrent calls.
//
// Two configurations (Options): grpc-go's defaults, and tuned as a
// competent team would (stream workers, fixed flow-control windows, larger
// read and write buffers; shared write buffers are grpc-go's default in
// v1.85, so both have them; options.go says why each). Both use plaintext,
// as switchboard's hops do.
//
// What it leaves out, each in the peer's favour: circuit breakers (a down
// tier costs every allocation a fast-failing attempt instead); health
// checks and heartbeats; sharing one allocation between concurrent
// requests with one token (tokens are unique in the benchmark); overload
// shedding; leasing keys to disk; a background releaser for releases the
// stub did not answer (the session is kept for the caller to retry).
//
// Stub, Front and Client are safe for concurrent use. Start owns the
// servers' goroutines; Close stops them and waits for them.
package grpcpeer
