package telsim

import "switchboard/internal/clock"

// Clock is the time source of a Server: the timers behind reply latency, the
// flap period, the back-off between accept or listen retries, and the expiry
// of tombstones. Tests inject a fake one (clocktest.Clock) with WithClock so
// that timing-dependent behaviour (flap in particular) is driven step by step
// instead of by sleeping. Implementations must be safe for concurrent use.
type Clock = clock.Clock

// Timer is a one-shot timer created by a Clock (time.Timer semantics, Go ≥
// 1.23: no stale value after Stop or Reset). A Timer is used by one
// goroutine at a time.
type Timer = clock.Timer

// unixNow returns the time of c in Unix ns, for tombstone expiry.
func unixNow(c Clock) func() int64 {
	return func() int64 { return c.Now().UnixNano() }
}
