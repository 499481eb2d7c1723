package wire

import "encoding/binary"

// Field bounds, in bytes. Both sides enforce them: an encoder never produces
// a longer field (callers validate first; AppendTo truncates nothing and the
// decoder rejects the frame), a decoder rejects a longer one.
const (
	MaxToken    = 128      // idempotency token
	MaxName     = 2048     // conference name (512 characters of UTF-8 fit)
	MaxShort    = 64       // bridge id, phone numbers, access codes, tier and server names
	MaxMessage  = 1024     // error message
	MaxMeta     = 32 << 10 // opaque meeting record owned by the front end
	MaxInterval = 1 << 15  // recurrence interval
)

// appendStr appends a 16-bit length and s.
func appendStr[T ~string | ~[]byte](dst []byte, s T) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// appendBlob appends a 32-bit length and b.
func appendBlob(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

// decoder reads fields in order from a payload. The first error sticks; every
// later read returns zero values, so a message's Decode checks once at the end.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) need(n int) bool {
	if d.err != nil {
		return false
	}
	if len(d.b) < n {
		d.err = ErrTruncated
		d.b = nil
		return false
	}
	return true
}

func (d *decoder) u8() uint8 {
	if !d.need(1) {
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) u16() uint16 {
	if !d.need(2) {
		return 0
	}
	v := binary.BigEndian.Uint16(d.b)
	d.b = d.b[2:]
	return v
}

func (d *decoder) u32() uint32 {
	if !d.need(4) {
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) u64() uint64 {
	if !d.need(8) {
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) bytes(n, max int) []byte {
	if d.err == nil && n > max {
		d.err = ErrFieldTooLong
	}
	if !d.need(n) {
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// str reads a 16-bit length and that many bytes, at most max.
func (d *decoder) str(max int) []byte { return d.bytes(int(d.u16()), max) }

// blob reads a 32-bit length and that many bytes, at most max.
func (d *decoder) blob(max int) []byte { return d.bytes(int(d.u32()), max) }

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

// done returns the sticky error, or ErrTrailing if bytes remain.
func (d *decoder) done() error {
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return ErrTrailing
	}
	return nil
}
