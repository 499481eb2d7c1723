package fuzz

import (
	"bytes"
	"encoding/binary"
	"testing"

	"switchboard/wire"
)

// codec is a wire payload type, used through its pointer.
type codec[T any] interface {
	*T
	AppendTo(dst []byte) []byte
	Decode(p []byte) error
}

// fuzzDecoder is the property every payload decoder must have: on any input
// it returns nil or one of decodeErrors, never panics, and a successful
// decode re-encodes to exactly the input and decodes again to an equal
// message, also into a struct that held another message.
func fuzzDecoder[T any, P codec[T]](f *testing.F) {
	// Edge cases in code; the golden vectors are in testdata/fuzz.
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	var zero T
	f.Add(P(&zero).AppendTo(nil))
	var full T
	atBounds(&full)
	max := P(&full).AppendTo(nil)
	f.Add(max)
	if len(max) > 0 {
		f.Add(max[:len(max)-1])
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		var m T
		err := P(&m).Decode(p)
		if err != nil {
			if !isOneOf(err, decodeErrors) {
				t.Fatalf("Decode: unexpected error %v", err)
			}
			return
		}
		enc := P(&m).AppendTo(nil)
		if !bytes.Equal(enc, p) {
			t.Fatalf("re-encoding differs from the input:\n in % x\nout % x", p, enc)
		}
		var again T
		if err := P(&again).Decode(enc); err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		if !equal(&m, &again) {
			t.Fatalf("round trip changed the message:\n%+v\n%+v", m, again)
		}
		var stale T
		makeStale(&stale)
		if err := P(&stale).Decode(p); err != nil || !equal(&m, &stale) {
			t.Fatalf("decoding into a used struct: %v\n%+v\n%+v", err, m, stale)
		}
	})
}

func FuzzEmpty(f *testing.F)            { fuzzDecoder[wire.Empty](f) }
func FuzzErrorMessage(f *testing.F)     { fuzzDecoder[wire.ErrorMessage](f) }
func FuzzAllocateRequest(f *testing.F)  { fuzzDecoder[wire.AllocateRequest](f) }
func FuzzAllocateResponse(f *testing.F) { fuzzDecoder[wire.AllocateResponse](f) }
func FuzzKeyRequest(f *testing.F)       { fuzzDecoder[wire.KeyRequest](f) }
func FuzzUpdateRequest(f *testing.F)    { fuzzDecoder[wire.UpdateRequest](f) }
func FuzzReservation(f *testing.F)      { fuzzDecoder[wire.Reservation](f) }
func FuzzRecord(f *testing.F)           { fuzzDecoder[wire.Record](f) }
func FuzzHello(f *testing.F)            { fuzzDecoder[wire.Hello](f) }
func FuzzHelloResponse(f *testing.F)    { fuzzDecoder[wire.HelloResponse](f) }
func FuzzLoad(f *testing.F)             { fuzzDecoder[wire.Load](f) }
func FuzzBridge(f *testing.F)           { fuzzDecoder[wire.Bridge](f) }

// FuzzDecodeError: any status and payload give a *wire.RemoteError with that
// status, matched by errors.Is, carrying the message exactly when the
// payload is a well-formed ErrorMessage.
func FuzzDecodeError(f *testing.F) {
	f.Add(byte(wire.StatusNotFound), []byte{})
	f.Add(byte(wire.StatusInternal), []byte{0, 0})
	f.Add(byte(200), []byte{0, 3, 'a', 'b', 'c'})
	f.Add(byte(wire.StatusCapacity), binary.BigEndian.AppendUint16(nil, wire.MaxMessage+1))
	f.Fuzz(func(t *testing.T, status byte, p []byte) {
		s := wire.Status(status)
		err := wire.DecodeError(s, p)
		re, ok := err.(*wire.RemoteError)
		if !ok || re.Status != s {
			t.Fatalf("DecodeError = %#v", err)
		}
		if !isStatus(err, s) {
			t.Fatalf("errors.Is(%v, %v) = false", err, s)
		}
		var m wire.ErrorMessage
		want := ""
		if m.Decode(p) == nil {
			want = string(m.Message)
		}
		if re.Message != want {
			t.Fatalf("Message = %q, want %q", re.Message, want)
		}
		_ = err.Error()
	})
}

func isStatus(err error, s wire.Status) bool {
	for other := range 256 {
		if o := wire.Status(other); isOneOf(err, []error{o}) != (o == s) {
			return false
		}
	}
	return true
}
