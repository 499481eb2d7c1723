package frontend

import (
	"errors"
	"fmt"
	"strings"
)

// ErrRestartOnly is returned by SetLimits for a Config whose fields that
// only New reads (Transport, MaxFrame, ReadTimeout, WriteTimeout) differ
// from the server's.
var ErrRestartOnly = errors.New("fixed until restart")

// SetLimits installs the reloadable part of cfg (Config): the requests
// that follow read the new bounds. The other fields must be those the
// server was created with: if one differs, SetLimits changes nothing and
// returns an error wrapping ErrRestartOnly that names the fields.
func (s *Server) SetLimits(cfg Config) error {
	var differ []string
	for _, f := range []struct {
		name string
		same bool
	}{
		{"Transport", cfg.Transport == s.cfg.Transport},
		{"MaxFrame", cfg.MaxFrame == s.cfg.MaxFrame},
		{"ReadTimeout", cfg.ReadTimeout == s.cfg.ReadTimeout},
		{"WriteTimeout", cfg.WriteTimeout == s.cfg.WriteTimeout},
	} {
		if !f.same {
			differ = append(differ, f.name)
		}
	}
	if len(differ) > 0 {
		return fmt.Errorf("%w: %s", ErrRestartOnly, strings.Join(differ, ", "))
	}
	s.lim.Store(limitsOf(cfg))
	return nil
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

// CutReasons names, in order, the reasons a connection is cut, as
// Stats.Cuts counts them and switchboard_connections_cut_total labels them.
func CutReasons() []string { return cutNames[:] }

// Stats are the server's counters and gauges, read at scrape time.
type Stats struct {
	InFlight         int64 // requests admitted and not answered
	Open             int64 // connections counted against max_conns
	AdmissionLimit   int64 // admission's adaptive limit
	AdmissionWaiting int64 // requests waiting for a slot at the tiers
	Requests         uint64
	Overloaded       uint64
	BadFrames        uint64
	Refused          uint64 // connections refused at accept
	Pauses           uint64 // readers paused at their connection's bounds
	NotAllowed       uint64 // refused by allow_uids/allow_gids
	// KeptAfterFailedWrite counts held answers of a failed write that
	// still count as delivered.
	KeptAfterFailedWrite uint64
	// Clock is the reaper's coarse clock (Unix ns) at its last tick.
	Clock int64
	// Cuts counts the connections cut, by reason (CutReasons).
	Cuts [numCutReasons]uint64
}

// Stats returns the server's counters (atomic loads).
func (s *Server) Stats() Stats {
	st := Stats{InFlight: s.inFlight.Load(), Open: s.open.Load(),
		AdmissionLimit: s.slots.currentLimit(), AdmissionWaiting: s.slots.waiters.Load(),
		Requests: s.stats.requests.Load(), Overloaded: s.stats.overloaded.Load(), BadFrames: s.stats.badFrames.Load(),
		Refused: s.stats.refusedConns.Load(), Pauses: s.stats.pauses.Load(), NotAllowed: s.stats.notAllowed.Load(),
		KeptAfterFailedWrite: s.stats.keptAfterFailedWrite.Load(), Clock: s.clock.Load()}
	for r := range st.Cuts {
		st.Cuts[r] = s.stats.cuts[r].Load()
	}
	return st
}

// CutCount returns how many connections were cut for the reason named
// name (CutReasons); 0 for an unknown name.
func (st Stats) CutCount(name string) uint64 {
	for r, n := range cutNames {
		if n == name {
			return st.Cuts[r]
		}
	}
	return 0
}

// Census counts the open connections by what they are doing; it takes the
// connection registry's lock (introspection, never the request path).
type Census struct {
	// Running: a request running (eviction skips them).
	Running int
	// Unread: requests read and unanswered with few response bytes
	// queued (under the 64 KiB that marks a client that does not read):
	// requests still running, or small answers a client does not read.
	Unread int
	// UnreadIdle: of Unread, none running and not cut: a client that
	// does not read its small answers.
	UnreadIdle int
}

// Census returns the connections' census.
func (s *Server) Census() Census {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	var n Census
	for c := range s.conns {
		running := c.inFlight.Load() > 0
		if running {
			n.Running++
		}
		if c.unanswered.Load() > 0 && c.queued.Load() < stuckQueued {
			n.Unread++
			if !running && !c.cutOnce.Load() {
				n.UnreadIdle++
			}
		}
	}
	return n
}

// Limits returns the reloadable settings in force (SetLimits); the other
// fields of Config are zero.
func (s *Server) Limits() Config {
	l := s.lim.Load()
	return Config{MaxConns: int(l.maxConns), MaxInFlight: int(l.maxInFlight), MaxConnInFlight: int(l.maxConnInFlight),
		RequestTimeout: l.requestTimeout, MaxConnUnanswered: int(l.maxConnUnanswered), MaxConnQueuedBytes: int(l.maxConnQueued),
		IdleTimeout: l.idleTimeout, MaxConnsPerUID: l.maxConnsPerUID, AllowUIDs: l.allowUIDs, AllowGIDs: l.allowGIDs}
}
