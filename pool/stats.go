package pool

import (
	"time"

	"switchboard/wire"
)

// Stats is a snapshot of a pool, for sbctl, metrics and logs. It is a
// plain value owned by the caller.
type Stats struct {
	Tier     string
	Live     int // connections RoundTrip can use
	InFlight int // RoundTrips in progress
	Servers  []ServerStats
}

// ServerStats is a snapshot of one server's connections (a plain value).
type ServerStats struct {
	Addr                string
	ServerID            string    // from its last HELLO
	Live                int       // usable connections
	Draining            int       // retired connections finishing their calls
	Dialing             int       // dials in progress
	InFlight            int       // RoundTrips on its connections
	Dials               uint64    // dial attempts
	DialFailures        uint64    // failed dials (dial or HELLO)
	ConsecutiveFailures int       // drives the backoff; 0 when healthy
	NextDial            time.Time // no dial before, while failing
	LastError           string    // last dial failure or cause of death
	LastErrorAt         time.Time //
	Load                wire.Load // from the last HELLO or PONG
	LoadAt              time.Time //
}

// Stats returns a snapshot of the pool.
func (p *Pool) Stats() Stats {
	st := Stats{Tier: p.cfg.Load().Tier, Live: p.Live(), InFlight: int(p.calls.Load())}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.servers {
		ss := ServerStats{
			Addr: s.addr, ServerID: s.serverID, Dialing: s.dialing,
			Dials: s.dials, DialFailures: s.dialFailures, ConsecutiveFailures: s.failures,
			LastErrorAt: s.lastErrAt, Load: s.load, LoadAt: s.loadAt,
		}
		if s.failures > 0 {
			ss.NextDial = s.nextDial
		}
		if s.lastErr != nil {
			ss.LastError = s.lastErr.Error()
		}
		for _, c := range s.conns {
			if c.draining.Load() {
				ss.Draining++
			} else {
				ss.Live++
			}
			ss.InFlight += int(c.inflight.Load())
		}
		st.Servers = append(st.Servers, ss)
	}
	return st
}
