package frontend

import (
	"testing"
	"time"

	"switchboard/internal/testsupport"
)

// netpoll's pollers and gopool's workers are process-wide and outlive any
// one server by design (docs/architecture.md, "Goroutines and their
// owners"); everything else must stop.
func TestMain(m *testing.M) { testsupport.VerifyTestMainNetpoll(m) }

// fakeTiers is admission's view of tiers of a fixed capacity (two
// connections of 1024 calls, as a default daemon's first tier has).
type fakeTiers struct {
	capacity int64
	attempt  time.Duration
}

func (f fakeTiers) FirstCapacity() (int64, time.Duration, bool) { return f.capacity, f.attempt, true }

func (f fakeTiers) FirstTier() any { return "first" }
