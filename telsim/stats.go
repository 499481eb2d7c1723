package telsim

import (
	"sync/atomic"

	"switchboard/wire"
)

// Stats is a snapshot of a Server's counters (Server.Stats, GET /stats).
// Counters are monotonic since New; Reservations, Capacity, Conns and
// Listening are current values. A Stats is a plain value.
type Stats struct {
	Tier      string `json:"tier"`
	ServerID  string `json:"server_id"`
	Fault     Fault  `json:"fault"`
	Listening bool   `json:"listening"` // false while down (or before Serve)

	Reservations int64  `json:"reservations"` // live now
	Capacity     int64  `json:"capacity"`
	Conns        int64  `json:"conns"`       // open now
	ConnsTotal   uint64 `json:"conns_total"` // accepted and served

	// Requests received, by op (whatever the outcome, faults included).
	Requests uint64 `json:"requests"`
	Hellos   uint64 `json:"hellos"`
	Pings    uint64 `json:"pings"`
	Reserves uint64 `json:"reserves"`
	Updates  uint64 `json:"updates"`
	Releases uint64 `json:"releases"`
	Lookups  uint64 `json:"lookups"`

	// Tombstoned counts RESERVEs refused (KEY_EXISTS, also counted in
	// Errors.KeyExists) because their key had been RELEASEd while unknown.
	Tombstoned uint64 `json:"tombstoned"`

	// Errors counts error replies sent, by status.
	Errors ErrorStats `json:"errors"`
	// Faults counts what injected faults did.
	Faults FaultStats `json:"faults"`
}

// ErrorStats counts error replies by status. A plain value.
type ErrorStats struct {
	KeyExists   uint64 `json:"key_exists"`
	Capacity    uint64 `json:"capacity"`
	NotFound    uint64 `json:"not_found"`
	BadRequest  uint64 `json:"bad_request"`
	Unsupported uint64 `json:"unsupported"`
	Internal    uint64 `json:"internal"`
}

// FaultStats counts the effects of injected faults. A plain value.
type FaultStats struct {
	Refused   uint64 `json:"refused"`   // conns closed at accept (refuse, down race)
	Reset     uint64 `json:"reset"`     // conns reset (existing and new)
	Dropped   uint64 `json:"dropped"`   // replies withheld (blackhole)
	Delayed   uint64 `json:"delayed"`   // replies sent late (latency, jitter, slow)
	Garbage   uint64 `json:"garbage"`   // undecodable replies sent
	Cut       uint64 `json:"cut"`       // conns cut mid-frame
	Internal  uint64 `json:"internal"`  // injected INTERNAL replies (also in Errors.Internal)
	Full      uint64 `json:"full"`      // injected CAPACITY replies (also in Errors.Capacity)
	Downs     uint64 `json:"downs"`     // transitions to not listening
	Relistens uint64 `json:"relistens"` // transitions back to listening
	Queued    uint64 `json:"queued"`    // RESERVEs executed late (queue)
}

// counters are the live counters behind Stats.
type counters struct {
	conns      atomic.Int64
	connsTotal atomic.Uint64
	requests   atomic.Uint64
	byOp       [wire.OpTelLookup - wire.OpHello + 1]atomic.Uint64
	byStatus   [wire.StatusUnsupported + 1]atomic.Uint64

	refused, reset, dropped, delayed, garbage, cut, internal, full, downs, relistens, queued, tombstoned atomic.Uint64
}

func (c *counters) countOp(op wire.Op) {
	c.requests.Add(1)
	if op.IsTelephony() {
		c.byOp[op-wire.OpHello].Add(1)
	}
}

func (c *counters) countStatus(s wire.Status) {
	if s < wire.Status(len(c.byStatus)) {
		c.byStatus[s].Add(1)
	}
}

func (c *counters) fill(st *Stats) {
	st.Conns = c.conns.Load()
	st.ConnsTotal = c.connsTotal.Load()
	st.Requests = c.requests.Load()
	op := func(o wire.Op) uint64 { return c.byOp[o-wire.OpHello].Load() }
	st.Hellos = op(wire.OpHello)
	st.Pings = op(wire.OpTelPing)
	st.Reserves = op(wire.OpReserve)
	st.Updates = op(wire.OpTelUpdate)
	st.Releases = op(wire.OpTelRelease)
	st.Lookups = op(wire.OpTelLookup)
	st.Errors = ErrorStats{
		KeyExists:   c.byStatus[wire.StatusKeyExists].Load(),
		Capacity:    c.byStatus[wire.StatusCapacity].Load(),
		NotFound:    c.byStatus[wire.StatusNotFound].Load(),
		BadRequest:  c.byStatus[wire.StatusBadRequest].Load(),
		Unsupported: c.byStatus[wire.StatusUnsupported].Load(),
		Internal:    c.byStatus[wire.StatusInternal].Load(),
	}
	st.Faults = FaultStats{
		Refused:   c.refused.Load(),
		Reset:     c.reset.Load(),
		Dropped:   c.dropped.Load(),
		Delayed:   c.delayed.Load(),
		Garbage:   c.garbage.Load(),
		Cut:       c.cut.Load(),
		Internal:  c.internal.Load(),
		Full:      c.full.Load(),
		Downs:     c.downs.Load(),
		Relistens: c.relistens.Load(),
		Queued:    c.queued.Load(),
	}
	st.Tombstoned = c.tombstoned.Load()
}
