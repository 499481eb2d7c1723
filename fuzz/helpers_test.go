package fuzz

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"switchboard/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// goldenDir holds the golden vectors the seed corpora are made from.
var goldenDir = filepath.Join("..", "wire", "testdata")

// goldenFrame is one golden vector.
type goldenFrame struct {
	name  string // file name without ".hex"
	frame []byte
}

// loadGolden reads every golden vector, in file name order.
func loadGolden(t testing.TB) []goldenFrame {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(goldenDir, "*.hex"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no golden vectors in %s", goldenDir)
	}
	slices.Sort(paths)
	var out []goldenFrame
	for _, p := range paths {
		text, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b, err := parseHex(string(text))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out = append(out, goldenFrame{strings.TrimSuffix(filepath.Base(p), ".hex"), b})
	}
	return out
}

// parseHex decodes the readable hex of a golden file: '#' starts a comment
// that runs to the end of the line; whitespace is ignored.
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

// payloadTarget names the fuzz target of the payload a successful frame with
// this op and direction carries (the op table of docs/protocol.md), or ""
// for an op the protocol does not define.
func payloadTarget(op wire.Op, response bool) string {
	pick := func(req, resp string) string {
		if response {
			return resp
		}
		return req
	}
	switch op {
	case wire.OpPing:
		return "FuzzEmpty"
	case wire.OpAllocate:
		return pick("FuzzAllocateRequest", "FuzzAllocateResponse")
	case wire.OpLookup:
		return pick("FuzzKeyRequest", "FuzzReservation")
	case wire.OpUpdate:
		return pick("FuzzUpdateRequest", "FuzzReservation")
	case wire.OpRelease, wire.OpTelRelease:
		return pick("FuzzKeyRequest", "FuzzEmpty")
	case wire.OpHello:
		return pick("FuzzHello", "FuzzHelloResponse")
	case wire.OpTelPing:
		return pick("FuzzEmpty", "FuzzLoad")
	case wire.OpReserve, wire.OpTelUpdate:
		return pick("FuzzUpdateRequest", "FuzzBridge")
	case wire.OpTelLookup:
		return pick("FuzzKeyRequest", "FuzzRecord")
	}
	return ""
}

// decodeErrors are the only errors a payload decoder may return.
var decodeErrors = []error{wire.ErrTruncated, wire.ErrTrailing, wire.ErrFieldTooLong, wire.ErrBadValue}

// frameErrors are the only errors ParseHeader may return.
var frameErrors = []error{wire.ErrTruncated, wire.ErrFrameTooLarge, wire.ErrFrameTooSmall, wire.ErrBadVersion, wire.ErrBadFlags}

func isOneOf(err error, targets []error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// equal compares two values field by field, treating a nil and an empty
// []byte as equal.
func equal(a, b any) bool { return equalValue(reflect.ValueOf(a), reflect.ValueOf(b)) }

func equalValue(a, b reflect.Value) bool {
	if a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return equalValue(a.Elem(), b.Elem())
	case reflect.Slice:
		return bytes.Equal(a.Bytes(), b.Bytes()) // wire messages hold only []byte slices
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

// fieldBounds is the bound of every variable-length field, by field name.
var fieldBounds = map[string]int{
	"Token": wire.MaxToken, "Name": wire.MaxName, "Meta": wire.MaxMeta, "Message": wire.MaxMessage,
	"Tier": wire.MaxShort, "Client": wire.MaxShort, "Server": wire.MaxShort, "ID": wire.MaxShort,
	"Toll": wire.MaxShort, "TollFree": wire.MaxShort, "HostCode": wire.MaxShort, "AttendeeCode": wire.MaxShort,
}

// setAll walks the struct that ptr points to and sets every []byte field with
// bytesOf(bound of the field) and every integer field with intOf(its kind's
// size in bytes). Booleans become true.
func setAll(ptr any, bytesOf func(bound int) []byte, intOf func(size int) uint64) {
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		for i := 0; i < v.NumField(); i++ {
			f, name := v.Field(i), v.Type().Field(i).Name
			switch f.Kind() {
			case reflect.Struct:
				walk(f)
			case reflect.Slice:
				bound, ok := fieldBounds[name]
				if !ok {
					panic("fuzz: no bound known for field " + name)
				}
				f.SetBytes(bytesOf(bound))
			case reflect.Bool:
				f.SetBool(true)
			case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
				f.SetUint(intOf(int(f.Type().Size())))
			case reflect.Int16, reflect.Int64:
				f.SetInt(int64(intOf(int(f.Type().Size()))))
			}
		}
	}
	walk(reflect.ValueOf(ptr).Elem())
}

// makeStale fills every field of the struct ptr points to, so that a decode
// into it shows whether anything stale survives.
func makeStale(ptr any) {
	setAll(ptr, func(int) []byte { return []byte("stale") }, func(int) uint64 { return 7 })
}

// atBounds fills every short []byte field (token, tier, bridge fields,
// names of peers) at its bound; numbers stay as they are (zero is valid
// everywhere). Name, message and meta get a short value: multi-KiB seeds make
// the fuzzing engine spend its time minimizing instead of exploring, and
// wire's unit tests cover those fields at their bounds.
func atBounds(ptr any) {
	setAll(ptr, func(bound int) []byte {
		if bound > wire.MaxToken {
			return []byte("long field")
		}
		return bytes.Repeat([]byte{'x'}, bound)
	}, func(int) uint64 { return 0 })
}
