// Package bench holds switchboard's benchmarks that need more than one
// package: the latency floor, end-to-end allocation, and throughput against
// a net/http baseline. Everything lives in _test.go files; the package has no
// API (the baseline itself is package httpbaseline).
//
// Why a floor: the design's latency budget is a ratio, not an absolute
// number, because the machines it runs on (2 noisy cores in CI, production
// hosts, laptops) differ by more than the budget. An allocation is one
// round trip over the front end's Unix socket that encloses one round trip
// over the telephony hop's TCP loopback connection, so the least any
// implementation can cost is the sum of those two raw round trips, with the
// same frame sizes, measured on the same machine in the same run:
//
//	floor = RTT(raw UDS echo, ALLOCATE-sized frames) + RTT(raw TCP loopback echo, RESERVE-sized frames)
//	budget: allocation round trip p50 ≤ 1.25 × floor
//
// BenchmarkFloorUnixEcho and BenchmarkFloorTCPEcho measure the two terms with
// the standard library only (a goroutine per connection, a bufio.Reader with
// io.ReadFull, one Write per reply): nothing of switchboard's runs in them
// but the wire package building the frames once. Each reports ns/op (the
// mean round trip) and p50-ns/p99-ns from per-operation timings.
// BenchmarkAllocate measures the real thing and reports its p50 as a multiple
// of a floor it measures itself, so the ratio never mixes runs.
//
// Why a baseline: the throughput budget is also a ratio, "≥ 10 × the
// allocations per second of a net/http + JSON daemon over a Unix socket with
// HTTP keep-alive, calling an HTTP telephony stub", because only a baseline
// measured on the same machine in the same run says what pipelining buys.
// Package httpbaseline is that daemon and stub, written plainly and tuned
// fairly (keep-alive pools as large as the concurrency, a counter for keys).
// BenchmarkThroughput drives both with the same closed loop of 64 goroutines,
// each allocating and releasing, and its switchboard sub-benchmark re-measures
// the baseline between its own batches to report x-baseline without mixing
// runs.
//
// Why a gRPC peer: a net/http + JSON daemon is the obvious implementation,
// not the one a team designing a fast internal service would choose. That
// team would use gRPC, which multiplexes calls on a few connections as
// switchboard does; package grpcpeer is that service (default and tuned
// grpc-go), and cmd/peerbench with peers.sh measures switchboard, the
// baseline and the peer each as its own processes, with one load client.
//
// README.md says how to run them, compare runs with benchstat, and commit
// results under results/.
package bench
