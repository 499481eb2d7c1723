package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"testing"
	"testing/iotest"

	"switchboard/wire"
)

// header returns 16 header bytes with the given length field.
func header(length uint32, version, op, flags, status byte, id uint64) []byte {
	b := binary.BigEndian.AppendUint32(nil, length)
	b = append(b, version, op, flags, status)
	return binary.BigEndian.AppendUint64(b, id)
}

func TestParseHeaderShort(t *testing.T) {
	full := header(12, wire.Version, byte(wire.OpPing), 0, 0, 1)
	for i := 0; i < wire.HeaderSize; i++ {
		if _, _, err := wire.ParseHeader(full[:i], wire.DefaultMaxFrame); !errors.Is(err, wire.ErrTruncated) {
			t.Fatalf("%d header bytes: %v, want ErrTruncated", i, err)
		}
	}
}

func TestParseHeaderLength(t *testing.T) {
	const max = 1000
	cases := []struct {
		length uint32
		want   error
	}{
		{0, wire.ErrFrameTooSmall},
		{wire.HeaderSize - wire.LengthSize - 1, wire.ErrFrameTooSmall},
		{wire.HeaderSize - wire.LengthSize, nil}, // empty payload
		{max - wire.LengthSize - 1, nil},
		{max - wire.LengthSize, nil}, // exactly max: accepted
		{max - wire.LengthSize + 1, wire.ErrFrameTooLarge},
		{math.MaxInt32, wire.ErrFrameTooLarge},
		{math.MaxUint32, wire.ErrFrameTooLarge},
	}
	for _, c := range cases {
		b := header(c.length, wire.Version, byte(wire.OpAllocate), 0, 0, 42)
		h, n, err := wire.ParseHeader(b, max)
		if !errors.Is(err, c.want) || (err == nil) != (c.want == nil) {
			t.Fatalf("length %d: %v, want %v", c.length, err, c.want)
		}
		if err == nil && (n != int(c.length)+wire.LengthSize || h.Op != wire.OpAllocate || h.ID != 42) {
			t.Fatalf("length %d: %+v, n=%d", c.length, h, n)
		}
	}
}

// TestParseHeaderChecksLengthFirst: an oversize length is reported even when
// the rest of the header is garbage too, so a hostile prefix is rejected
// before anything else is looked at.
func TestParseHeaderChecksLengthFirst(t *testing.T) {
	b := header(math.MaxUint32, 0xee, 0xee, 0xee, 0xee, 0)
	if _, _, err := wire.ParseHeader(b, wire.DefaultMaxFrame); !errors.Is(err, wire.ErrFrameTooLarge) {
		t.Fatalf("%v, want ErrFrameTooLarge", err)
	}
}

func TestParseHeaderVersionAndFlags(t *testing.T) {
	for _, v := range []byte{0, 2, 0xff} {
		b := header(12, v, byte(wire.OpLookup), 0, 0, 77)
		h, _, err := wire.ParseHeader(b, wire.DefaultMaxFrame)
		if !errors.Is(err, wire.ErrBadVersion) {
			t.Fatalf("version %d: %v", v, err)
		}
		// The header still comes back, so the receiver can answer
		// BAD_REQUEST to this request id before closing.
		if h.ID != 77 || h.Op != wire.OpLookup {
			t.Fatalf("version %d: header %+v", v, h)
		}
	}
	for _, f := range []byte{0x02, 0x80, 0xfe, 0xff} {
		b := header(12, wire.Version, byte(wire.OpLookup), f, 0, 78)
		h, _, err := wire.ParseHeader(b, wire.DefaultMaxFrame)
		if !errors.Is(err, wire.ErrBadFlags) || h.ID != 78 {
			t.Fatalf("flags %#x: %v, %+v", f, err, h)
		}
	}
	for _, f := range []byte{0, wire.FlagResponse} {
		h, _, err := wire.ParseHeader(header(12, wire.Version, byte(wire.OpLookup), f, 0, 79), wire.DefaultMaxFrame)
		if err != nil || h.IsResponse() != (f == wire.FlagResponse) {
			t.Fatalf("flags %#x: %v, %+v", f, err, h)
		}
	}
}

// TestParseHeaderUnknownOp: framing accepts any op and any status; the
// receiver answers an unknown op with UNSUPPORTED and keeps the connection.
func TestParseHeaderUnknownOp(t *testing.T) {
	for _, op := range []byte{0x00, 0x06, 0x0f, 0x16, 0x20, 0xff} {
		h, n, err := wire.ParseHeader(header(12, wire.Version, op, 0, 0, 5), wire.DefaultMaxFrame)
		if err != nil || n != wire.HeaderSize || byte(h.Op) != op {
			t.Fatalf("op %#x: %+v, %d, %v", op, h, n, err)
		}
	}
	h, _, err := wire.ParseHeader(header(12, wire.Version, 1, wire.FlagResponse, 200, 5), wire.DefaultMaxFrame)
	if err != nil || h.Status != 200 || h.Status.Known() {
		t.Fatalf("status 200: %+v, %v", h, err)
	}
}

func TestHeaderResponse(t *testing.T) {
	req := wire.Header{Op: wire.OpUpdate, ID: math.MaxUint64}
	if req.IsResponse() {
		t.Fatal("request reports response")
	}
	resp := req.Response(wire.StatusNotFound)
	want := wire.Header{Op: wire.OpUpdate, Flags: wire.FlagResponse, Status: wire.StatusNotFound, ID: math.MaxUint64}
	if resp != want || !resp.IsResponse() {
		t.Fatalf("Response = %+v", resp)
	}
}

// guardReader serves hdr, then fails the test if anything more is read: the
// payload of an oversize frame must never be requested.
type guardReader struct {
	t   *testing.T
	hdr []byte
}

func (r *guardReader) Read(p []byte) (int, error) {
	if len(r.hdr) == 0 {
		r.t.Errorf("read of %d bytes past the header of an oversize frame", len(p))
		return 0, errors.New("guardReader: read past the header")
	}
	n := copy(p, r.hdr)
	r.hdr = r.hdr[n:]
	return n, nil
}

func TestReadFrameRejectsOversizeBeforePayload(t *testing.T) {
	for _, length := range []uint32{wire.DefaultMaxFrame - wire.LengthSize + 1, 1 << 30, math.MaxUint32} {
		r := &guardReader{t: t, hdr: header(length, wire.Version, byte(wire.OpAllocate), 0, 0, 3)}
		buf := make([]byte, 0, 512)
		_, p, buf, err := wire.ReadFrame(r, buf, wire.DefaultMaxFrame)
		if !errors.Is(err, wire.ErrFrameTooLarge) || p != nil {
			t.Fatalf("length %d: %v", length, err)
		}
		if cap(buf) != 512 {
			t.Fatalf("length %d: buffer grew to %d", length, cap(buf))
		}
	}
}

// TestReadFrameExactlyMax: a frame of exactly max bytes is read; a frame one
// byte longer is refused; both at the 64 KiB default.
func TestReadFrameExactlyMax(t *testing.T) {
	h := wire.Header{Op: wire.Op(0x0e), ID: 9} // framing does not care about the op
	b, start := wire.BeginFrame(nil, h)
	b = append(b, fill(wire.DefaultMaxFrame-wire.HeaderSize)...)
	frame, err := wire.FinishFrame(b, start, wire.DefaultMaxFrame)
	if err != nil || len(frame) != wire.DefaultMaxFrame {
		t.Fatalf("FinishFrame at max: %d bytes, %v", len(frame), err)
	}
	got, p, _, err := wire.ReadFrame(bytes.NewReader(frame), nil, wire.DefaultMaxFrame)
	if err != nil || got != h || !bytes.Equal(p, frame[wire.HeaderSize:]) {
		t.Fatalf("ReadFrame at max: %+v, %v", got, err)
	}
	if _, _, _, err := wire.ReadFrame(bytes.NewReader(frame), nil, wire.DefaultMaxFrame-1); !errors.Is(err, wire.ErrFrameTooLarge) {
		t.Fatalf("ReadFrame at max+1: %v", err)
	}

	b, start = wire.BeginFrame([]byte("keep"), h)
	b = append(b, fill(wire.DefaultMaxFrame-wire.HeaderSize+1)...)
	b, err = wire.FinishFrame(b, start, wire.DefaultMaxFrame)
	if !errors.Is(err, wire.ErrFrameTooLarge) || string(b) != "keep" {
		t.Fatalf("FinishFrame at max+1: %q..., %v", b[:min(len(b), 8)], err)
	}
}

func TestAppendFrameTooLarge(t *testing.T) {
	m := &wire.AllocateRequest{Spec: createSpec(), Meta: fill(wire.MaxMeta)}
	h := wire.Header{Op: wire.OpAllocate, ID: 1}
	b, err := wire.AppendFrame([]byte("prev"), h, m, wire.MinMaxFrame)
	if !errors.Is(err, wire.ErrFrameTooLarge) || string(b) != "prev" {
		t.Fatalf("AppendFrame: %q, %v", b[:min(len(b), 8)], err)
	}
	b, err = wire.AppendFrame(nil, h, nil, wire.DefaultMaxFrame)
	if err != nil || len(b) != wire.HeaderSize {
		t.Fatalf("AppendFrame(nil payload): %d bytes, %v", len(b), err)
	}
}

// TestAppendFrameAppends: several frames appended to one buffer each get
// their own length, as a writer batching pipelined responses does.
func TestAppendFrameAppends(t *testing.T) {
	var b []byte
	var err error
	cases := goldenCases()
	for _, c := range cases {
		if c.hdr.Status != wire.StatusOK {
			b = wire.AppendError(b, wire.Header{Op: c.hdr.Op, ID: c.hdr.ID}, c.hdr.Status, c.errMsg)
			continue
		}
		if b, err = wire.AppendFrame(b, c.hdr, c.msg, wire.DefaultMaxFrame); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cases {
		want, _ := c.encode()
		if !bytes.HasPrefix(b, want) {
			t.Fatalf("%s: frame differs in the batch", c.file)
		}
		b = b[len(want):]
	}
}

func TestAppendError(t *testing.T) {
	req := wire.Header{Op: wire.OpAllocate, ID: 99}
	b := wire.AppendError([]byte("prev"), req, wire.StatusOverloaded, string(fill(wire.MaxMessage+100)))
	if string(b[:4]) != "prev" {
		t.Fatal("AppendError did not append")
	}
	h, n, err := wire.ParseHeader(b[4:], wire.DefaultMaxFrame)
	if err != nil || n != len(b)-4 || h != req.Response(wire.StatusOverloaded) {
		t.Fatalf("%+v, %d, %v", h, n, err)
	}
	var m wire.ErrorMessage
	if err := m.Decode(b[4+wire.HeaderSize:]); err != nil || !bytes.Equal(m.Message, fill(wire.MaxMessage)) {
		t.Fatalf("message of %d bytes, %v; want truncated to %d", len(m.Message), err, wire.MaxMessage)
	}
}

func TestReadFrameEOF(t *testing.T) {
	frame := goldenFrame(t, "fe_allocate_req")
	if _, _, _, err := wire.ReadFrame(bytes.NewReader(nil), nil, wire.DefaultMaxFrame); err != io.EOF {
		t.Fatalf("empty stream: %v, want io.EOF", err)
	}
	for i := 1; i < len(frame); i++ {
		_, _, _, err := wire.ReadFrame(bytes.NewReader(frame[:i]), nil, wire.DefaultMaxFrame)
		if err != io.ErrUnexpectedEOF {
			t.Fatalf("stream cut at %d of %d: %v, want io.ErrUnexpectedEOF", i, len(frame), err)
		}
	}
}

func TestReadFrameReaderError(t *testing.T) {
	boom := errors.New("boom")
	if _, _, _, err := wire.ReadFrame(iotest.ErrReader(boom), nil, wire.DefaultMaxFrame); !errors.Is(err, boom) {
		t.Fatalf("%v, want boom", err)
	}
	frame := goldenFrame(t, "fe_allocate_req")
	r := io.MultiReader(bytes.NewReader(frame[:20]), iotest.ErrReader(boom))
	if _, _, _, err := wire.ReadFrame(r, nil, wire.DefaultMaxFrame); !errors.Is(err, boom) {
		t.Fatalf("error inside the payload: %v, want boom", err)
	}
}

// TestReadFrameOneByteReads: frames split into single-byte reads, as a slow
// peer delivers them, come out whole.
func TestReadFrameOneByteReads(t *testing.T) {
	var stream []byte
	cases := goldenCases()
	for _, c := range cases {
		stream = append(stream, readGolden(t, c)...)
	}
	r := iotest.OneByteReader(bytes.NewReader(stream))
	var buf []byte
	for _, c := range cases {
		h, p, nb, err := wire.ReadFrame(r, buf, wire.DefaultMaxFrame)
		buf = nb
		want := readGolden(t, c)
		if err != nil || h != c.hdr || !bytes.Equal(p, want[wire.HeaderSize:]) {
			t.Fatalf("%s: %+v, %v", c.file, h, err)
		}
	}
}

// TestReadFrameBuffer: the buffer is reused while it is large enough, grown
// to the frame when it is not, and the payload aliases it.
func TestReadFrameBuffer(t *testing.T) {
	small := goldenFrame(t, "fe_ping_req")
	big, err := wire.AppendFrame(nil, wire.Header{Op: wire.OpAllocate, ID: 1},
		&wire.AllocateRequest{Spec: createSpec(), Meta: fill(4000)}, wire.DefaultMaxFrame)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 1024)
	_, _, nb, err := wire.ReadFrame(bytes.NewReader(small), buf, wire.DefaultMaxFrame)
	if err != nil || &nb[:1][0] != &buf[:1][0] {
		t.Fatalf("small frame: buffer not reused (%v)", err)
	}
	_, p, nb, err := wire.ReadFrame(bytes.NewReader(big), nb, wire.DefaultMaxFrame)
	if err != nil || len(nb) != len(big) || !bytes.Equal(nb, big) {
		t.Fatalf("big frame: %d bytes, %v", len(nb), err)
	}
	if &p[0] != &nb[wire.HeaderSize] {
		t.Fatal("payload does not alias the buffer")
	}
	grown := nb
	if _, _, nb, _ = wire.ReadFrame(bytes.NewReader(small), nb, wire.DefaultMaxFrame); &nb[:1][0] != &grown[0] {
		t.Fatal("grown buffer not reused")
	}
}
