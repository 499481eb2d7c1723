package telsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Mode is a fault injected into a Server (see the package documentation for
// what a client observes in each). A Mode is a plain value.
type Mode uint8

// Fault modes.
const (
	// ModeNone serves normally (listening again on the same address after
	// down or flap).
	ModeNone Mode = iota
	// ModeDown closes the listener and every connection: dials are refused
	// (ECONNREFUSED) until the mode changes.
	ModeDown
	// ModeRefuse closes every connection and accepts new ones only to close
	// them at once (the client sees EOF before any reply).
	ModeRefuse
	// ModeReset resets every connection (SO_LINGER 0, then close: an RST)
	// and resets new ones as soon as they are accepted.
	ModeReset
	// ModeBlackhole keeps connections open and reads requests but never
	// answers (requests are still executed: the outcome is unknown to the
	// client, as with a real silent server).
	ModeBlackhole
	// ModeSlow delays every reply (HELLO and PING too) by Latency plus a
	// uniform [0, Jitter), on top of the configured service latency.
	ModeSlow
	// ModeErrors answers a Fraction of requests StatusInternal without
	// executing them.
	ModeErrors
	// ModeGarbage executes requests but answers with undecodable frames: a
	// valid length prefix with a bad version, bad flags, or the right header
	// with a junk payload.
	ModeGarbage
	// ModeCut executes requests, writes the first half of the reply frame
	// and closes the connection.
	ModeCut
	// ModeFull answers every RESERVE StatusCapacity (other ops are served).
	ModeFull
	// ModeFlap alternates down and up every Period, starting down.
	ModeFlap
	// ModeQueue holds every RESERVE for Latency before executing it (a
	// server with a backlog of reservations), while every other request —
	// RELEASE and LOOKUP of the same key included — is served at once. It
	// is how a RELEASE can overtake the RESERVE it is meant to undo.
	ModeQueue
	numModes
)

var modeNames = [numModes]string{
	ModeNone:      "none",
	ModeDown:      "down",
	ModeRefuse:    "refuse",
	ModeReset:     "reset",
	ModeBlackhole: "blackhole",
	ModeSlow:      "slow",
	ModeErrors:    "errors",
	ModeGarbage:   "garbage",
	ModeCut:       "cut",
	ModeFull:      "full",
	ModeFlap:      "flap",
	ModeQueue:     "queue",
}

// Fault defaults for fields left zero.
const (
	DefaultSlowLatency = 100 * time.Millisecond
	DefaultFlapPeriod  = time.Second
)

// String returns the mode's name, e.g. "blackhole".
func (m Mode) String() string {
	if m < numModes {
		return modeNames[m]
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// ParseMode maps a name ("none", "down", …) to its Mode.
func ParseMode(name string) (Mode, error) {
	for i, n := range modeNames {
		if n == name {
			return Mode(i), nil
		}
	}
	return 0, fmt.Errorf("%w: unknown mode %q", ErrBadFault, name)
}

// MarshalText encodes the mode's name.
func (m Mode) MarshalText() ([]byte, error) {
	if m >= numModes {
		return nil, fmt.Errorf("%w: unknown mode %d", ErrBadFault, uint8(m))
	}
	return []byte(modeNames[m]), nil
}

// UnmarshalText decodes a mode's name.
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Fault is a fault to inject with Server.SetFault. Fields that a mode does
// not use are ignored (and cleared by SetFault). A Fault is a plain value,
// safe to copy and share.
type Fault struct {
	// Mode is the fault. The zero value is ModeNone.
	Mode Mode
	// Latency is the delay added to every reply in ModeSlow, and how long
	// a RESERVE waits before it executes in ModeQueue. Zero (with a zero
	// Jitter) means DefaultSlowLatency. Must not be negative.
	Latency time.Duration
	// Jitter adds a uniform [0, Jitter) to Latency in ModeSlow. Must not be
	// negative.
	Jitter time.Duration
	// Fraction of the requests answered StatusInternal in ModeErrors, in
	// [0, 1]. Zero means 1 (every request).
	Fraction float64
	// Period is the length of each down and each up phase in ModeFlap. Zero
	// means DefaultFlapPeriod. Must not be negative.
	Period time.Duration
}

// normalize validates f, fills its defaults and clears fields its mode does
// not use, so that Server.Fault reports exactly what is in force.
func (f Fault) normalize() (Fault, error) {
	switch {
	case f.Mode >= numModes:
		return f, fmt.Errorf("%w: unknown mode %d", ErrBadFault, uint8(f.Mode))
	case f.Latency < 0:
		return f, fmt.Errorf("%w: latency %v is negative", ErrBadFault, f.Latency)
	case f.Jitter < 0:
		return f, fmt.Errorf("%w: jitter %v is negative", ErrBadFault, f.Jitter)
	case f.Period < 0:
		return f, fmt.Errorf("%w: period %v is negative", ErrBadFault, f.Period)
	case !(f.Fraction >= 0 && f.Fraction <= 1): // also rejects NaN
		return f, fmt.Errorf("%w: fraction %v not in [0, 1]", ErrBadFault, f.Fraction)
	}
	n := Fault{Mode: f.Mode}
	switch f.Mode {
	case ModeSlow, ModeQueue:
		n.Latency, n.Jitter = f.Latency, f.Jitter
		if f.Mode == ModeQueue {
			n.Jitter = 0
		}
		if n.Latency == 0 && n.Jitter == 0 {
			n.Latency = DefaultSlowLatency
		}
	case ModeErrors:
		n.Fraction = f.Fraction
		if n.Fraction == 0 {
			n.Fraction = 1
		}
	case ModeFlap:
		n.Period = f.Period
		if n.Period == 0 {
			n.Period = DefaultFlapPeriod
		}
	}
	return n, nil
}

// String describes f, e.g. "slow latency=5ms jitter=1ms".
func (f Fault) String() string {
	s := f.Mode.String()
	if f.Latency != 0 {
		s += " latency=" + f.Latency.String()
	}
	if f.Jitter != 0 {
		s += " jitter=" + f.Jitter.String()
	}
	if f.Fraction != 0 {
		s += fmt.Sprintf(" fraction=%g", f.Fraction)
	}
	if f.Period != 0 {
		s += " period=" + f.Period.String()
	}
	return s
}

// faultJSON is the control API's representation: durations as Go duration
// strings ("5ms").
type faultJSON struct {
	Mode     Mode    `json:"mode"`
	Latency  string  `json:"latency,omitempty"`
	Jitter   string  `json:"jitter,omitempty"`
	Fraction float64 `json:"fraction,omitempty"`
	Period   string  `json:"period,omitempty"`
}

// MarshalJSON encodes f as {"mode":"slow","latency":"5ms",…}.
func (f Fault) MarshalJSON() ([]byte, error) {
	j := faultJSON{Mode: f.Mode, Fraction: f.Fraction}
	if f.Latency != 0 {
		j.Latency = f.Latency.String()
	}
	if f.Jitter != 0 {
		j.Jitter = f.Jitter.String()
	}
	if f.Period != 0 {
		j.Period = f.Period.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes the form MarshalJSON writes, strictly (an unknown
// field is an error); a missing mode is ModeNone.
func (f *Fault) UnmarshalJSON(b []byte) error {
	var j faultJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("%w: %w", ErrBadFault, err)
	}
	var g Fault
	g.Mode, g.Fraction = j.Mode, j.Fraction
	for _, d := range []struct {
		name string
		s    string
		dst  *time.Duration
	}{{"latency", j.Latency, &g.Latency}, {"jitter", j.Jitter, &g.Jitter}, {"period", j.Period, &g.Period}} {
		if d.s == "" {
			continue
		}
		v, err := time.ParseDuration(d.s)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrBadFault, d.name, err)
		}
		*d.dst = v
	}
	*f = g
	return nil
}
