package frontend

import (
	"time"

	"switchboard/wire"
)

// Config is what the front-end server needs of the daemon's server.*
// settings. Its defaults are DefaultConfig's; the daemon's config fills its
// server section from them and validates the values with their YAML lines
// (docs/operations.md): the server takes the values as given.
type Config struct {
	// Fixed by New (SetLimits refuses a change: ErrRestartOnly) down to
	// WriteTimeout. Transport is "net" (the standard library) or "netpoll".
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

// DefaultConfig returns the front-end server's defaults (the server.*
// defaults of docs/operations.md): the standard library's transport; 1,024
// connections, 4,096 requests in progress (1,024 on one connection, 256
// read and not answered, 1 MiB of answers queued); a request bounded at
// 2 s, a frame's read and an answer's write at 5 s; idle connections cut
// after 5 minutes; no per-uid bound and no allow list.
func DefaultConfig() Config {
	return Config{
		Transport:          "net",
		MaxFrame:           wire.DefaultMaxFrame,
		ReadTimeout:        5 * time.Second,
		WriteTimeout:       5 * time.Second,
		MaxConns:           1024,
		MaxInFlight:        4096,
		MaxConnInFlight:    1024,
		RequestTimeout:     2 * time.Second,
		MaxConnUnanswered:  256,
		MaxConnQueuedBytes: 1 << 20,
		IdleTimeout:        5 * time.Minute,
	}
}
