// Package bench holds switchboard's benchmarks that need more than one
// package: the latency floor, end-to-end allocation, and (later) the
// baselines the throughput budget is measured against. Everything lives in
// _test.go files; the package has no API.
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
// README.md says how to run them, compare runs with benchstat, and commit
// results under results/.
package bench
