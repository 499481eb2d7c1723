package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Version is the protocol version carried in every frame header.
const Version = 1

const (
	// HeaderSize is the size of the frame header, length prefix included.
	HeaderSize = 16
	// LengthSize is the size of the length prefix.
	LengthSize = 4
	// DefaultMaxFrame is the largest frame (header included) either side
	// accepts unless configured otherwise.
	DefaultMaxFrame = 64 << 10
	// MinMaxFrame is the smallest maximum frame size that still carries every
	// message with fields at their bounds, meta excepted.
	MinMaxFrame = 16 << 10
)

// Frame flags.
const (
	// FlagResponse marks a frame as the answer to the request with the same id.
	FlagResponse uint8 = 1 << 0
	flagsKnown         = FlagResponse
)

// Framing errors. They describe a peer that does not speak the protocol; the
// usual reaction is to answer BAD_REQUEST where possible and close the
// connection.
var (
	ErrFrameTooLarge = errors.New("wire: frame exceeds the maximum size")
	ErrFrameTooSmall = errors.New("wire: frame length shorter than the header")
	ErrBadVersion    = errors.New("wire: unsupported protocol version")
	ErrBadFlags      = errors.New("wire: unknown frame flags")
	ErrTruncated     = errors.New("wire: payload ends inside a field")
	ErrTrailing      = errors.New("wire: bytes after the last field")
	ErrFieldTooLong  = errors.New("wire: field exceeds its bound")
	ErrBadValue      = errors.New("wire: field has an invalid value")
)

// Header is the fixed part of every frame.
type Header struct {
	// Op is the operation.
	Op Op
	// Flags holds FlagResponse and nothing else in version 1.
	Flags uint8
	// Status is StatusOK in requests and in successful responses.
	Status Status
	// ID matches a response to its request; chosen by the requester.
	ID uint64
}

// IsResponse reports whether the frame answers a request.
func (h Header) IsResponse() bool { return h.Flags&FlagResponse != 0 }

// Response returns the header of the answer to h with the given status.
func (h Header) Response(s Status) Header {
	return Header{Op: h.Op, Flags: FlagResponse, Status: s, ID: h.ID}
}

// ParseHeader decodes the header at the start of b (at least HeaderSize bytes)
// and returns the total frame size, header included. It rejects a length
// above max before anything else is read, so a hostile length prefix costs
// nothing. Ops unknown to this version are not rejected here: the receiver
// answers them with StatusUnsupported.
func ParseHeader(b []byte, max int) (Header, int, error) {
	if len(b) < HeaderSize {
		return Header{}, 0, ErrTruncated
	}
	n := int(binary.BigEndian.Uint32(b))
	// The header is returned with every error so that the receiver can
	// answer the right request id before closing.
	h := Header{Op: Op(b[5]), Flags: b[6], Status: Status(b[7]), ID: binary.BigEndian.Uint64(b[8:])}
	if n > max-LengthSize {
		return h, 0, fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, n+LengthSize, max)
	}
	if n < HeaderSize-LengthSize {
		return h, 0, ErrFrameTooSmall
	}
	if b[4] != Version {
		return h, 0, fmt.Errorf("%w: %d", ErrBadVersion, b[4])
	}
	if h.Flags&^flagsKnown != 0 {
		return h, 0, fmt.Errorf("%w: %#x", ErrBadFlags, h.Flags)
	}
	return h, n + LengthSize, nil
}

// BeginFrame appends a header for h to dst with a placeholder length and
// returns the buffer and the frame's start offset. Append the payload, then
// call FinishFrame.
func BeginFrame(dst []byte, h Header) ([]byte, int) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, Version, byte(h.Op), h.Flags, byte(h.Status))
	dst = binary.BigEndian.AppendUint64(dst, h.ID)
	return dst, start
}

// FinishFrame writes the length prefix of the frame that starts at start and
// checks it against max.
func FinishFrame(b []byte, start, max int) ([]byte, error) {
	n := len(b) - start
	if n > max {
		return b[:start], fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, n, max)
	}
	binary.BigEndian.PutUint32(b[start:], uint32(n-LengthSize))
	return b, nil
}

// Payload is a message that can append its encoding to a buffer.
type Payload interface {
	AppendTo(dst []byte) []byte
}

// AppendFrame appends one whole frame: header h and payload p (nil for an
// empty payload).
func AppendFrame(dst []byte, h Header, p Payload, max int) ([]byte, error) {
	dst, start := BeginFrame(dst, h)
	if p != nil {
		dst = p.AppendTo(dst)
	}
	return FinishFrame(dst, start, max)
}

// AppendError appends a response frame for req carrying status s and a
// human-readable message (truncated to MaxMessage bytes).
func AppendError(dst []byte, req Header, s Status, msg string) []byte {
	dst, start := BeginFrame(dst, req.Response(s))
	if len(msg) > MaxMessage {
		msg = msg[:MaxMessage]
	}
	dst = appendStr(dst, msg)
	dst, _ = FinishFrame(dst, start, int(^uint32(0)>>1))
	return dst
}

// ReadFrame reads one frame from r into buf (grown if needed, reused
// otherwise) and returns its header, its payload (aliasing buf) and the buffer
// for the next call. The length is checked against max before the payload is
// read. Use a buffered reader: ReadFrame issues two reads per frame.
func ReadFrame(r io.Reader, buf []byte, max int) (Header, []byte, []byte, error) {
	if cap(buf) < HeaderSize {
		buf = make([]byte, 0, 512)
	}
	buf = buf[:HeaderSize]
	if _, err := io.ReadFull(r, buf); err != nil {
		return Header{}, nil, buf, err
	}
	h, n, err := ParseHeader(buf, max)
	if err != nil {
		return h, nil, buf, err
	}
	if cap(buf) < n {
		nb := make([]byte, n)
		copy(nb, buf[:HeaderSize])
		buf = nb
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf[HeaderSize:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return h, nil, buf, err
	}
	return h, buf[HeaderSize:], buf, nil
}
