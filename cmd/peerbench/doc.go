// Command peerbench runs switchboard's peers as separate processes and
// measures any of them, switchboard included, with one closed-loop load, so
// that issue 14's "peers, measured fairly" comparison has every service in
// processes of its own and the same client on every side.
//
//	peerbench grpc-stub  -listen ADDR -tier NAME [-tuned]
//	peerbench grpc-front -socket PATH -tiers NAME=ADDR,... [-tuned] [-conns-per-tier N]
//	peerbench http-stub  -listen ADDR
//	peerbench http-front -socket PATH -stub URL
//	peerbench load       -target switchboard|http|grpc|grpc-tuned -socket PATH
//	                     [-callers N] [-conns N] [-warmup D] [-duration D]
//	                     [-pids PID,...] [-label S]
//	peerbench summarize  [FILE]
//	peerbench -version
//
// peerbench -h prints this usage and peerbench ROLE -h a role's flags, on
// standard output, exit 0; -version prints the build (internal/buildinfo).
// A usage error exits 2, a failure 1.
//
// The server roles (package grpcpeer's Stub and Front, package
// httpbaseline's Stub and Daemon) print one line when ready ("listen ADDR"
// for a stub, "ready PATH" for a front), serve until SIGINT or SIGTERM,
// then stop cleanly.
//
// load runs -callers goroutines in a closed loop: one successful untimed
// cycle each (every connection is up before the clock runs; tried for up to
// 10 s), -warmup (unmeasured),
// then -duration, each cycle an allocation with a fresh idempotency token
// and the release of its key, with the same request on every target: a
// 51-byte conference name with a weekly recurrence, a 37-byte token
// and a 256-byte meta. switchboard's client and the gRPC client spread the
// callers over -conns connections (each carrying concurrent calls);
// HTTP/1.1 cannot, so the http target keeps one connection per caller. It
// prints one JSON object: cycles per second, allocate and release latency
// percentiles, and the CPU time per cycle of every process in -pids and of
// itself (utime + stime from /proc/PID/stat, read at the start and the end
// of the measured window). A failed allocation or release is counted (with
// the first error) and the caller goes on; a caller whose untimed cycle
// never succeeds ends the run with exit status 1.
//
// summarize reads load's JSON lines (a file, or standard input) and prints,
// per load (label), each target's medians and switchboard's ratios to each
// peer: the median of the per-round ratios, the rounds being the order the
// lines came in (bench/peers.sh alternates the targets in rounds).
package main
