package pool

import "switchboard/internal/clock"

// Clock is the pool's source of time: backoff, heartbeats and max age all go
// through it, so tests drive them without sleeping (clocktest.Clock).
// Implementations must be safe for concurrent use.
type Clock = clock.Clock

// Timer is a timer of a Clock, with Go 1.23 semantics: after Stop or Reset
// no stale value is received from C.
type Timer = clock.Timer
