package frontend

import "time"

// Config is what the front-end server needs of the daemon's server.*
// settings. The daemon's config owns the defaults and the validation
// (docs/operations.md): the server takes the values as given.
type Config struct {
	// Transport is "net" (the standard library) or "netpoll".
	Transport string
	// MaxFrame is the largest frame accepted, in bytes.
	MaxFrame int
	// Read and write bounds of one frame, one response.
	ReadTimeout, WriteTimeout time.Duration
	// Reloadable (Server.SetLimits): connections open at once, requests
	// in progress across the server and on one connection, the bound of
	// one request.
	MaxConns, MaxInFlight, MaxConnInFlight int
	RequestTimeout                         time.Duration
	// Reloadable: the read side's bounds of one connection (requests read
	// and not answered, response bytes queued), the idle cut.
	MaxConnUnanswered, MaxConnQueuedBytes int
	IdleTimeout                           time.Duration
	// Reloadable: connections per peer uid (0: no bound); the peers
	// allowed by uid or gid (both empty: anyone).
	MaxConnsPerUID       int
	AllowUIDs, AllowGIDs []uint32
}
