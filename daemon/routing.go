package daemon

import "switchboard/route"

// The router's types under the names the daemon's wiring has always used:
// the daemon builds tiers (daemon.go, reload.go) and hands whole orders to
// the router (package route).
type (
	tier    = route.Tier
	tierSet = route.TierSet
)

// inflightName is the in-flight table's file in the data directory.
const inflightName = "inflight.table"

// minInflightSlots is the smallest in-flight table.
const minInflightSlots = 4096

// inflightSlots sizes the in-flight table: a slot is held from before the
// first RESERVE until the answer is handed to the kernel, which is longer
// than a request counts against server.max_in_flight (answers queued
// behind a slow reader still hold theirs), hence twice the limit. Fixed at
// start: a reload that raises max_in_flight does not grow it (restart).
func inflightSlots(cfg *Config) int {
	return max(2*cfg.Server.MaxInFlight, minInflightSlots)
}
