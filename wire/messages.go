package wire

import (
	"encoding/binary"
	"fmt"
)

// Tone is the entry/exit tone of a conference (WebEx entryExitTone).
type Tone uint8

// Tones.
const (
	ToneUnset        Tone = 0
	ToneBeep         Tone = 1
	ToneAnnounceName Tone = 2
	ToneNoTone       Tone = 3
)

// RepeatKind is a recurrence kind (WebEx repeatType).
type RepeatKind uint8

// Recurrence kinds.
const (
	RepeatNone    RepeatKind = 0
	RepeatDaily   RepeatKind = 1
	RepeatWeekly  RepeatKind = 2
	RepeatMonthly RepeatKind = 3
)

// Recurrence describes how a conference repeats.
type Recurrence struct {
	Kind        RepeatKind
	Interval    uint16 // every Interval days/weeks/months; 0 = unset
	Until       int64  // expiration, Unix seconds UTC; 0 = none
	Days        uint8  // weekly: bit 0 Sunday … bit 6 Saturday
	DayOfMonth  uint8  // monthly: 1–31, 0 = unset
	WeekOfMonth uint8  // monthly: 1–6, 0 = unset
}

// Spec is what a telephony bridge needs to know about a conference.
type Spec struct {
	Name             []byte // conference name, ≤ MaxName bytes
	Start            int64  // Unix seconds UTC; 0 = unset
	TimeZone         int16  // WebEx timeZoneID 0–61; -1 = unset
	Duration         uint32 // minutes
	Tone             Tone
	Repeat           Recurrence
	FullAttendees    uint32 // attendees with full access
	LimitedAttendees uint32 // attendees with limited access
}

// AppendTo appends the encoding of s.
func (s *Spec) AppendTo(dst []byte) []byte {
	dst = appendStr(dst, s.Name)
	dst = binary.BigEndian.AppendUint64(dst, uint64(s.Start))
	dst = binary.BigEndian.AppendUint16(dst, uint16(s.TimeZone))
	dst = binary.BigEndian.AppendUint32(dst, s.Duration)
	dst = append(dst, byte(s.Tone), byte(s.Repeat.Kind))
	dst = binary.BigEndian.AppendUint16(dst, s.Repeat.Interval)
	dst = binary.BigEndian.AppendUint64(dst, uint64(s.Repeat.Until))
	dst = append(dst, s.Repeat.Days, s.Repeat.DayOfMonth, s.Repeat.WeekOfMonth)
	dst = binary.BigEndian.AppendUint32(dst, s.FullAttendees)
	return binary.BigEndian.AppendUint32(dst, s.LimitedAttendees)
}

func (s *Spec) decode(d *decoder) {
	s.Name = d.str(MaxName)
	s.Start = int64(d.u64())
	s.TimeZone = int16(d.u16())
	s.Duration = d.u32()
	s.Tone = Tone(d.u8())
	s.Repeat.Kind = RepeatKind(d.u8())
	s.Repeat.Interval = d.u16()
	s.Repeat.Until = int64(d.u64())
	s.Repeat.Days = d.u8()
	s.Repeat.DayOfMonth = d.u8()
	s.Repeat.WeekOfMonth = d.u8()
	s.FullAttendees = d.u32()
	s.LimitedAttendees = d.u32()
	if d.err == nil {
		if err := s.Validate(); err != nil {
			d.fail(err)
		}
	}
}

// Validate checks the enumerations and ranges of s (not its name's bound,
// which the decoder enforces).
func (s *Spec) Validate() error {
	switch {
	case len(s.Name) > MaxName:
		return fmt.Errorf("%w: name is %d bytes, at most %d", ErrFieldTooLong, len(s.Name), MaxName)
	case s.TimeZone < -1 || s.TimeZone > 61:
		return fmt.Errorf("%w: time zone %d not in -1..61", ErrBadValue, s.TimeZone)
	case s.Tone > ToneNoTone:
		return fmt.Errorf("%w: tone %d", ErrBadValue, s.Tone)
	case s.Repeat.Kind > RepeatMonthly:
		return fmt.Errorf("%w: repeat kind %d", ErrBadValue, s.Repeat.Kind)
	case s.Repeat.Interval > MaxInterval:
		return fmt.Errorf("%w: repeat interval %d", ErrBadValue, s.Repeat.Interval)
	case s.Repeat.Days&0x80 != 0:
		return fmt.Errorf("%w: repeat days %#x", ErrBadValue, s.Repeat.Days)
	case s.Repeat.DayOfMonth > 31:
		return fmt.Errorf("%w: day of month %d", ErrBadValue, s.Repeat.DayOfMonth)
	case s.Repeat.WeekOfMonth > 6:
		return fmt.Errorf("%w: week of month %d", ErrBadValue, s.Repeat.WeekOfMonth)
	}
	return nil
}

// Bridge is what a telephony server reserved: how people dial in.
type Bridge struct {
	ID           []byte // the server's bridge id
	Toll         []byte // toll call-in number
	TollFree     []byte // toll-free call-in number
	HostCode     []byte // host access code
	AttendeeCode []byte // attendee access code
}

// AppendTo appends the encoding of b.
func (b *Bridge) AppendTo(dst []byte) []byte {
	dst = appendStr(dst, b.ID)
	dst = appendStr(dst, b.Toll)
	dst = appendStr(dst, b.TollFree)
	dst = appendStr(dst, b.HostCode)
	return appendStr(dst, b.AttendeeCode)
}

func (b *Bridge) decode(d *decoder) {
	b.ID = d.str(MaxShort)
	b.Toll = d.str(MaxShort)
	b.TollFree = d.str(MaxShort)
	b.HostCode = d.str(MaxShort)
	b.AttendeeCode = d.str(MaxShort)
}

// Decode decodes a telephony RESERVE or UPDATE response.
func (b *Bridge) Decode(p []byte) error {
	d := decoder{b: p}
	b.decode(&d)
	return d.done()
}

// ErrorMessage is the payload of every error response.
type ErrorMessage struct {
	Message []byte // ≤ MaxMessage bytes
}

// AppendTo appends the encoding of m.
func (m *ErrorMessage) AppendTo(dst []byte) []byte { return appendStr(dst, m.Message) }

// Decode decodes an error response payload.
func (m *ErrorMessage) Decode(p []byte) error {
	d := decoder{b: p}
	m.Message = d.str(MaxMessage)
	return d.done()
}

// AllocateRequest is the payload of a front-end ALLOCATE.
type AllocateRequest struct {
	Token []byte // idempotency token, ≤ MaxToken bytes; empty = none
	Spec  Spec
	Meta  []byte // opaque meeting record, ≤ MaxMeta bytes; stored, never parsed
}

// AppendTo appends the encoding of r.
func (r *AllocateRequest) AppendTo(dst []byte) []byte {
	dst = appendStr(dst, r.Token)
	dst = r.Spec.AppendTo(dst)
	return appendBlob(dst, r.Meta)
}

// Decode decodes an ALLOCATE request payload.
func (r *AllocateRequest) Decode(p []byte) error {
	d := decoder{b: p}
	r.Token = d.str(MaxToken)
	r.Spec.decode(&d)
	r.Meta = d.blob(MaxMeta)
	return d.done()
}

// AllocateResponse is the payload of a successful ALLOCATE.
type AllocateResponse struct {
	Key      uint64 // the session key
	Replayed bool   // true when the token was seen before and this is the first result again
	Tier     []byte // the tier that reserved the bridge
	Bridge   Bridge
}

// AppendTo appends the encoding of r.
func (r *AllocateResponse) AppendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, r.Key)
	var f byte
	if r.Replayed {
		f = 1
	}
	dst = append(dst, f)
	dst = appendStr(dst, r.Tier)
	return r.Bridge.AppendTo(dst)
}

// Decode decodes an ALLOCATE response payload.
func (r *AllocateResponse) Decode(p []byte) error {
	d := decoder{b: p}
	r.Key = d.u64()
	f := d.u8()
	if f&^1 != 0 {
		d.fail(ErrBadValue)
	}
	r.Replayed = f&1 != 0
	r.Tier = d.str(MaxShort)
	r.Bridge.decode(&d)
	return d.done()
}

// KeyRequest is the payload of LOOKUP and RELEASE, in both protocols.
type KeyRequest struct {
	Key uint64
}

// AppendTo appends the encoding of r.
func (r *KeyRequest) AppendTo(dst []byte) []byte { return binary.BigEndian.AppendUint64(dst, r.Key) }

// Decode decodes a key request payload.
func (r *KeyRequest) Decode(p []byte) error {
	d := decoder{b: p}
	r.Key = d.u64()
	return d.done()
}

// UpdateRequest is the payload of a front-end UPDATE and of the telephony
// RESERVE and UPDATE: a key, the bridge spec and the opaque meta.
type UpdateRequest struct {
	Key  uint64
	Spec Spec
	Meta []byte // ≤ MaxMeta bytes
}

// AppendTo appends the encoding of r.
func (r *UpdateRequest) AppendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, r.Key)
	dst = r.Spec.AppendTo(dst)
	return appendBlob(dst, r.Meta)
}

// Decode decodes an update or reserve request payload.
func (r *UpdateRequest) Decode(p []byte) error {
	d := decoder{b: p}
	r.Key = d.u64()
	r.Spec.decode(&d)
	r.Meta = d.blob(MaxMeta)
	return d.done()
}

// Reservation is the payload of a successful front-end LOOKUP or UPDATE: all
// the daemon knows of a session.
type Reservation struct {
	Key    uint64
	Tier   []byte
	Bridge Bridge
	Spec   Spec
	Meta   []byte
}

// AppendTo appends the encoding of r.
func (r *Reservation) AppendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, r.Key)
	dst = appendStr(dst, r.Tier)
	dst = r.Bridge.AppendTo(dst)
	dst = r.Spec.AppendTo(dst)
	return appendBlob(dst, r.Meta)
}

// Decode decodes a reservation payload.
func (r *Reservation) Decode(p []byte) error {
	d := decoder{b: p}
	r.Key = d.u64()
	r.Tier = d.str(MaxShort)
	r.Bridge.decode(&d)
	r.Spec.decode(&d)
	r.Meta = d.blob(MaxMeta)
	return d.done()
}

// Record is the payload of a successful telephony LOOKUP: the server's record
// of a reservation (the telephony server is the system of record).
type Record struct {
	Bridge Bridge
	Spec   Spec
	Meta   []byte
}

// AppendTo appends the encoding of r.
func (r *Record) AppendTo(dst []byte) []byte {
	dst = r.Bridge.AppendTo(dst)
	dst = r.Spec.AppendTo(dst)
	return appendBlob(dst, r.Meta)
}

// Decode decodes a telephony LOOKUP response payload.
func (r *Record) Decode(p []byte) error {
	d := decoder{b: p}
	r.Bridge.decode(&d)
	r.Spec.decode(&d)
	r.Meta = d.blob(MaxMeta)
	return d.done()
}

// Hello is the payload of a telephony HELLO request: who is calling.
type Hello struct {
	Client []byte // the daemon's instance name, ≤ MaxShort bytes
}

// AppendTo appends the encoding of h.
func (h *Hello) AppendTo(dst []byte) []byte { return appendStr(dst, h.Client) }

// Decode decodes a HELLO request payload.
func (h *Hello) Decode(p []byte) error {
	d := decoder{b: p}
	h.Client = d.str(MaxShort)
	return d.done()
}

// HelloResponse is the payload of a successful HELLO: who answered.
type HelloResponse struct {
	Server []byte // the server's id
	Tier   []byte // the tier it believes it serves
	Load   Load
}

// AppendTo appends the encoding of h.
func (h *HelloResponse) AppendTo(dst []byte) []byte {
	dst = appendStr(dst, h.Server)
	dst = appendStr(dst, h.Tier)
	return h.Load.AppendTo(dst)
}

// Decode decodes a HELLO response payload.
func (h *HelloResponse) Decode(p []byte) error {
	d := decoder{b: p}
	h.Server = d.str(MaxShort)
	h.Tier = d.str(MaxShort)
	h.Load.decode(&d)
	return d.done()
}

// Load is a telephony server's occupancy, carried by HELLO and PONG.
type Load struct {
	Capacity uint32 // bridges it can hold
	InUse    uint32 // bridges reserved now
}

// AppendTo appends the encoding of l.
func (l *Load) AppendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, l.Capacity)
	return binary.BigEndian.AppendUint32(dst, l.InUse)
}

func (l *Load) decode(d *decoder) {
	l.Capacity = d.u32()
	l.InUse = d.u32()
}

// Decode decodes a PONG payload.
func (l *Load) Decode(p []byte) error {
	d := decoder{b: p}
	l.decode(&d)
	return d.done()
}

// Empty is the empty payload (PING requests and responses, RELEASE responses).
type Empty struct{}

// AppendTo appends nothing.
func (Empty) AppendTo(dst []byte) []byte { return dst }

// Decode accepts only an empty payload.
func (Empty) Decode(p []byte) error {
	if len(p) != 0 {
		return ErrTrailing
	}
	return nil
}
