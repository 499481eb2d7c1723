package mux

import (
	"fmt"
	"time"

	"switchboard/wire"
)

// Config tunes one Conn. The zero value of every field means its default.
// It is a plain value: safe to copy and to read concurrently.
type Config struct {
	// MaxFrame is the largest frame, header included, accepted from the peer
	// and sent to it. Default wire.DefaultMaxFrame; at least wire.HeaderSize.
	MaxFrame int
	// MaxInFlight caps the calls waiting for a reply; a call beyond it fails
	// at once with ErrBusy and is not sent. Default 1024.
	MaxInFlight int
	// WriteTimeout bounds one write to the peer; a peer that does not read
	// for that long kills the connection. Default 5s.
	WriteTimeout time.Duration
}

// Defaults.
const (
	DefaultMaxInFlight  = 1024
	DefaultWriteTimeout = 5 * time.Second
)

// DefaultConfig returns the configuration with every default filled in.
func DefaultConfig() Config {
	return Config{MaxFrame: wire.DefaultMaxFrame, MaxInFlight: DefaultMaxInFlight, WriteTimeout: DefaultWriteTimeout}
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxFrame == 0 {
		c.MaxFrame = d.MaxFrame
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = d.MaxInFlight
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	return c
}

// Validate reports the first field that is out of range. Zero fields are
// valid (they mean the default).
func (c Config) Validate() error {
	switch {
	case c.MaxFrame != 0 && c.MaxFrame < wire.HeaderSize:
		return fmt.Errorf("mux: MaxFrame %d is below the frame header size %d", c.MaxFrame, wire.HeaderSize)
	case c.MaxFrame > 1<<31-1:
		return fmt.Errorf("mux: MaxFrame %d does not fit the 32-bit length prefix", c.MaxFrame)
	case c.MaxInFlight < 0:
		return fmt.Errorf("mux: MaxInFlight %d is negative", c.MaxInFlight)
	case c.WriteTimeout < 0:
		return fmt.Errorf("mux: WriteTimeout %v is negative", c.WriteTimeout)
	}
	return nil
}
