// Package clock is the time seam of switchboard's lower packages (pool,
// telsim, keygen): backoff, heartbeats, reply latency, flap periods and lease
// retries all read the time and arm timers through a Clock, so their tests
// drive time step by step with clocktest.Clock instead of sleeping.
//
// It exists once so that the packages share one interface and one fake: a
// test of pool and a test of telsim advance time the same way.
//
// Real is the wall clock. Its methods are thin wrappers of the time package
// that allocate nothing beyond what time.NewTimer allocates (a Timer of Real
// is a one-pointer struct, stored in the interface without allocation).
package clock
