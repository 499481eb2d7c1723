package telsim

import (
	"fmt"
	"math"
	"time"

	"go.uber.org/zap"

	"switchboard/wire"
)

// Defaults of Config. A zero field of Config means its default.
const (
	DefaultTier           = "sim"
	DefaultCapacity       = 100000
	DefaultNumberPrefix   = "+1-408-555-"
	DefaultTollFreePrefix = "+1-866-555-"
	DefaultMaxInFlight    = 4096
	DefaultWriteTimeout   = 10 * time.Second
	DefaultTombstoneTTL   = 10 * time.Minute
	DefaultMaxTombstones  = 1 << 20
)

// Config describes a simulated telephony server. The zero value is valid and
// means every default; DefaultConfig returns the defaults spelled out. A
// Config is a plain value, safe to copy and to share read-only.
type Config struct {
	// Tier is the tier name reported in HELLO, e.g. "primary-large".
	// Default "sim". At most wire.MaxShort bytes.
	Tier string
	// ServerID is the server id reported in HELLO. Default "telsim-" + Tier
	// (cut to wire.MaxShort bytes). At most wire.MaxShort bytes.
	ServerID string
	// Capacity is the maximum number of live reservations; a RESERVE beyond
	// it is answered CAPACITY. Default 100000. At most math.MaxUint32.
	// Retune at run time with Server.SetCapacity.
	Capacity int
	// Latency is the service time added before each RESERVE, UPDATE,
	// RELEASE and LOOKUP reply (HELLO and PING are answered at once).
	// Default 0. Retune with Server.SetLatency.
	Latency time.Duration
	// Jitter adds a uniform extra latency in [0, Jitter) to the same
	// replies. Default 0.
	Jitter time.Duration
	// MaxFrame is the largest request frame accepted, header included; a
	// longer length prefix closes the connection before its payload is read.
	// Default wire.DefaultMaxFrame; at least wire.MinMaxFrame.
	MaxFrame int
	// NumberPrefix is the toll call-in number's prefix; four digits chosen
	// per server complete it (a real bridge shares its call-in numbers
	// between conferences and tells them apart by access code). Default
	// "+1-408-555-". At most wire.MaxShort-4 bytes.
	NumberPrefix string
	// TollFreePrefix is the toll-free number's prefix, completed the same
	// way. Default "+1-866-555-". At most wire.MaxShort-4 bytes.
	TollFreePrefix string
	// MaxInFlight bounds the delayed replies (Latency, Jitter or the slow
	// fault) pending on one connection. When it is reached the connection's
	// reader stops reading until one is sent, which pushes back on the
	// client through TCP flow control; nothing is dropped. Default 4096.
	MaxInFlight int
	// WriteTimeout bounds each write to a connection; a client that does
	// not read its replies for that long is disconnected. Default 10 s.
	WriteTimeout time.Duration
	// TombstoneTTL is how long the server remembers a key RELEASEd while it
	// held no reservation under it, and refuses a RESERVE of that key
	// (KEY_EXISTS): a RELEASE that overtook its RESERVE must not let the
	// RESERVE land afterwards (docs/protocol.md). It must exceed the
	// longest a RESERVE can wait in the server before executing. Default
	// 10 min.
	TombstoneTTL time.Duration
	// MaxTombstones bounds the tombstones kept; past it, expired ones are
	// swept and, if none has expired, the oldest of the key's shard is
	// dropped. Default 1<<20 (about 40 MiB at most).
	MaxTombstones int
}

// DefaultConfig returns the defaults, every field filled in.
func DefaultConfig() Config {
	return Config{}.withDefaults()
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	if c.Tier == "" {
		c.Tier = DefaultTier
	}
	if c.ServerID == "" {
		c.ServerID = "telsim-" + c.Tier
		if len(c.ServerID) > wire.MaxShort {
			c.ServerID = c.ServerID[:wire.MaxShort]
		}
	}
	if c.Capacity == 0 {
		c.Capacity = DefaultCapacity
	}
	if c.MaxFrame == 0 {
		c.MaxFrame = wire.DefaultMaxFrame
	}
	if c.NumberPrefix == "" {
		c.NumberPrefix = DefaultNumberPrefix
	}
	if c.TollFreePrefix == "" {
		c.TollFreePrefix = DefaultTollFreePrefix
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.TombstoneTTL == 0 {
		c.TombstoneTTL = DefaultTombstoneTTL
	}
	if c.MaxTombstones == 0 {
		c.MaxTombstones = DefaultMaxTombstones
	}
	return c
}

// Validate reports the first invalid field, wrapped in ErrBadConfig. Zero
// fields are valid (they mean the default).
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case len(c.Tier) > wire.MaxShort:
		return fmt.Errorf("%w: tier is %d bytes, at most %d", ErrBadConfig, len(c.Tier), wire.MaxShort)
	case len(c.ServerID) > wire.MaxShort:
		return fmt.Errorf("%w: server id is %d bytes, at most %d", ErrBadConfig, len(c.ServerID), wire.MaxShort)
	case c.Capacity < 0 || int64(c.Capacity) > math.MaxUint32:
		return fmt.Errorf("%w: capacity %d not in 0..%d", ErrBadConfig, c.Capacity, uint32(math.MaxUint32))
	case c.Latency < 0:
		return fmt.Errorf("%w: latency %v is negative", ErrBadConfig, c.Latency)
	case c.Jitter < 0:
		return fmt.Errorf("%w: jitter %v is negative", ErrBadConfig, c.Jitter)
	case c.MaxFrame < wire.MinMaxFrame:
		return fmt.Errorf("%w: max frame %d below the protocol minimum %d", ErrBadConfig, c.MaxFrame, wire.MinMaxFrame)
	case c.MaxFrame > math.MaxInt32:
		return fmt.Errorf("%w: max frame %d above %d", ErrBadConfig, c.MaxFrame, math.MaxInt32)
	case len(c.NumberPrefix) > wire.MaxShort-4:
		return fmt.Errorf("%w: number prefix is %d bytes, at most %d", ErrBadConfig, len(c.NumberPrefix), wire.MaxShort-4)
	case len(c.TollFreePrefix) > wire.MaxShort-4:
		return fmt.Errorf("%w: toll-free prefix is %d bytes, at most %d", ErrBadConfig, len(c.TollFreePrefix), wire.MaxShort-4)
	case c.MaxInFlight < 0:
		return fmt.Errorf("%w: max in-flight %d is negative", ErrBadConfig, c.MaxInFlight)
	case c.WriteTimeout < 0:
		return fmt.Errorf("%w: write timeout %v is negative", ErrBadConfig, c.WriteTimeout)
	case c.TombstoneTTL < 0:
		return fmt.Errorf("%w: tombstone ttl %v is negative", ErrBadConfig, c.TombstoneTTL)
	case c.MaxTombstones < 0:
		return fmt.Errorf("%w: max tombstones %d is negative", ErrBadConfig, c.MaxTombstones)
	}
	return nil
}

// Option is a test seam of New: logger, clock, random seed. Options are
// plain functions applied once, by New.
type Option func(*options)

type options struct {
	log    *zap.Logger
	clock  Clock
	seed   [32]byte
	seeded bool
}

// WithLogger sets the logger (default: zap.NewNop). Per-connection events
// log at Debug, fault changes at Info.
func WithLogger(l *zap.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// WithClock replaces the wall clock (timers for latency, flap, retries).
func WithClock(c Clock) Option {
	return func(o *options) {
		if c != nil {
			o.clock = c
		}
	}
}

// WithSeed makes the server's random choices (access codes, call-in number
// suffixes, jitter, which replies the errors and garbage faults hit)
// reproducible. Without it the seed comes from crypto/rand. Connections draw
// their own generators from the server's in accept order, so a test is
// reproducible as long as it opens its connections in a fixed order.
func WithSeed(seed uint64) Option {
	return func(o *options) {
		var s [32]byte
		for i := range 8 {
			s[i] = byte(seed >> (8 * i))
		}
		o.seed = s
		o.seeded = true
	}
}
