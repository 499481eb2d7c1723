package client

import (
	"context"
	"fmt"

	"switchboard/wire"
)

// Bridge is how people dial in to a reserved conference. Bridge,
// Allocation, Spec and Reservation are plain values that own their memory:
// safe to keep and to read concurrently.
type Bridge struct {
	ID           string // the telephony server's bridge id
	Toll         string // toll call-in number
	TollFree     string // toll-free call-in number
	HostCode     string // host access code
	AttendeeCode string // attendee access code
}

// Allocation is the result of Allocate.
type Allocation struct {
	Key      uint64 // the session key
	Replayed bool   // the token was seen before: this is the first result again
	Tier     string // the tier that reserved the bridge
	Bridge   Bridge
}

// Spec is a copy of a wire.Spec that owns its memory.
type Spec struct {
	Name             string
	Start            int64 // Unix seconds UTC; 0 = unset
	TimeZone         int16 // WebEx timeZoneID 0–61; -1 = unset
	Duration         uint32
	Tone             wire.Tone
	Repeat           wire.Recurrence
	FullAttendees    uint32
	LimitedAttendees uint32
}

// Wire returns s as a wire.Spec (for Update or Allocate).
func (s Spec) Wire() wire.Spec {
	return wire.Spec{
		Name: []byte(s.Name), Start: s.Start, TimeZone: s.TimeZone, Duration: s.Duration, Tone: s.Tone,
		Repeat: s.Repeat, FullAttendees: s.FullAttendees, LimitedAttendees: s.LimitedAttendees,
	}
}

func specOf(w *wire.Spec) Spec {
	return Spec{
		Name: string(w.Name), Start: w.Start, TimeZone: w.TimeZone, Duration: w.Duration, Tone: w.Tone,
		Repeat: w.Repeat, FullAttendees: w.FullAttendees, LimitedAttendees: w.LimitedAttendees,
	}
}

func bridgeOf(b *wire.Bridge) Bridge {
	return Bridge{ID: string(b.ID), Toll: string(b.Toll), TollFree: string(b.TollFree), HostCode: string(b.HostCode), AttendeeCode: string(b.AttendeeCode)}
}

// Reservation is all the daemon knows of a session.
type Reservation struct {
	Key    uint64
	Tier   string
	Bridge Bridge
	Spec   Spec
	Meta   []byte // the front end's opaque record, copied
}

func reservationOf(r *wire.Reservation) Reservation {
	out := Reservation{Key: r.Key, Tier: string(r.Tier), Bridge: bridgeOf(&r.Bridge), Spec: specOf(&r.Spec)}
	if r.Meta != nil {
		out.Meta = append([]byte{}, r.Meta...)
	}
	return out
}

// Ping checks that the daemon answers.
func (c *Client) Ping(ctx context.Context) error {
	rep, err := c.call(ctx, wire.OpPing, nil)
	if err != nil {
		return err
	}
	defer rep.Release()
	return decodeErr(wire.OpPing, wire.Empty{}.Decode(rep.Payload))
}

// Allocate issues a session key and reserves a bridge. A non-empty
// req.Token makes it idempotent: a retry with the same token returns the
// first result with Replayed set.
func (c *Client) Allocate(ctx context.Context, req *wire.AllocateRequest) (Allocation, error) {
	if err := checkFields(req.Token, &req.Spec, req.Meta); err != nil {
		return Allocation{}, err
	}
	rep, err := c.call(ctx, wire.OpAllocate, req)
	if err != nil {
		return Allocation{}, err
	}
	defer rep.Release()
	var r wire.AllocateResponse
	if err := r.Decode(rep.Payload); err != nil {
		return Allocation{}, decodeErr(wire.OpAllocate, err)
	}
	return Allocation{Key: r.Key, Replayed: r.Replayed, Tier: string(r.Tier), Bridge: bridgeOf(&r.Bridge)}, nil
}

// Lookup returns the reservation under key (wire.StatusNotFound if none).
func (c *Client) Lookup(ctx context.Context, key uint64) (Reservation, error) {
	return c.reservation(ctx, wire.OpLookup, &wire.KeyRequest{Key: key})
}

// Update replaces the spec and meta of the reservation under key and returns
// the result.
func (c *Client) Update(ctx context.Context, key uint64, spec *wire.Spec, meta []byte) (Reservation, error) {
	if err := checkFields(nil, spec, meta); err != nil {
		return Reservation{}, err
	}
	return c.reservation(ctx, wire.OpUpdate, &wire.UpdateRequest{Key: key, Spec: *spec, Meta: meta})
}

func (c *Client) reservation(ctx context.Context, op wire.Op, req wire.Payload) (Reservation, error) {
	rep, err := c.call(ctx, op, req)
	if err != nil {
		return Reservation{}, err
	}
	defer rep.Release()
	var r wire.Reservation
	if err := r.Decode(rep.Payload); err != nil {
		return Reservation{}, decodeErr(op, err)
	}
	return reservationOf(&r), nil
}

// Release frees the reservation under key (wire.StatusNotFound if none).
func (c *Client) Release(ctx context.Context, key uint64) error {
	rep, err := c.call(ctx, wire.OpRelease, &wire.KeyRequest{Key: key})
	if err != nil {
		return err
	}
	defer rep.Release()
	return decodeErr(wire.OpRelease, wire.Empty{}.Decode(rep.Payload))
}

// checkFields refuses what the daemon would refuse, before sending.
func checkFields(token []byte, spec *wire.Spec, meta []byte) error {
	switch {
	case len(token) > wire.MaxToken:
		return fmt.Errorf("client: token is %d bytes, at most %d: %w", len(token), wire.MaxToken, wire.ErrFieldTooLong)
	case len(meta) > wire.MaxMeta:
		return fmt.Errorf("client: meta is %d bytes, at most %d: %w", len(meta), wire.MaxMeta, wire.ErrFieldTooLong)
	}
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	return nil
}

// decodeErr reports a malformed success response (the request was executed).
func decodeErr(op wire.Op, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("client: malformed %v response: %w", op, err)
}
