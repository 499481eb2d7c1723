// Package testsupport holds the helpers that switchboard's tests share, so
// that each exists once: the goroutine-leak check with the goroutines that
// outlive every test by design (netpoll's poller, gopool's workers), bounded
// progress waits, a buffer a logger and a test may use at once, short
// temporary directories for Unix sockets, and the build of the real binaries
// that end-to-end tests run.
//
// It is imported by _test.go files only. Waits here are progress waits, not
// timing: their bounds are generous because the machines that run the suite
// are shared and slow, and a condition that holds passes at once.
package testsupport
