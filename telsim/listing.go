package telsim

import (
	"cmp"
	"slices"
)

// Reservation is one live reservation as the control API lists it (GET
// /reservations): what an observer needs to map a bridge back to the
// session that asked for it. Meta is the client's opaque record, copied
// (base64 in JSON, as encoding/json writes a []byte).
type Reservation struct {
	Key      uint64 `json:"key"`
	BridgeID string `json:"bridge_id"`
	Name     string `json:"name"`
	Meta     []byte `json:"meta"`
}

// Reservations returns every reservation the server holds, sorted by key.
// It is a read-only snapshot for tests and drills: each table shard is
// locked in turn, so a reservation made or released while it runs may or
// may not be in it, but none appears twice.
func (s *Server) Reservations() []Reservation {
	return s.tab.list()
}

// list copies out every live reservation. Records are immutable once
// published, so each shard's lock is held only to collect its pointers.
func (t *table) list() []Reservation {
	out := make([]Reservation, 0, max(t.live.Load(), 0))
	var recs []*record
	var keys []uint64
	for i := range t.shards {
		sh := &t.shards[i]
		recs, keys = recs[:0], keys[:0]
		sh.mu.Lock()
		for k, r := range sh.m {
			keys = append(keys, k)
			recs = append(recs, r)
		}
		sh.mu.Unlock()
		for j, r := range recs {
			out = append(out, Reservation{
				Key:      keys[j],
				BridgeID: string(r.bridge.ID),
				Name:     string(r.spec.Name),
				Meta:     append([]byte(nil), r.meta...),
			})
		}
	}
	slices.SortFunc(out, func(a, b Reservation) int { return cmp.Compare(a.Key, b.Key) })
	return out
}
