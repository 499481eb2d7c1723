package main

import (
	"runtime"
	"syscall"
	"time"
)

// Linux prctl options for a thread's timer slack.
const (
	prSetTimerSlack = 29
	prGetTimerSlack = 30
)

// pin locks the calling goroutine to its OS thread and sets the thread's
// timer slack to 1 ns, so nanosleep wakes it within tens of µs instead of
// the default 50 µs slack plus the Go netpoller's 1 ms granularity. unpin
// restores the slack and unlocks the thread.
func (realClock) pin() (unpin func()) {
	runtime.LockOSThread()
	old, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prGetTimerSlack, 0, 0)
	if errno != 0 {
		return runtime.UnlockOSThread
	}
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, 1, 0); errno != 0 {
		return runtime.UnlockOSThread
	}
	return func() {
		_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, old, 0)
		runtime.UnlockOSThread()
	}
}

// shortSleep blocks the thread for d with nanosleep. An interruption (Go's
// preemption signal) ends it early; callers loop.
func shortSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	_ = syscall.Nanosleep(&ts, nil)
}
