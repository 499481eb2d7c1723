package deadline

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDeadlineExpires(t *testing.T) {
	var d Deadline
	d.Start(20 * time.Millisecond)
	if d.Err() != nil {
		t.Fatal("expired at once")
	}
	if at, ok := d.Deadline(); !ok || time.Until(at) > 20*time.Millisecond {
		t.Fatalf("Deadline %v %v", at, ok)
	}
	select {
	case <-d.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed 5s after a 20ms deadline")
	}
	if !errors.Is(d.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err %v", d.Err())
	}
	old := d.Done()
	d.Stop()
	// The next use must not inherit the closed channel.
	d.Start(time.Hour)
	if d.Err() != nil || d.Done() == old {
		t.Fatal("a reused deadline starts expired")
	}
	d.Stop()
}

func TestDeadlineReuseAllocatesNothing(t *testing.T) {
	var d Deadline
	d.Start(time.Hour)
	d.Stop()
	allocs := testing.AllocsPerRun(1000, func() {
		d.Start(time.Minute)
		if d.Err() != nil {
			panic("expired")
		}
		d.Stop()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per reuse, want 0", allocs)
	}
}

func TestDeadlineArmedInThePast(t *testing.T) {
	var d Deadline
	d.Start(time.Hour)
	d.Stop()
	d.Start(-time.Second)
	if !errors.Is(d.Err(), context.DeadlineExceeded) {
		t.Fatal("a deadline armed in the past is not expired at once")
	}
	d.Stop()
	d.Start(time.Hour)
	if d.Err() != nil {
		t.Fatal("expired after re-arming for an hour")
	}
	d.Stop()
}

func TestDeadlineWithin(t *testing.T) {
	var req, att Deadline
	req.Start(time.Hour)
	defer req.Stop()
	// The attempt's own timeout comes first: att is armed.
	ctx, cancel := att.Within(&req, time.Minute)
	if ctx != &att {
		t.Fatal("attempt shorter than the request does not use its own deadline")
	}
	if at, _ := ctx.Deadline(); time.Until(at) > time.Minute {
		t.Fatalf("attempt deadline %v", at)
	}
	cancel()

	// The request's deadline comes first: the attempt is the request.
	var short Deadline
	short.Start(10 * time.Millisecond)
	ctx, cancel = att.Within(&short, time.Minute)
	if ctx != &short {
		t.Fatal("attempt longer than the request's remaining time is not bounded by the request")
	}
	cancel()
	<-ctx.Done()
	short.Stop()

	// Background: armed for the timeout.
	ctx, cancel = att.Within(context.Background(), time.Minute)
	if ctx != &att {
		t.Fatal("attempt under Background does not use its own deadline")
	}
	cancel()

	// A cancellable foreign parent: the standard library, so that
	// cancelling the parent ends the attempt.
	parent, pcancel := context.WithCancel(context.Background())
	ctx, cancel = att.Within(parent, time.Minute)
	defer cancel()
	if _, ok := ctx.(*Deadline); ok {
		t.Fatal("a cancellable parent's cancellation would not reach the attempt")
	}
	pcancel()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("attempt not cancelled with its parent")
	}
}
