package wire_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"

	"switchboard/wire"
)

// A front end encodes an ALLOCATE request into a reused buffer; the daemon
// reads the frame, checks its header and decodes the payload in place.
func Example() {
	req := wire.AllocateRequest{
		Token: []byte("tok-1"),
		Spec: wire.Spec{
			Name:     []byte("Sample Teleconference-only meeting"),
			Start:    1113808131,
			TimeZone: 45,
			Duration: 60,
			Tone:     wire.ToneAnnounceName,
			Repeat:   wire.Recurrence{Kind: wire.RepeatDaily, Interval: 1},
		},
		Meta: []byte("<listing>PUBLIC</listing>"),
	}
	if err := req.Spec.Validate(); err != nil {
		panic(err)
	}
	var out []byte // reused for every frame
	out, err := wire.AppendFrame(out[:0], wire.Header{Op: wire.OpAllocate, ID: 7}, &req, wire.DefaultMaxFrame)
	if err != nil {
		panic(err)
	}

	// The daemon's side of the socket.
	r := bufio.NewReader(bytes.NewReader(out))
	var in []byte // reused for every frame
	h, payload, in, err := wire.ReadFrame(r, in, wire.DefaultMaxFrame)
	if err != nil {
		panic(err)
	}
	var got wire.AllocateRequest
	if err := got.Decode(payload); err != nil {
		panic(err)
	}
	fmt.Printf("%v id=%d token=%s name=%q tz=%d\n", h.Op, h.ID, got.Token, got.Spec.Name, got.Spec.TimeZone)
	// Output: ALLOCATE id=7 token=tok-1 name="Sample Teleconference-only meeting" tz=45
}

// A RELEASE request is a 16-byte header and an 8-byte key (fe_release_req.hex).
func ExampleAppendFrame() {
	frame, _ := wire.AppendFrame(nil, wire.Header{Op: wire.OpRelease, ID: 12}, &wire.KeyRequest{Key: 904617253}, wire.DefaultMaxFrame)
	fmt.Printf("% x\n", frame)
	// Output: 00 00 00 14 01 05 00 00 00 00 00 00 00 00 00 0c 00 00 00 00 35 eb 5d 25
}

// An error response carries a status in its header and a message in its
// payload; DecodeError turns it into an error that errors.Is matches.
func ExampleDecodeError() {
	req := wire.Header{Op: wire.OpLookup, ID: 21}
	frame := wire.AppendError(nil, req, wire.StatusNotFound, "no reservation under key 904617253")

	h, _, _ := wire.ParseHeader(frame, wire.DefaultMaxFrame)
	err := wire.DecodeError(h.Status, frame[wire.HeaderSize:])
	fmt.Println(err)
	fmt.Println(errors.Is(err, wire.StatusNotFound), errors.Is(err, wire.StatusUnavailable))
	// Output:
	// NOT_FOUND: no reservation under key 904617253
	// true false
}
