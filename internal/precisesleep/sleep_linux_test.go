package precisesleep

import (
	"runtime"
	"testing"
	"time"
)

func slack(t *testing.T) uintptr {
	t.Helper()
	v, err := TimerSlack()
	if err != nil {
		t.Skipf("prctl(PR_GET_TIMERSLACK): %v", err)
	}
	return v
}

func TestPinSetsAndRestoresTimerSlack(t *testing.T) {
	runtime.LockOSThread() // read the slack of the same thread Pin uses
	defer runtime.UnlockOSThread()
	before := slack(t)
	unpin := Pin()
	if got := slack(t); got != 1 {
		unpin()
		t.Fatalf("timer slack while pinned = %d ns, want 1", got)
	}
	unpin()
	if got := slack(t); got != before {
		t.Fatalf("timer slack after unpin = %d ns, want %d restored", got, before)
	}
}

func TestSleepSleeps(t *testing.T) {
	t0 := time.Now()
	for deadline := t0.Add(2 * time.Millisecond); time.Now().Before(deadline); {
		Sleep(time.Until(deadline))
	}
	if d := time.Since(t0); d < 2*time.Millisecond || d > 5*time.Second {
		t.Fatalf("slept %v for 2ms", d)
	}
}
