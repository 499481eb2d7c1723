package frontend

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// SetLimits installs the reloadable fields and refuses, changing nothing, a
// Config whose fields fixed at New differ from the server's.
func TestSetLimitsRefusesRestartOnlyFields(t *testing.T) {
	cfg := DefaultConfig()
	s := &Server{cfg: cfg}
	s.lim.Store(limitsOf(cfg))

	live := cfg
	live.MaxConns, live.IdleTimeout, live.AllowUIDs = 7, time.Minute, []uint32{1000}
	if err := s.SetLimits(live); err != nil {
		t.Fatalf("SetLimits of reloadable fields: %v", err)
	}
	if got := s.Limits(); got.MaxConns != 7 || got.IdleTimeout != time.Minute || len(got.AllowUIDs) != 1 {
		t.Fatalf("limits after SetLimits: %+v", got)
	}

	fixed := live
	fixed.MaxConns = 9
	fixed.Transport, fixed.ReadTimeout = "netpoll", time.Second
	err := s.SetLimits(fixed)
	if !errors.Is(err, ErrRestartOnly) {
		t.Fatalf("SetLimits with a new transport and read timeout: %v, want ErrRestartOnly", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "Transport") || !strings.Contains(msg, "ReadTimeout") || strings.Contains(msg, "MaxFrame") {
		t.Errorf("error %q, want it to name Transport and ReadTimeout only", msg)
	}
	if got := s.Limits().MaxConns; got != 7 {
		t.Errorf("max conns %d after a refused SetLimits, want 7 (unchanged)", got)
	}
}
