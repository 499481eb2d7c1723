package wire_test

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"switchboard/wire"
)

// The annotator renders a frame as the readable hex of wire/testdata: one
// field per line, each with its offset in the frame and its meaning. It walks
// the bytes with its own copy of the layout of docs/protocol.md, independent
// of the codec, and fails unless every byte is accounted for, so a golden file
// that annotates cleanly is also a check that codec and specification agree.

// hexColumn is the width of the hex column of an annotated line.
const hexColumn = 34

// chunk is the number of bytes of a string or blob per line.
const chunk = 16

type annotator struct {
	b     []byte
	off   int
	lines []string
	err   error
}

// annotate renders frame with the given description as its first line.
func annotate(frame []byte, description string) (string, error) {
	a := &annotator{b: frame}
	a.comment(description)
	h, n, err := wire.ParseHeader(frame, len(frame))
	if err != nil {
		return "", fmt.Errorf("annotate: %w", err)
	}
	if n != len(frame) {
		return "", fmt.Errorf("annotate: header says %d bytes, frame has %d", n, len(frame))
	}
	var kind string
	var m any
	if h.Status != wire.StatusOK {
		kind, m = "ErrorMessage", &wire.ErrorMessage{}
	} else if p := newPayload(h.Op, h.IsResponse()); p != nil {
		kind, m = fmt.Sprintf("%T", p)[len("*wire."):], p
	} else {
		return "", fmt.Errorf("annotate: no payload type for op %v", h.Op)
	}
	a.comment(fmt.Sprintf("%d bytes: 16-byte header, %d-byte %s payload", len(frame), len(frame)-wire.HeaderSize, kind))
	a.comment("header")
	a.uint("length", 4, func(v uint64) string { return fmt.Sprintf("(bytes after this field; frame is %d bytes)", v+4) })
	a.uint("version", 1, nil)
	a.code("op", func(v uint64) string { return wire.Op(v).String() })
	a.code("flags", func(v uint64) string {
		if v&uint64(wire.FlagResponse) != 0 {
			return "(response)"
		}
		return "(request)"
	})
	a.uint("status", 1, func(v uint64) string { return wire.Status(v).String() })
	a.uint("request id", 8, nil)
	a.comment("payload: " + kind)
	switch m := m.(type) {
	case *wire.Empty:
		a.comment("(empty)")
	case *wire.ErrorMessage:
		a.str("message")
	case *wire.AllocateRequest:
		a.str("token")
		a.spec()
		a.blob("meta")
	case *wire.AllocateResponse:
		a.uint("key", 8, nil)
		a.uint("replayed", 1, func(v uint64) string {
			if v == 1 {
				return "(a retry with a known token: the first result again)"
			}
			return "(first answer to this token)"
		})
		a.str("tier")
		a.bridge()
	case *wire.KeyRequest:
		a.uint("key", 8, nil)
	case *wire.UpdateRequest:
		a.uint("key", 8, nil)
		a.spec()
		a.blob("meta")
	case *wire.Reservation:
		a.uint("key", 8, nil)
		a.str("tier")
		a.bridge()
		a.spec()
		a.blob("meta")
	case *wire.Record:
		a.bridge()
		a.spec()
		a.blob("meta")
	case *wire.Hello:
		a.str("client")
	case *wire.HelloResponse:
		a.str("server")
		a.str("tier")
		a.load()
	case *wire.Load:
		a.load()
	case *wire.Bridge:
		a.bridge()
	default:
		return "", fmt.Errorf("annotate: no layout for %T", m)
	}
	if a.err != nil {
		return "", a.err
	}
	if a.off != len(a.b) {
		return "", fmt.Errorf("annotate: %d bytes left after the last field", len(a.b)-a.off)
	}
	return strings.Join(a.lines, "\n") + "\n", nil
}

func (a *annotator) comment(s string) { a.lines = append(a.lines, "# "+s) }

func (a *annotator) line(b []byte, at int, comment string) {
	a.lines = append(a.lines, fmt.Sprintf("%-*s # +%d %s", hexColumn, hex.EncodeToString(b), at, comment))
}

func (a *annotator) take(n int) ([]byte, int) {
	at := a.off
	if a.err != nil {
		return nil, at
	}
	if n > len(a.b)-a.off {
		a.err = fmt.Errorf("annotate: field of %d bytes at offset %d runs past the frame (%d bytes)", n, a.off, len(a.b))
		return nil, at
	}
	a.off += n
	return a.b[at:a.off], at
}

func (a *annotator) uint(name string, size int, describe func(uint64) string) uint64 {
	b, at := a.take(size)
	if b == nil {
		return 0
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	c := fmt.Sprintf("%s = %d", name, v)
	if describe != nil {
		if d := describe(v); d != "" {
			c += " " + d
		}
	}
	a.line(b, at, c)
	return v
}

// code annotates a one-byte code in hexadecimal.
func (a *annotator) code(name string, describe func(uint64) string) {
	b, at := a.take(1)
	if b == nil {
		return
	}
	a.line(b, at, fmt.Sprintf("%s = 0x%02x %s", name, b[0], describe(uint64(b[0]))))
}

func (a *annotator) signed(name string, size int, describe func(int64) string) {
	b, at := a.take(size)
	if b == nil {
		return
	}
	var v int64
	switch size {
	case 2:
		v = int64(int16(binary.BigEndian.Uint16(b)))
	case 8:
		v = int64(binary.BigEndian.Uint64(b))
	}
	c := fmt.Sprintf("%s = %d", name, v)
	if describe != nil {
		if d := describe(v); d != "" {
			c += " " + d
		}
	}
	a.line(b, at, c)
}

func (a *annotator) bytesField(name string, lenSize int) {
	n := a.uint(name+" length", lenSize, nil)
	data, at := a.take(int(n))
	for i := 0; i < len(data); i += chunk {
		end := min(i+chunk, len(data))
		a.line(data[i:end], at+i, fmt.Sprintf("%s %q", name, data[i:end]))
	}
}

func (a *annotator) str(name string)  { a.bytesField(name, 2) }
func (a *annotator) blob(name string) { a.bytesField(name, 4) }

func unixTime(v int64) string {
	if v == 0 {
		return "(unset)"
	}
	return "(" + time.Unix(v, 0).UTC().Format(time.RFC3339) + ")"
}

func (a *annotator) spec() {
	a.str("spec.name")
	a.signed("spec.start", 8, unixTime)
	a.signed("spec.timeZone", 2, func(v int64) string {
		if v == -1 {
			return "(unset)"
		}
		return ""
	})
	a.uint("spec.duration", 4, func(uint64) string { return "minutes" })
	a.uint("spec.tone", 1, func(v uint64) string {
		return enumName(v, "unset", "BEEP", "ANNOUNCENAME", "NOTONE")
	})
	a.uint("spec.repeat.kind", 1, func(v uint64) string {
		return enumName(v, "NO_REPEAT", "DAILY", "WEEKLY", "MONTHLY")
	})
	a.uint("spec.repeat.interval", 2, nil)
	a.signed("spec.repeat.until", 8, unixTime)
	a.uint("spec.repeat.days", 1, func(v uint64) string {
		var days []string
		for i, d := range []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"} {
			if v&(1<<i) != 0 {
				days = append(days, d)
			}
		}
		if len(days) == 0 {
			return "(none)"
		}
		return "(" + strings.Join(days, " ") + ")"
	})
	a.uint("spec.repeat.dayOfMonth", 1, nil)
	a.uint("spec.repeat.weekOfMonth", 1, nil)
	a.uint("spec.fullAttendees", 4, nil)
	a.uint("spec.limitedAttendees", 4, nil)
}

func enumName(v uint64, names ...string) string {
	if v < uint64(len(names)) {
		return "(" + names[v] + ")"
	}
	return "(invalid)"
}

func (a *annotator) bridge() {
	a.str("bridge.id")
	a.str("bridge.toll")
	a.str("bridge.tollFree")
	a.str("bridge.hostCode")
	a.str("bridge.attendeeCode")
}

func (a *annotator) load() {
	a.uint("load.capacity", 4, nil)
	a.uint("load.inUse", 4, nil)
}

// parseHex decodes the readable hex of a golden file or a documentation
// block: '#' starts a comment that runs to the end of the line, and
// whitespace is ignored.
func parseHex(text string) ([]byte, error) {
	var digits strings.Builder
	for line := range strings.Lines(text) {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		for _, f := range strings.Fields(line) {
			digits.WriteString(f)
		}
	}
	return hex.DecodeString(digits.String())
}
