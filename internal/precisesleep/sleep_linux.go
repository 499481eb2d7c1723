package precisesleep

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

// Pin locks the calling goroutine to its OS thread and sets the thread's
// timer slack to 1 ns. unpin restores the slack and unlocks the thread; call
// it on the same goroutine.
func Pin() (unpin func()) {
	runtime.LockOSThread()
	old, errno := TimerSlack()
	if errno != nil {
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

// TimerSlack returns the calling thread's timer slack in nanoseconds.
func TimerSlack() (uintptr, error) {
	v, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prGetTimerSlack, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return v, nil
}

// Sleep blocks the thread for d with nanosleep. A signal (Go's preemption)
// may end it early: callers loop until their deadline.
func Sleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	_ = syscall.Nanosleep(&ts, nil)
}
