// Command sbbench is switchboard's load harness: it drives ALLOCATE requests
// at the daemon's front-end socket, releases what it allocated, and prints
// latency percentiles, error counts by code and allocations per tier.
//
//	sbbench -socket PATH (-rate N | -concurrency N) -duration D [-conns C] [-json] [-warmup D] [-name-prefix S]
//	        [-fault ADDR=MODE[:K=V,...]@SECONDS]... [-timeline-step D]
//	        [-reload-every D -admin-socket PATH]
//	        [-hgrm FILE]
//	sbbench scenario NAME -out DIR [-bin DIR] [-duration D] [flags]
//	sbbench -version
//
// -version prints the build (module version, VCS revision, Go version) and
// -h the usage, on standard output, and exit 0.
//
// Two load models, because they answer different questions:
//
//   - -rate N is an open loop: N allocations per second whatever the daemon
//     does, as front ends produce them. Every request has an intended send
//     time, start + i/N, and its latency is measured from that time, not
//     from when it was actually sent. A daemon that stalls for 100 ms thus
//     shows 100 ms of latency on every request that should have been sent
//     during the stall, instead of one slow request and a quiet gap: this is
//     the "coordinated omission" correction of Gil Tene's wrk2 and
//     HdrHistogram. Each request is sent from its own goroutine, so a slow
//     daemon cannot hold back later sends; the number in flight is capped by
//     -max-inflight, and a request the cap would hold back is not sent but
//     counted as the error "client_backlog".
//   - -concurrency N is a closed loop: N workers, each sending its next
//     request when the previous one is answered. It finds peak throughput;
//     its latencies are measured from the actual send.
//
// The generator's own lateness is reported as "send lag" (actual send minus
// intended send); it is part of every open-loop latency, so read the two
// together. Go timers wake an idle process up to a millisecond late, so the
// scheduler finishes each wait with nanosleep on a thread pinned with a
// 1 ns timer slack (Linux): on the 2-core reference VM that is a p50 lag of
// about 50 µs instead of about 550 µs. -spin D makes it busy-wait (yielding)
// for the last D before each send: a lag of a few µs, for a core's worth
// of CPU on the load host at rates above ~1/D.
//
// Every allocation carries a unique idempotency token. Each allocated key is
// released by a small pool of release workers while the load runs (release
// latency and release errors are reported separately, never mixed into the
// allocation numbers); all releases finish before sbbench exits.
//
// OVERLOADED answers are counted on their own ("overloaded" in the text
// summary, the timeline's overloaded column, and "overloaded",
// "release_overloaded" and each row's "overloaded" in -json), never among
// the errors: OVERLOADED is the daemon shedding a burst it cannot carry
// ("busy, retry later"), which a healthy daemon does by design, while
// UNAVAILABLE and the other error codes are failures. So sent = ok +
// overloaded + errors.
//
// # Timeline and fault injection
//
// After the summary comes a timeline: the measured window in rows of one
// second (-timeline-step; widened to keep at most 600 rows), each with the
// allocations due in it (sent, ok, overloaded, errors by code), the p50 and p99 of its
// ok allocations, its allocations by tier and the faults injected in it.
// Rows are by intended send time, so a stall shows in the row where the
// requests were due. It is what makes a failover visible: the second
// primary-large goes down, its column drops to 0 and the next tier's takes
// over, and it comes back after the tier recovers.
//
// -fault ADDR=MODE[:K=V,...]@SECONDS (repeatable) makes that happen during
// the run: SECONDS after the end of warmup (a number, or a Go duration),
// sbbench sets the fault MODE (a telsim mode: none, down, refuse, reset,
// blackhole, slow, errors, garbage, cut, full, flap; K=V are the mode's
// arguments: latency and jitter for slow, fraction for errors, period for
// flap) through the telsim control API at ADDR (telsim -control ADDR):
//
//	sbbench -rate 2000 -duration 10s -fault 127.0.0.1:7201=down@3 -fault 127.0.0.1:7201=none@6
//
// Faults are injected by a goroutine per control address, off the load
// loop, each call bounded by -timeout. Every injection is reported with the
// time it was issued, the address, the fault and the result (the fault the
// server says is in force, or the error): a failed injection is data, not a
// reason to stop the run. Faults not yet due when the run ends are
// reported as skipped. sbbench does not undo its faults at the end: give a
// final "none" if the tier should be left healthy.
//
// # Reloads under load
//
// -reload-every D -admin-socket PATH reloads the daemon while the load runs:
// at D, 2D, … after the end of warmup (within -duration), sbbench POSTs
// /reload to the daemon's admin socket, which makes the daemon re-read its
// configuration source (the -config file, flags applied) and apply it. A
// reload that changes nothing still runs the whole reload path (validate,
// plan, swap, drain); edit the file between reloads to change pool sizes,
// timeouts, breaker thresholds or a tier's servers
// (scripts/reload-demo.sh alternates two files). Reloads are made by one
// goroutine off the load loop, one at a time, each bounded by -timeout; a
// reload still running when the next is due delays it to the next tick
// (the missed one is counted as skipped). A refused or failed reload is
// counted, with the first error, and the run goes on.
//
//	sbbench -rate 2000 -duration 20s -timeline-step 250ms -reload-every 1s -admin-socket run/admin.sock
//
// The summary counts the reloads (ok, failed, skipped, their round trip
// and the config version in force), and compares the latency of the
// timeline rows during which a reload was in progress with that of the
// other rows: the p99 of all ok allocations of each set of rows, and their
// ratio. Each timeline row notes the reloads issued in it ("reload 1 ok")
// or a reload running on from an earlier row ("reloading"). A row is
// counted as "during a reload" whole, so a -timeline-step well below
// -reload-every both leaves rows without a reload to compare with and
// keeps a short reload's effect from being diluted in a long row.
//
// The run stops by itself after -warmup plus -duration (or -requests
// allocations); SIGINT stops it early and the summary is still printed.
// Requests sent during -warmup are released but not counted.
//
// -hgrm FILE also writes the ok allocations' latency distribution as an
// HdrHistogram percentile table (the .hgrm text wrk2 writes, in
// milliseconds, from the same coordinated-omission-free histogram as the
// summary). When standard output is a terminal, a progress line (elapsed,
// ok, overloaded, errors) is redrawn while the run goes on and erased
// before the summary; output to a pipe or a file never has it.
//
// # Scenarios
//
// sbbench scenario NAME -out DIR runs a whole measurement on real
// processes: it starts what NAME needs from -bin (default bin/: three
// bin/telsim, bin/switchboard configured for them with an admin socket,
// and for throughput the peers of bin/peerbench) in a temporary directory,
// drives the load with this same harness (throughput: with bin/peerbench
// load, the peers' common client), stops every process (SIGTERM, last
// started first, then SIGKILL after 5 s, and waits for each; also on an
// error or a signal; on Linux the kernel kills them if sbbench dies), and
// writes NAME.json (machine, parameters, each phase's summary as -json
// prints it, the checks of the design's budgets the scenario measures, the
// processes), NAME.svg (one self-contained picture: latency and throughput
// over time, per-tier share, faults and reloads marked) and one .hgrm per
// load phase into DIR. Scenarios: steady, failover, reload, overload,
// conns, throughput; sbbench scenario -h lists them with their flags. A
// budget the run does not meet is reported in the checks, not as a
// failure: the exit status is 0 once the scenario ran and its files are
// written.
//
// Exit status: 0 when the run completed (even with request errors, which are
// data), 1 when it could not run (for example, the socket does not answer),
// 2 for a usage error.
package main
