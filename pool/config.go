package pool

import (
	"errors"
	"fmt"
	"net"
	"time"

	"switchboard/wire"
)

// Config describes one tier's pool. The zero value of every tunable field
// means its default; Tier and Servers are required. It is a plain value:
// New and Retune copy it, so the caller may reuse it.
type Config struct {
	// Tier is the tier's name, for logs and stats, e.g. "primary-large".
	// Required. A server whose HELLO names another tier is logged, not
	// refused.
	Tier string
	// Client is this daemon's instance name, sent in HELLO. Default
	// "switchboard"; at most wire.MaxShort bytes.
	Client string
	// Servers are the telephony servers' "host:port" addresses. Required,
	// no duplicates. Cannot change live: a new server list needs a new Pool.
	Servers []string
	// MinConns is the number of live connections kept per server. Default 2;
	// at most MaxMinConns.
	MinConns int
	// MaxInFlight caps the calls waiting on one connection; RoundTrip moves
	// on to another connection when one is full. Default 1024.
	MaxInFlight int
	// MaxFrame is the largest frame sent or accepted, header included.
	// Default wire.DefaultMaxFrame; at least wire.MinMaxFrame. Cannot change
	// live.
	MaxFrame int
	// DialTimeout bounds a dial plus its HELLO handshake. Default 1s.
	DialTimeout time.Duration
	// HeartbeatInterval is the pause between two TPINGs on a connection.
	// Default 1s.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout is how long a TPING may wait for its PONG before the
	// connection is killed. Default 1s.
	HeartbeatTimeout time.Duration
	// BackoffBase is the reconnect backoff after the first failed dial; it
	// doubles with every further consecutive failure. Default 50ms.
	BackoffBase time.Duration
	// BackoffMax caps the reconnect backoff. Default 5s; at least
	// BackoffBase.
	BackoffMax time.Duration
	// MaxAge is the age after which a connection is recycled (its
	// replacement dialed first). Default 0: never.
	MaxAge time.Duration
	// MaxAgeJitter spreads recycling: each connection's max age is MaxAge
	// plus a uniform random part of up to MaxAgeJitter. Default 0.
	MaxAgeJitter time.Duration
}

// Defaults.
const (
	DefaultClient            = "switchboard"
	DefaultMinConns          = 2
	DefaultMaxInFlight       = 1024
	DefaultDialTimeout       = time.Second
	DefaultHeartbeatInterval = time.Second
	DefaultHeartbeatTimeout  = time.Second
	DefaultBackoffBase       = 50 * time.Millisecond
	DefaultBackoffMax        = 5 * time.Second

	// MaxMinConns bounds MinConns: more warm connections per server only
	// multiply heartbeats and the server's load.
	MaxMinConns = 64
)

// DefaultConfig returns a Config with every default filled in; Tier and
// Servers are left for the caller.
func DefaultConfig() Config {
	return Config{
		Client:            DefaultClient,
		MinConns:          DefaultMinConns,
		MaxInFlight:       DefaultMaxInFlight,
		MaxFrame:          wire.DefaultMaxFrame,
		DialTimeout:       DefaultDialTimeout,
		HeartbeatInterval: DefaultHeartbeatInterval,
		HeartbeatTimeout:  DefaultHeartbeatTimeout,
		BackoffBase:       DefaultBackoffBase,
		BackoffMax:        DefaultBackoffMax,
	}
}

// withDefaults returns c with zero fields replaced by their defaults and its
// own copy of Servers.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.Servers = append([]string(nil), c.Servers...)
	if c.Client == "" {
		c.Client = d.Client
	}
	if c.MinConns == 0 {
		c.MinConns = d.MinConns
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = d.MaxInFlight
	}
	if c.MaxFrame == 0 {
		c.MaxFrame = d.MaxFrame
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = d.DialTimeout
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = d.HeartbeatInterval
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = d.HeartbeatTimeout
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = d.BackoffBase
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = max(d.BackoffMax, c.BackoffBase)
	}
	return c
}

// Validate reports every field that is out of range, in one error that an
// operator can act on. Zero tunables are valid (they mean the default).
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Tier == "" {
		bad("Tier is empty")
	}
	if len(c.Client) > wire.MaxShort {
		bad("Client %q is longer than %d bytes", c.Client, wire.MaxShort)
	}
	if len(c.Servers) == 0 {
		bad("Servers is empty: a pool needs at least one host:port")
	}
	seen := make(map[string]bool, len(c.Servers))
	for _, s := range c.Servers {
		if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
			bad("server %q is not host:port", s)
		}
		if seen[s] {
			bad("server %q is listed twice", s)
		}
		seen[s] = true
	}
	if c.MinConns < 0 || c.MinConns > MaxMinConns {
		bad("MinConns %d is not in 0..%d", c.MinConns, MaxMinConns)
	}
	if c.MaxInFlight < 0 {
		bad("MaxInFlight %d is negative", c.MaxInFlight)
	}
	if c.MaxFrame != 0 && (c.MaxFrame < wire.MinMaxFrame || c.MaxFrame > 1<<31-1) {
		bad("MaxFrame %d is outside %d..%d", c.MaxFrame, wire.MinMaxFrame, 1<<31-1)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"DialTimeout", c.DialTimeout}, {"HeartbeatInterval", c.HeartbeatInterval},
		{"HeartbeatTimeout", c.HeartbeatTimeout}, {"BackoffBase", c.BackoffBase},
		{"BackoffMax", c.BackoffMax}, {"MaxAge", c.MaxAge}, {"MaxAgeJitter", c.MaxAgeJitter},
	} {
		if d.v < 0 {
			bad("%s %v is negative", d.name, d.v)
		}
	}
	if c.BackoffMax != 0 && c.BackoffMax < c.withDefaults().BackoffBase {
		bad("BackoffMax %v is below BackoffBase %v", c.BackoffMax, c.withDefaults().BackoffBase)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pool %q: %w", c.Tier, err)
	}
	return nil
}

// sameFixed reports whether n keeps the fields that cannot change live.
func (c *Config) sameFixed(n *Config) bool {
	if c.Tier != n.Tier || c.Client != n.Client || c.MaxFrame != n.MaxFrame || len(c.Servers) != len(n.Servers) {
		return false
	}
	for i := range c.Servers {
		if c.Servers[i] != n.Servers[i] {
			return false
		}
	}
	return true
}
