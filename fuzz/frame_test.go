package fuzz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"testing"

	"switchboard/wire"
)

// maxFrames are the frame limits every framing target is checked against:
// the default, the smallest allowed, and a tiny one that makes the oversize
// path reachable with short inputs.
var maxFrames = []int{wire.DefaultMaxFrame, wire.MinMaxFrame, 64}

func addFrameSeeds(f *testing.F) {
	hdr := func(length uint32, version, flags byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, length)
		b = append(b, version, byte(wire.OpAllocate), flags, 0)
		return binary.BigEndian.AppendUint64(b, 1)
	}
	f.Add([]byte{})
	f.Add(hdr(12, wire.Version, 0)[:15])
	f.Add(hdr(12, wire.Version, 0))
	f.Add(hdr(11, wire.Version, 0))
	f.Add(hdr(math.MaxUint32, wire.Version, 0))
	f.Add(hdr(wire.DefaultMaxFrame-wire.LengthSize, wire.Version, 0))
	f.Add(hdr(wire.DefaultMaxFrame-wire.LengthSize+1, wire.Version, 0))
	f.Add(hdr(12, 2, 0))
	f.Add(hdr(12, wire.Version, 0x80))
	f.Add(append(hdr(16, wire.Version, wire.FlagResponse), 1, 2, 3))
}

// FuzzParseHeader checks ParseHeader against an independent reading of the
// header bytes, in the order the specification gives: length bound, length
// floor, version, flags.
func FuzzParseHeader(f *testing.F) {
	addFrameSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, max := range maxFrames {
			h, n, err := wire.ParseHeader(b, max)
			var want error
			if len(b) >= wire.HeaderSize {
				length := int64(binary.BigEndian.Uint32(b))
				switch {
				case length+wire.LengthSize > int64(max):
					want = wire.ErrFrameTooLarge
				case length+wire.LengthSize < wire.HeaderSize:
					want = wire.ErrFrameTooSmall
				case b[4] != wire.Version:
					want = wire.ErrBadVersion
				case b[6]&^wire.FlagResponse != 0:
					want = wire.ErrBadFlags
				}
			} else {
				want = wire.ErrTruncated
			}
			if (err == nil) != (want == nil) || (err != nil && !errors.Is(err, want)) {
				t.Fatalf("max %d: ParseHeader(% x) = %v, want %v", max, b[:min(len(b), 16)], err, want)
			}
			if err != nil {
				if !isOneOf(err, frameErrors) {
					t.Fatalf("unexpected error %v", err)
				}
				continue
			}
			if n < wire.HeaderSize || n > max {
				t.Fatalf("max %d: frame size %d", max, n)
			}
			// Re-encoding the header gives back the 16 bytes.
			enc, start := wire.BeginFrame(nil, h)
			enc = append(enc, make([]byte, n-wire.HeaderSize)...)
			enc, err = wire.FinishFrame(enc, start, max)
			if err != nil || !bytes.Equal(enc[:wire.HeaderSize], b[:wire.HeaderSize]) {
				t.Fatalf("max %d: header re-encodes to % x (%v), read % x", max, enc[:wire.HeaderSize], err, b[:wire.HeaderSize])
			}
		}
	})
}

// FuzzReadFrame reads frames from the input until an error and checks each:
// a frame read re-encodes to the bytes consumed; a refused header consumes
// exactly the 16 header bytes (the payload is never read); a cut stream is
// io.ErrUnexpectedEOF, a clean end io.EOF; the buffer never exceeds the
// maximum frame size.
func FuzzReadFrame(f *testing.F) {
	addFrameSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, max := range maxFrames {
			r := bytes.NewReader(b)
			var buf []byte
			for {
				start := len(b) - r.Len()
				h, p, nb, err := wire.ReadFrame(r, buf, max)
				buf = nb
				end := len(b) - r.Len()
				if cap(buf) > 512 && cap(buf) > max {
					t.Fatalf("max %d: buffer grew to %d", max, cap(buf))
				}
				if err != nil {
					checkReadError(t, b[start:], end-start, max, err)
					break
				}
				enc, s := wire.BeginFrame(nil, h)
				enc = append(enc, p...)
				if enc, err = wire.FinishFrame(enc, s, max); err != nil || !bytes.Equal(enc, b[start:end]) {
					t.Fatalf("max %d: frame at %d re-encodes to % x (%v), read % x", max, start, enc, err, b[start:end])
				}
			}
		}
	})
}

// checkReadError checks the error of a ReadFrame that started at rest and
// consumed n bytes.
func checkReadError(t *testing.T, rest []byte, n, max int, err error) {
	t.Helper()
	switch {
	case err == io.EOF:
		if len(rest) != 0 || n != 0 {
			t.Fatalf("io.EOF with %d bytes left", len(rest))
		}
	case err == io.ErrUnexpectedEOF:
		if n != len(rest) || len(rest) == 0 {
			t.Fatalf("io.ErrUnexpectedEOF after %d of %d bytes", n, len(rest))
		}
		if len(rest) >= wire.HeaderSize {
			if _, size, perr := wire.ParseHeader(rest, max); perr != nil || size <= len(rest) {
				t.Fatalf("io.ErrUnexpectedEOF on a complete frame of %d bytes (%v)", size, perr)
			}
		}
	case isOneOf(err, frameErrors) && !errors.Is(err, wire.ErrTruncated):
		if n != wire.HeaderSize {
			t.Fatalf("refused header (%v) but %d bytes consumed", err, n)
		}
	default:
		t.Fatalf("unexpected error %v", err)
	}
}
