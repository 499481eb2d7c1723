package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"switchboard/wire"
)

// allMessages returns one empty value of every payload type.
func allMessages() []message {
	return []message{
		&wire.Empty{}, &wire.ErrorMessage{}, &wire.AllocateRequest{}, &wire.AllocateResponse{},
		&wire.KeyRequest{}, &wire.UpdateRequest{}, &wire.Reservation{}, &wire.Record{},
		&wire.Hello{}, &wire.HelloResponse{}, &wire.Load{}, &wire.Bridge{},
	}
}

// fieldBounds is the bound of every variable-length field, by field name.
var fieldBounds = map[string]int{
	"Token":        wire.MaxToken,
	"Name":         wire.MaxName,
	"Meta":         wire.MaxMeta,
	"Message":      wire.MaxMessage,
	"Tier":         wire.MaxShort,
	"Client":       wire.MaxShort,
	"Server":       wire.MaxShort,
	"ID":           wire.MaxShort,
	"Toll":         wire.MaxShort,
	"TollFree":     wire.MaxShort,
	"HostCode":     wire.MaxShort,
	"AttendeeCode": wire.MaxShort,
}

// byteField is one []byte field of a message, found by reflection so that a
// field added later is covered without editing the test.
type byteField struct {
	path  string
	bound int
	index []int
}

func byteFields(t *testing.T, m message) []byteField {
	t.Helper()
	var out []byteField
	var walk func(typ reflect.Type, prefix string, index []int)
	walk = func(typ reflect.Type, prefix string, index []int) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			idx := append(append([]int(nil), index...), i)
			switch {
			case f.Type.Kind() == reflect.Struct:
				walk(f.Type, prefix+f.Name+".", idx)
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Uint8:
				bound, ok := fieldBounds[f.Name]
				if !ok {
					t.Fatalf("%T.%s%s: no bound known to the test", m, prefix, f.Name)
				}
				out = append(out, byteField{prefix + f.Name, bound, idx})
			}
		}
	}
	walk(reflect.TypeOf(m).Elem(), "", nil)
	return out
}

func (f byteField) set(m message, v []byte) {
	reflect.ValueOf(m).Elem().FieldByIndex(f.index).SetBytes(v)
}

// maxSpec has every numeric field at the edge of its range.
func maxSpec() wire.Spec {
	return wire.Spec{
		Start:    math.MinInt64,
		TimeZone: 61,
		Duration: math.MaxUint32,
		Tone:     wire.ToneNoTone,
		Repeat: wire.Recurrence{
			Kind:        wire.RepeatMonthly,
			Interval:    wire.MaxInterval,
			Until:       math.MaxInt64,
			Days:        0x7f,
			DayOfMonth:  31,
			WeekOfMonth: 6,
		},
		FullAttendees:    math.MaxUint32,
		LimitedAttendees: math.MaxUint32,
	}
}

// maxed returns a message of m's type with every numeric field at its edge
// and every []byte field at its bound, except the fields named in skip.
func maxed(t *testing.T, m message, skip ...string) message {
	t.Helper()
	out := clone(m)
	v := reflect.ValueOf(out).Elem()
	if f := v.FieldByName("Spec"); f.IsValid() {
		f.Set(reflect.ValueOf(maxSpec()))
	}
	if f := v.FieldByName("Key"); f.IsValid() {
		f.SetUint(math.MaxUint64)
	}
	if l, ok := out.(*wire.Load); ok {
		*l = wire.Load{Capacity: math.MaxUint32, InUse: math.MaxUint32}
	}
	if r, ok := out.(*wire.AllocateResponse); ok {
		r.Replayed = true
	}
	for _, f := range byteFields(t, out) {
		if name := f.path[strings.LastIndexByte(f.path, '.')+1:]; !slices.Contains(skip, name) {
			f.set(out, fill(f.bound))
		}
	}
	return out
}

// sampleMessages returns the golden messages and every message at its bounds.
func sampleMessages(t *testing.T) []message {
	var out []message
	for _, c := range goldenCases() {
		if c.msg != nil {
			out = append(out, c.msg)
		}
	}
	out = append(out, &wire.ErrorMessage{Message: []byte("no tier could serve")})
	for _, m := range allMessages() {
		out = append(out, maxed(t, m))
	}
	return out
}

func roundTrip(t *testing.T, m message) {
	t.Helper()
	p := m.AppendTo(nil)
	got := clone(m)
	if err := got.Decode(p); err != nil {
		t.Fatalf("%T: Decode: %v", m, err)
	}
	if !equal(got, m) {
		t.Fatalf("%T: round trip\n got %+v\nwant %+v", m, got, m)
	}
	if again := got.AppendTo(nil); !bytes.Equal(again, p) {
		t.Fatalf("%T: re-encoding differs", m)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, m := range sampleMessages(t) {
		roundTrip(t, m)
	}
}

// TestRoundTripAppends checks that AppendTo appends after existing bytes and
// leaves them alone.
func TestRoundTripAppends(t *testing.T) {
	prefix := []byte("prefix")
	for _, m := range sampleMessages(t) {
		alone := m.AppendTo(nil)
		b := m.AppendTo(append([]byte(nil), prefix...))
		if !bytes.Equal(b[:len(prefix)], prefix) || !bytes.Equal(b[len(prefix):], alone) {
			t.Fatalf("%T: AppendTo does not append", m)
		}
	}
}

// TestFieldBounds encodes every variable-length field at its bound (accepted)
// and at bound+1 (rejected with ErrFieldTooLong by the decoder).
func TestFieldBounds(t *testing.T) {
	for _, m := range allMessages() {
		for _, f := range byteFields(t, m) {
			t.Run(reflect.TypeOf(m).Elem().Name()+"."+f.path, func(t *testing.T) {
				at := clone(m)
				f.set(at, fill(f.bound))
				roundTrip(t, at)

				over := clone(m)
				f.set(over, fill(f.bound+1))
				if err := clone(m).Decode(over.AppendTo(nil)); !errors.Is(err, wire.ErrFieldTooLong) {
					t.Fatalf("Decode with %s at %d bytes: %v, want ErrFieldTooLong", f.path, f.bound+1, err)
				}
			})
		}
	}
}

// TestLengthCheckedBeforeData: a length prefix above the bound is rejected as
// too long even when the data is absent, and a huge blob length neither
// panics nor allocates.
func TestLengthCheckedBeforeData(t *testing.T) {
	var m wire.ErrorMessage
	if err := m.Decode([]byte{0xff, 0xff}); !errors.Is(err, wire.ErrFieldTooLong) {
		t.Fatalf("str length 0xffff without data: %v", err)
	}
	p := (&wire.AllocateRequest{Spec: createSpec()}).AppendTo(nil)
	binary.BigEndian.PutUint32(p[len(p)-4:], math.MaxUint32)
	var r wire.AllocateRequest
	if n := testing.AllocsPerRun(10, func() { _ = r.Decode(p) }); n != 0 {
		t.Fatalf("Decode allocated %v times", n)
	}
	if err := r.Decode(p); !errors.Is(err, wire.ErrFieldTooLong) {
		t.Fatalf("blob length 0xffffffff: %v", err)
	}
}

// TestSpecBounds checks the numeric ranges of a Spec at the edge (accepted)
// and one past it (ErrBadValue), through Validate and through every decoder
// that carries a Spec.
func TestSpecBounds(t *testing.T) {
	type edge struct {
		name      string
		set       func(*wire.Spec)
		wantError error
	}
	edges := []edge{
		{"time zone -1 (unset)", func(s *wire.Spec) { s.TimeZone = -1 }, nil},
		{"time zone 0", func(s *wire.Spec) { s.TimeZone = 0 }, nil},
		{"time zone 61", func(s *wire.Spec) { s.TimeZone = 61 }, nil},
		{"time zone -2", func(s *wire.Spec) { s.TimeZone = -2 }, wire.ErrBadValue},
		{"time zone 62", func(s *wire.Spec) { s.TimeZone = 62 }, wire.ErrBadValue},
		{"time zone min int16", func(s *wire.Spec) { s.TimeZone = math.MinInt16 }, wire.ErrBadValue},
		{"tone NOTONE", func(s *wire.Spec) { s.Tone = wire.ToneNoTone }, nil},
		{"tone 4", func(s *wire.Spec) { s.Tone = 4 }, wire.ErrBadValue},
		{"tone 255", func(s *wire.Spec) { s.Tone = 255 }, wire.ErrBadValue},
		{"repeat MONTHLY", func(s *wire.Spec) { s.Repeat.Kind = wire.RepeatMonthly }, nil},
		{"repeat kind 4", func(s *wire.Spec) { s.Repeat.Kind = 4 }, wire.ErrBadValue},
		{"interval max", func(s *wire.Spec) { s.Repeat.Interval = wire.MaxInterval }, nil},
		{"interval max+1", func(s *wire.Spec) { s.Repeat.Interval = wire.MaxInterval + 1 }, wire.ErrBadValue},
		{"interval 0xffff", func(s *wire.Spec) { s.Repeat.Interval = 0xffff }, wire.ErrBadValue},
		{"days all", func(s *wire.Spec) { s.Repeat.Days = 0x7f }, nil},
		{"days bit 7", func(s *wire.Spec) { s.Repeat.Days = 0x80 }, wire.ErrBadValue},
		{"day of month 31", func(s *wire.Spec) { s.Repeat.DayOfMonth = 31 }, nil},
		{"day of month 32", func(s *wire.Spec) { s.Repeat.DayOfMonth = 32 }, wire.ErrBadValue},
		{"week of month 6", func(s *wire.Spec) { s.Repeat.WeekOfMonth = 6 }, nil},
		{"week of month 7", func(s *wire.Spec) { s.Repeat.WeekOfMonth = 7 }, wire.ErrBadValue},
		{"name at bound", func(s *wire.Spec) { s.Name = fill(wire.MaxName) }, nil},
		{"name over bound", func(s *wire.Spec) { s.Name = fill(wire.MaxName + 1) }, wire.ErrFieldTooLong},
		{"extreme times", func(s *wire.Spec) { s.Start, s.Repeat.Until = math.MinInt64, math.MaxInt64 }, nil},
	}
	carriers := []func(wire.Spec) message{
		func(s wire.Spec) message { return &wire.AllocateRequest{Token: []byte("t"), Spec: s, Meta: meta()} },
		func(s wire.Spec) message { return &wire.UpdateRequest{Key: sessionKey, Spec: s, Meta: meta()} },
		func(s wire.Spec) message { return &wire.Reservation{Key: sessionKey, Bridge: bridge(), Spec: s} },
		func(s wire.Spec) message { return &wire.Record{Bridge: bridge(), Spec: s, Meta: meta()} },
	}
	for _, e := range edges {
		t.Run(e.name, func(t *testing.T) {
			s := createSpec()
			e.set(&s)
			if err := s.Validate(); !errors.Is(err, e.wantError) || (err == nil) != (e.wantError == nil) {
				t.Fatalf("Validate = %v, want %v", err, e.wantError)
			}
			for _, carrier := range carriers {
				m := carrier(s)
				if e.wantError == nil {
					roundTrip(t, m)
					continue
				}
				if err := clone(m).Decode(m.AppendTo(nil)); !errors.Is(err, e.wantError) {
					t.Fatalf("%T.Decode = %v, want %v", m, err, e.wantError)
				}
			}
		})
	}
}

// TestReplayedFlag: the replayed byte of an ALLOCATE response is 0 or 1.
func TestReplayedFlag(t *testing.T) {
	p := (&wire.AllocateResponse{Key: sessionKey, Tier: []byte("nextgen"), Bridge: bridge()}).AppendTo(nil)
	for v := 0; v < 256; v++ {
		p[8] = byte(v)
		var r wire.AllocateResponse
		err := r.Decode(p)
		switch {
		case v <= 1 && (err != nil || r.Replayed != (v == 1)):
			t.Fatalf("replayed byte %d: %v, Replayed=%v", v, err, r.Replayed)
		case v > 1 && !errors.Is(err, wire.ErrBadValue):
			t.Fatalf("replayed byte %d: %v, want ErrBadValue", v, err)
		}
	}
}

// TestTruncated cuts every sample at every byte offset: each prefix is
// ErrTruncated, never a panic and never a success.
func TestTruncated(t *testing.T) {
	for _, m := range sampleMessages(t) {
		p := m.AppendTo(nil)
		for i := 0; i < len(p); i++ {
			if err := clone(m).Decode(p[:i:i]); !errors.Is(err, wire.ErrTruncated) {
				t.Fatalf("%T cut at %d of %d: %v, want ErrTruncated", m, i, len(p), err)
			}
		}
	}
}

// TestTrailing: any byte after the last field is ErrTrailing.
func TestTrailing(t *testing.T) {
	for _, m := range sampleMessages(t) {
		for _, extra := range [][]byte{{0}, {0xff}, []byte("trailing bytes")} {
			p := append(m.AppendTo(nil), extra...)
			if err := clone(m).Decode(p); !errors.Is(err, wire.ErrTrailing) {
				t.Fatalf("%T with %d trailing bytes: %v, want ErrTrailing", m, len(extra), err)
			}
		}
	}
}

// TestDecodeReusesStruct: decoding into a struct that holds an earlier
// message leaves nothing of it behind.
func TestDecodeReusesStruct(t *testing.T) {
	for _, m := range sampleMessages(t) {
		dirty := maxed(t, m)
		if err := dirty.Decode(m.AppendTo(nil)); err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if !equal(dirty, m) {
			t.Fatalf("%T: decoding into a used struct\n got %+v\nwant %+v", m, dirty, m)
		}
	}
}

// TestDecodeAliases: decoded fields alias the payload without copying, and
// their capacity ends with the field, so appending to one cannot overwrite
// the next field.
func TestDecodeAliases(t *testing.T) {
	p := (&wire.AllocateRequest{Token: []byte("tok-1"), Spec: createSpec(), Meta: meta()}).AppendTo(nil)
	var r wire.AllocateRequest
	if err := r.Decode(p); err != nil {
		t.Fatal(err)
	}
	if &r.Token[0] != &p[2] {
		t.Fatal("Token does not alias the payload")
	}
	if cap(r.Token) != len(r.Token) {
		t.Fatalf("Token cap %d, len %d", cap(r.Token), len(r.Token))
	}
	before := append([]byte(nil), p...)
	_ = append(r.Token, "XXXXXXXX"...)
	if !bytes.Equal(p, before) {
		t.Fatal("appending to a decoded field changed the payload")
	}
}

func TestEmpty(t *testing.T) {
	var e wire.Empty
	if b := e.AppendTo([]byte("x")); string(b) != "x" {
		t.Fatalf("AppendTo = %q", b)
	}
	if err := e.Decode(nil); err != nil {
		t.Fatal(err)
	}
	if err := e.Decode([]byte{}); err != nil {
		t.Fatal(err)
	}
	if err := e.Decode([]byte{0}); !errors.Is(err, wire.ErrTrailing) {
		t.Fatalf("Decode(1 byte) = %v", err)
	}
}

// TestMaxMessagesFitFrames: every message with every field at its bound fits
// DefaultMaxFrame, and fits MinMaxFrame when its meta is empty, as the
// constants promise.
func TestMaxMessagesFitFrames(t *testing.T) {
	h := wire.Header{Op: wire.OpAllocate, ID: math.MaxUint64}
	largest, largestType := 0, ""
	for _, m := range allMessages() {
		b, err := wire.AppendFrame(nil, h, maxed(t, m), wire.DefaultMaxFrame)
		if err != nil {
			t.Errorf("%T at its bounds: %v", m, err)
		}
		if len(b) > largest {
			largest, largestType = len(b), typeName(m)
		}
		if _, err := wire.AppendFrame(nil, h, maxed(t, m, "Meta"), wire.MinMaxFrame); err != nil {
			t.Errorf("%T at its bounds without meta: %v", m, err)
		}
	}
	// docs/protocol.md, section 2.1, quotes this number.
	if largest != 35279 || largestType != "Reservation" {
		t.Errorf("largest frame is a %s of %d bytes; update docs/protocol.md", largestType, largest)
	}
	if b := wire.AppendError(nil, h, wire.StatusInternal, string(fill(wire.MaxMessage))); len(b) > wire.MinMaxFrame {
		t.Errorf("largest error frame is %d bytes", len(b))
	}
}
