package wire_test

import (
	"bytes"
	"testing"

	"switchboard/wire"
)

// Benchmarks of the hot-path codecs with reused buffers. Run with
//
//	go test -run XXX -bench . -benchmem ./wire
//
// Every one must report 0 allocs/op; TestNoAllocs* assert the same
// deterministically. Compare ns/op only as ratios within one run.

// benchAllocate is a realistic ALLOCATE: a long UTF-8 conference name, a
// token, a weekly recurrence and a 1 KiB meta.
func benchAllocate() *wire.AllocateRequest {
	s := createSpec()
	s.Name = []byte("Q3 résultats trimestriels – revue EMEA / APAC avec l'équipe finance")
	s.Repeat = wire.Recurrence{Kind: wire.RepeatWeekly, Interval: 1, Until: untilUnix, Days: 1<<1 | 1<<3}
	return &wire.AllocateRequest{Token: []byte("7f9c2ba4-e88f-4e7a-9d42-0c6d8a5b1e33"), Spec: s, Meta: fill(1024)}
}

func benchAllocateResponse() *wire.AllocateResponse {
	return &wire.AllocateResponse{Key: sessionKey, Tier: []byte("primary-large"), Bridge: bridge()}
}

func benchUpdate() *wire.UpdateRequest {
	r := benchAllocate()
	return &wire.UpdateRequest{Key: sessionKey, Spec: r.Spec, Meta: r.Meta}
}

func benchReservation() *wire.Reservation {
	r := benchAllocate()
	return &wire.Reservation{Key: sessionKey, Tier: []byte("nextgen"), Bridge: bridge(), Spec: r.Spec, Meta: r.Meta}
}

func benchEncode(b *testing.B, m message) {
	buf := m.AppendTo(nil)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = m.AppendTo(buf[:0])
	}
}

func benchDecode(b *testing.B, m message) {
	p := m.AppendTo(nil)
	into := clone(m)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if err := into.Decode(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeAllocateRequest(b *testing.B)  { benchEncode(b, benchAllocate()) }
func BenchmarkDecodeAllocateRequest(b *testing.B)  { benchDecode(b, benchAllocate()) }
func BenchmarkEncodeAllocateResponse(b *testing.B) { benchEncode(b, benchAllocateResponse()) }
func BenchmarkDecodeAllocateResponse(b *testing.B) { benchDecode(b, benchAllocateResponse()) }
func BenchmarkEncodeUpdateRequest(b *testing.B)    { benchEncode(b, benchUpdate()) }
func BenchmarkDecodeUpdateRequest(b *testing.B)    { benchDecode(b, benchUpdate()) }
func BenchmarkEncodeReservation(b *testing.B)      { benchEncode(b, benchReservation()) }
func BenchmarkDecodeReservation(b *testing.B)      { benchDecode(b, benchReservation()) }

// BenchmarkAppendFrameAllocateRequest is the whole send path of an ALLOCATE:
// header, payload, length.
func BenchmarkAppendFrameAllocateRequest(b *testing.B) {
	m := benchAllocate()
	h := wire.Header{Op: wire.OpAllocate, ID: 1}
	buf, err := wire.AppendFrame(nil, h, m, wire.DefaultMaxFrame)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		h.ID++
		if buf, err = wire.AppendFrame(buf[:0], h, m, wire.DefaultMaxFrame); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadFrame reads a pipelined stream of ALLOCATE requests and
// responses from a bytes.Reader and decodes each, the receive path of a
// connection. One op is one frame.
func BenchmarkReadFrame(b *testing.B) {
	req, resp := benchAllocate(), benchAllocateResponse()
	var stream []byte
	var err error
	for id := uint64(1); id <= 64; id++ {
		if stream, err = wire.AppendFrame(stream, wire.Header{Op: wire.OpAllocate, ID: id}, req, wire.DefaultMaxFrame); err != nil {
			b.Fatal(err)
		}
		if stream, err = wire.AppendFrame(stream, wire.Header{Op: wire.OpAllocate, Flags: wire.FlagResponse, ID: id}, resp, wire.DefaultMaxFrame); err != nil {
			b.Fatal(err)
		}
	}
	const frames = 128
	r := bytes.NewReader(stream)
	buf := make([]byte, 0, 4096)
	var areq wire.AllocateRequest
	var aresp wire.AllocateResponse
	b.SetBytes(int64(len(stream) / frames))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if n == frames {
			r.Reset(stream)
			n = 0
		}
		var h wire.Header
		var p []byte
		h, p, buf, err = wire.ReadFrame(r, buf, wire.DefaultMaxFrame)
		if err != nil {
			b.Fatal(err)
		}
		if h.IsResponse() {
			err = aresp.Decode(p)
		} else {
			err = areq.Decode(p)
		}
		if err != nil {
			b.Fatal(err)
		}
		n++
	}
}

func BenchmarkParseHeader(b *testing.B) {
	frame, err := wire.AppendFrame(nil, wire.Header{Op: wire.OpLookup, ID: 3}, &wire.KeyRequest{Key: sessionKey}, wire.DefaultMaxFrame)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := wire.ParseHeader(frame, wire.DefaultMaxFrame); err != nil {
			b.Fatal(err)
		}
	}
}
