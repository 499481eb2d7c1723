// Command sbbench is switchboard's load harness: it drives ALLOCATE requests
// at the daemon's front-end socket, releases what it allocated, and prints
// latency percentiles, error counts by code and allocations per tier.
//
//	sbbench -socket PATH (-rate N | -concurrency N) -duration D [-conns C] [-json] [-warmup D] [-name-prefix S]
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
// The run stops by itself after -warmup plus -duration (or -requests
// allocations); SIGINT stops it early and the summary is still printed.
// Requests sent during -warmup are released but not counted.
//
// Exit status: 0 when the run completed (even with request errors, which are
// data), 1 when it could not run (for example, the socket does not answer),
// 2 for a usage error.
package main
