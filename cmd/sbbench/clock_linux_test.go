package main

import (
	"runtime"
	"syscall"
	"testing"
)

func timerSlack(t *testing.T) uintptr {
	t.Helper()
	v, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prGetTimerSlack, 0, 0)
	if errno != 0 {
		t.Skipf("prctl(PR_GET_TIMERSLACK): %v", errno)
	}
	return v
}

func TestPinSetsAndRestoresTimerSlack(t *testing.T) {
	runtime.LockOSThread() // read the slack of the same thread pin uses
	defer runtime.UnlockOSThread()
	before := timerSlack(t)
	unpin := realClock{}.pin()
	if got := timerSlack(t); got != 1 {
		unpin()
		t.Fatalf("timer slack while pinned = %d ns, want 1", got)
	}
	unpin()
	if got := timerSlack(t); got != before {
		t.Fatalf("timer slack after unpin = %d ns, want %d restored", got, before)
	}
}
