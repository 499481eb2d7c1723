package bench

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"switchboard/wire"
)

// The messages below are what one allocation puts on the wire: a WebEx
// CreateTeleconferenceSession turned into an ALLOCATE on the front-end hop,
// and the RESERVE the daemon sends to a telephony server. The name, codes
// and numbers have realistic lengths, and meta is 256 bytes (a small
// meeting record), so the floor moves the same bytes an allocation does.

// metaSize is the size of the opaque meeting record in every request.
const metaSize = 256

// Token layout: a fixed prefix and a fixed-width decimal counter, so a
// benchmark can make every request's token unique by rewriting digits in
// place (idempotency tokens must differ or the daemon replays).
const (
	tokenPrefix = "sbbench-5f1c9a2e-"
	tokenDigits = 20
)

// sampleKey is a 9-digit session key of the default domain.
const sampleKey uint64 = 418_305_927

func sampleSpec() wire.Spec {
	return wire.Spec{
		Name:     []byte("EMEA Sales Pipeline Review — Q3 planning (weekly)"),
		Start:    1_790_000_000, // a Unix time in 2026
		TimeZone: 22,            // WebEx timeZoneID 22: Europe (Amsterdam)
		Duration: 60,
		Tone:     wire.ToneAnnounceName,
		Repeat: wire.Recurrence{
			Kind:     wire.RepeatWeekly,
			Interval: 1,
			Until:    1_800_000_000,
			Days:     1 << 2, // Tuesday
		},
		FullAttendees:    25,
		LimitedAttendees: 100,
	}
}

// sampleMeta returns metaSize bytes of printable, non-repeating content.
func sampleMeta() []byte {
	m := make([]byte, metaSize)
	for i := range m {
		m[i] = 'a' + byte(i*7%26)
	}
	return m
}

func sampleToken(n uint64) []byte {
	return fmt.Appendf(nil, "%s%0*d", tokenPrefix, tokenDigits, n)
}

func sampleBridge() wire.Bridge {
	return wire.Bridge{
		ID:           []byte("pl-ams-03/bridge-000418305927"),
		Toll:         []byte("+31-20-794-0000"),
		TollFree:     []byte("+1-866-432-9903"),
		HostCode:     []byte("41830592"),
		AttendeeCode: []byte("7729104"),
	}
}

func mustFrame(tb testing.TB, h wire.Header, p wire.Payload) []byte {
	tb.Helper()
	b, err := wire.AppendFrame(nil, h, p, wire.DefaultMaxFrame)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// allocateRequestFrame is the front-end ALLOCATE request.
func allocateRequestFrame(tb testing.TB) []byte {
	return mustFrame(tb, wire.Header{Op: wire.OpAllocate, ID: 1},
		&wire.AllocateRequest{Token: sampleToken(1), Spec: sampleSpec(), Meta: sampleMeta()})
}

// allocateResponseFrame is the front-end ALLOCATE answer.
func allocateResponseFrame(tb testing.TB) []byte {
	return mustFrame(tb, wire.Header{Op: wire.OpAllocate, Flags: wire.FlagResponse, ID: 1},
		&wire.AllocateResponse{Key: sampleKey, Tier: []byte("primary-large"), Bridge: sampleBridge()})
}

// reserveRequestFrame is the telephony RESERVE request.
func reserveRequestFrame(tb testing.TB) []byte {
	return mustFrame(tb, wire.Header{Op: wire.OpReserve, ID: 1},
		&wire.UpdateRequest{Key: sampleKey, Spec: sampleSpec(), Meta: sampleMeta()})
}

// bridgeResponseFrame is the telephony RESERVE answer.
func bridgeResponseFrame(tb testing.TB) []byte {
	b := sampleBridge()
	return mustFrame(tb, wire.Header{Op: wire.OpReserve, Flags: wire.FlagResponse, ID: 1}, &b)
}

// setTokenCounter rewrites the counter digits of the ALLOCATE request frame
// in place (no allocation). The token is the payload's first field.
func setTokenCounter(frame []byte, n uint64) {
	d := frame[wire.HeaderSize+2+len(tokenPrefix):][:tokenDigits]
	for i := tokenDigits - 1; i >= 0; i-- {
		d[i] = '0' + byte(n%10)
		n /= 10
	}
}

// setID rewrites the request id of a frame in place.
func setID(frame []byte, id uint64) { binary.BigEndian.PutUint64(frame[8:], id) }

func TestFramesDecode(t *testing.T) {
	var areq wire.AllocateRequest
	if err := areq.Decode(allocateRequestFrame(t)[wire.HeaderSize:]); err != nil {
		t.Fatalf("ALLOCATE request: %v", err)
	}
	if len(areq.Meta) != metaSize || !bytes.Equal(areq.Token, sampleToken(1)) {
		t.Fatalf("ALLOCATE request: meta %d bytes, token %q", len(areq.Meta), areq.Token)
	}
	var aresp wire.AllocateResponse
	if err := aresp.Decode(allocateResponseFrame(t)[wire.HeaderSize:]); err != nil {
		t.Fatalf("ALLOCATE response: %v", err)
	}
	var rreq wire.UpdateRequest
	if err := rreq.Decode(reserveRequestFrame(t)[wire.HeaderSize:]); err != nil {
		t.Fatalf("RESERVE request: %v", err)
	}
	if len(rreq.Meta) != metaSize {
		t.Fatalf("RESERVE meta %d bytes", len(rreq.Meta))
	}
	var br wire.Bridge
	if err := br.Decode(bridgeResponseFrame(t)[wire.HeaderSize:]); err != nil {
		t.Fatalf("RESERVE response: %v", err)
	}
	t.Logf("frame bytes: ALLOCATE %d → %d, RESERVE %d → %d",
		len(allocateRequestFrame(t)), len(allocateResponseFrame(t)),
		len(reserveRequestFrame(t)), len(bridgeResponseFrame(t)))
}

func TestSetTokenCounter(t *testing.T) {
	f := allocateRequestFrame(t)
	setTokenCounter(f, 987654321)
	var r wire.AllocateRequest
	if err := r.Decode(f[wire.HeaderSize:]); err != nil {
		t.Fatal(err)
	}
	if want := sampleToken(987654321); !bytes.Equal(r.Token, want) {
		t.Fatalf("token %q, want %q", r.Token, want)
	}
	if len(r.Meta) != metaSize {
		t.Fatal("rewriting the token disturbed the rest of the frame")
	}
}
