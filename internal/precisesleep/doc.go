// Package precisesleep gives load generators waits accurate to tens of
// microseconds, where Go timers are not: a timer wakes an idle process up
// to a millisecond late (the netpoller's granularity plus the kernel's
// default 50 µs timer slack), and an open-loop load generator adds that
// lateness to every latency it measures. Pin locks the calling goroutine to
// its OS thread and sets the thread's timer slack to 1 ns (Linux prctl);
// Sleep then blocks that thread in nanosleep. Elsewhere Pin does nothing and
// Sleep is time.Sleep.
//
// Used by sbbench's scheduler and daemon's BenchmarkReloadP99.
package precisesleep
