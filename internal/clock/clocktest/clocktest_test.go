package clocktest

import (
	"testing"
	"time"
)

func TestTimersFireInDeadlineOrderWhenAdvanced(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	c := New(start)
	var order []int
	c.AfterFunc(2*time.Second, func() { order = append(order, 2) })
	c.AfterFunc(time.Second, func() { order = append(order, 1) })
	tm := c.NewTimer(3 * time.Second)
	c.Advance(time.Second - 1)
	if len(order) != 0 || c.Active() != 3 {
		t.Fatalf("fired %v early; %d armed", order, c.Active())
	}
	c.Advance(5 * time.Second)
	if len(order) != 2 || order[0] != 1 || order[1] != 2 {
		t.Fatalf("AfterFunc order %v, want [1 2]", order)
	}
	select {
	case at := <-tm.C():
		if !at.Equal(c.Now()) {
			t.Fatalf("fired at %v, want %v", at, c.Now())
		}
	default:
		t.Fatal("timer not fired")
	}
	if c.Active() != 0 {
		t.Fatalf("%d armed after firing", c.Active())
	}
}

func TestStopResetAndAfter(t *testing.T) {
	c := New(time.Unix(0, 0))
	tm := c.NewTimer(time.Second)
	if !tm.Stop() || tm.Stop() {
		t.Fatal("Stop: want true then false")
	}
	c.Advance(time.Hour)
	select {
	case <-tm.C():
		t.Fatal("stopped timer fired")
	default:
	}
	if tm.Reset(time.Second) {
		t.Fatal("Reset of a stopped timer reported active")
	}
	if timers, funcs := c.Armed(); len(timers) != 1 || timers[0] != time.Second || len(funcs) != 0 {
		t.Fatalf("Armed = %v, %v", timers, funcs)
	}
	ch := c.After(0) // due at once
	select {
	case <-ch:
	default:
		t.Fatal("After(0) not fired")
	}
}
