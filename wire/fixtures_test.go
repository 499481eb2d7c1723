package wire_test

import (
	"bytes"
	"reflect"
	"testing"

	"go.uber.org/goleak"

	"switchboard/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// message is what every payload type of both protocols implements.
type message interface {
	wire.Payload
	Decode(p []byte) error
}

// Canonical field values, taken from the WebEx CreateTeleconferenceSession
// and SetTeleconferenceSession samples (seed/CreateTeleconferenceSession.txt).
const (
	sessionKey = 904617253  // 9 digits, no leading zero
	startUnix  = 1113808131 // 04/18/2005 15:08:51 at timeZoneID 45 (GMT+08:00)
	untilUnix  = 1136044799 // 12/31/2005 23:59:59 at GMT+08:00
	updateUnix = 1113848117 // 04/18/2005 15:15:17 at timeZoneID 16 (GMT-03:00)
)

func createSpec() wire.Spec {
	return wire.Spec{
		Name:     []byte("Sample Teleconference-only meeting"),
		Start:    startUnix,
		TimeZone: 45,
		Duration: 60,
		Tone:     wire.ToneAnnounceName,
		Repeat: wire.Recurrence{
			Kind:     wire.RepeatDaily,
			Interval: 1,
			Until:    untilUnix,
		},
		FullAttendees:    1,
		LimitedAttendees: 1,
	}
}

func updateSpec() wire.Spec {
	return wire.Spec{
		Name:     []byte("Test Setting Teleconf-only"),
		Start:    updateUnix,
		TimeZone: 16,
		Duration: 90,
		Tone:     wire.ToneBeep,
		Repeat: wire.Recurrence{
			Kind:     wire.RepeatWeekly,
			Interval: 1,
			Days:     1<<2 | 1<<6, // Tuesday, Saturday
		},
		FullAttendees:    3,
		LimitedAttendees: 12,
	}
}

func monthlySpec() wire.Spec {
	return wire.Spec{
		Name:     []byte("Réunion mensuelle – EMEA"), // multi-byte UTF-8: lengths are bytes
		Start:    startUnix,
		TimeZone: -1, // unset
		Duration: 45,
		Tone:     wire.ToneNoTone,
		Repeat: wire.Recurrence{
			Kind:        wire.RepeatMonthly,
			Interval:    2,
			DayOfMonth:  0,
			WeekOfMonth: 3,
			Days:        1 << 4, // third Thursday
		},
		FullAttendees:    40,
		LimitedAttendees: 250,
	}
}

func bridge() wire.Bridge {
	return wire.Bridge{
		ID:           []byte("pl-0042"),
		Toll:         []byte("+1-408-555-0100"),
		TollFree:     []byte("+1-866-555-0199"),
		HostCode:     []byte("731562"),
		AttendeeCode: []byte("284619"),
	}
}

func meta() []byte { return []byte("<listing>PUBLIC</listing>") }

// newPayload returns an empty message of the payload type carried by a
// successful frame with this op and direction, or nil for an op this
// protocol version does not define. It is the op table of docs/protocol.md.
func newPayload(op wire.Op, response bool) message {
	switch op {
	case wire.OpPing:
		return &wire.Empty{}
	case wire.OpAllocate:
		if response {
			return &wire.AllocateResponse{}
		}
		return &wire.AllocateRequest{}
	case wire.OpLookup:
		if response {
			return &wire.Reservation{}
		}
		return &wire.KeyRequest{}
	case wire.OpUpdate:
		if response {
			return &wire.Reservation{}
		}
		return &wire.UpdateRequest{}
	case wire.OpRelease, wire.OpTelRelease:
		if response {
			return &wire.Empty{}
		}
		return &wire.KeyRequest{}
	case wire.OpHello:
		if response {
			return &wire.HelloResponse{}
		}
		return &wire.Hello{}
	case wire.OpTelPing:
		if response {
			return &wire.Load{}
		}
		return &wire.Empty{}
	case wire.OpReserve, wire.OpTelUpdate:
		if response {
			return &wire.Bridge{}
		}
		return &wire.UpdateRequest{}
	case wire.OpTelLookup:
		if response {
			return &wire.Record{}
		}
		return &wire.KeyRequest{}
	}
	return nil
}

// equal compares two values field by field, treating a nil and an empty
// []byte as equal (a decoder returns empty, non-nil slices aliasing the frame).
func equal(a, b any) bool { return equalValue(reflect.ValueOf(a), reflect.ValueOf(b)) }

func equalValue(a, b reflect.Value) bool {
	if !a.IsValid() || !b.IsValid() {
		return a.IsValid() == b.IsValid()
	}
	if a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return equalValue(a.Elem(), b.Elem())
	case reflect.Slice:
		if a.Type().Elem().Kind() == reflect.Uint8 {
			return bytes.Equal(a.Bytes(), b.Bytes())
		}
		if a.Len() != b.Len() {
			return false
		}
		for i := 0; i < a.Len(); i++ {
			if !equalValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			if !equalValue(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	default:
		return a.Equal(b)
	}
}

// clone returns a fresh message of the same type as m.
func clone(m message) message {
	return reflect.New(reflect.TypeOf(m).Elem()).Interface().(message)
}

// fill returns n bytes of a repeating printable pattern.
func fill(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}
