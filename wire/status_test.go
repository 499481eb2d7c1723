package wire_test

import (
	"errors"
	"fmt"
	"testing"

	"switchboard/wire"
)

var statusNames = map[wire.Status]string{
	wire.StatusOK:            "OK",
	wire.StatusBadRequest:    "BAD_REQUEST",
	wire.StatusNotFound:      "NOT_FOUND",
	wire.StatusUnavailable:   "UNAVAILABLE",
	wire.StatusCapacity:      "CAPACITY",
	wire.StatusOverloaded:    "OVERLOADED",
	wire.StatusKeysExhausted: "KEYS_EXHAUSTED",
	wire.StatusTimeout:       "TIMEOUT",
	wire.StatusInternal:      "INTERNAL",
	wire.StatusKeyExists:     "KEY_EXISTS",
	wire.StatusDraining:      "DRAINING",
	wire.StatusUnsupported:   "UNSUPPORTED",
}

func TestStatusNames(t *testing.T) {
	for s := 0; s < 256; s++ {
		st := wire.Status(s)
		name, known := statusNames[st]
		if st.Known() != known {
			t.Fatalf("%d: Known = %v", s, st.Known())
		}
		if !known {
			name = fmt.Sprintf("STATUS_%d", s)
			if _, ok := wire.ParseStatus(st.String()); ok {
				t.Fatalf("ParseStatus(%q) succeeded", st.String())
			}
		} else if got, ok := wire.ParseStatus(name); !ok || got != st {
			t.Fatalf("ParseStatus(%q) = %v, %v", name, got, ok)
		}
		if st.String() != name || st.Error() != "wire: "+name {
			t.Fatalf("%d: String %q, Error %q", s, st.String(), st.Error())
		}
	}
	if _, ok := wire.ParseStatus(""); ok {
		t.Fatal(`ParseStatus("") succeeded`)
	}
	if _, ok := wire.ParseStatus("not_found"); ok {
		t.Fatal("ParseStatus is case-insensitive")
	}
}

func TestStatusIs(t *testing.T) {
	var err error = wire.StatusCapacity
	wrapped := fmt.Errorf("tier nextgen: %w", err)
	if !errors.Is(err, wire.StatusCapacity) || !errors.Is(wrapped, wire.StatusCapacity) {
		t.Fatal("errors.Is does not match the same status")
	}
	if errors.Is(wrapped, wire.StatusUnavailable) {
		t.Fatal("errors.Is matches another status")
	}
	var s wire.Status
	if !errors.As(wrapped, &s) || s != wire.StatusCapacity {
		t.Fatalf("errors.As = %v", s)
	}
}

func TestRemoteError(t *testing.T) {
	re := &wire.RemoteError{Status: wire.StatusNotFound, Message: "no reservation under key 904617253"}
	if re.Error() != "NOT_FOUND: no reservation under key 904617253" {
		t.Fatalf("Error = %q", re.Error())
	}
	if (&wire.RemoteError{Status: wire.StatusInternal}).Error() != "INTERNAL" {
		t.Fatal("Error without message")
	}
	if (&wire.RemoteError{Status: 99, Message: "x"}).Error() != "STATUS_99: x" {
		t.Fatal("Error with an unknown status")
	}
	var err error = fmt.Errorf("lookup: %w", re)
	if !errors.Is(err, wire.StatusNotFound) || errors.Is(err, wire.StatusInternal) {
		t.Fatal("errors.Is on RemoteError")
	}
	var got *wire.RemoteError
	if !errors.As(err, &got) || got != re {
		t.Fatal("errors.As on RemoteError")
	}
	var s wire.Status
	if !errors.As(err, &s) || s != wire.StatusNotFound {
		t.Fatal("errors.As to Status through RemoteError")
	}
	if !errors.Is(re.Unwrap(), wire.StatusNotFound) {
		t.Fatal("Unwrap")
	}
}

func TestDecodeError(t *testing.T) {
	frame := goldenFrame(t, "err_key_exists")
	payload := frame[wire.HeaderSize:]
	err := wire.DecodeError(wire.StatusKeyExists, payload)
	var re *wire.RemoteError
	if !errors.As(err, &re) || re.Status != wire.StatusKeyExists || re.Message != "key 904617253 is reserved" {
		t.Fatalf("DecodeError = %#v", err)
	}
	if !errors.Is(err, wire.StatusKeyExists) {
		t.Fatal("errors.Is")
	}
	// A malformed message keeps the status and drops the text.
	for _, bad := range [][]byte{nil, {0}, {0, 5, 'a'}, append(append([]byte(nil), payload...), 0), {0xff, 0xff}} {
		err := wire.DecodeError(wire.StatusDraining, bad)
		if !errors.As(err, &re) || re.Status != wire.StatusDraining || re.Message != "" || !errors.Is(err, wire.StatusDraining) {
			t.Fatalf("DecodeError(% x) = %#v", bad, err)
		}
	}
	// An unknown status survives as itself; the receiver treats it as INTERNAL.
	if err := wire.DecodeError(200, payload); !errors.As(err, &re) || re.Status != 200 {
		t.Fatalf("unknown status: %#v", err)
	}
}

func TestOps(t *testing.T) {
	names := map[wire.Op]string{
		wire.OpGoodbye: "GOODBYE", wire.OpPing: "PING", wire.OpAllocate: "ALLOCATE", wire.OpLookup: "LOOKUP",
		wire.OpUpdate: "UPDATE", wire.OpRelease: "RELEASE",
		wire.OpHello: "HELLO", wire.OpTelPing: "TPING", wire.OpReserve: "RESERVE",
		wire.OpTelUpdate: "TUPDATE", wire.OpTelRelease: "TRELEASE", wire.OpTelLookup: "TLOOKUP",
	}
	for i := 0; i < 256; i++ {
		op := wire.Op(i)
		name, known := names[op]
		if !known {
			name = fmt.Sprintf("OP_%d", i)
		}
		if op.String() != name {
			t.Fatalf("%#x: String = %q, want %q", i, op.String(), name)
		}
		if op.IsFrontEnd() != (i >= 0x01 && i <= 0x05) {
			t.Fatalf("%#x: IsFrontEnd = %v", i, op.IsFrontEnd())
		}
		if op.IsTelephony() != (i >= 0x10 && i <= 0x15) {
			t.Fatalf("%#x: IsTelephony = %v", i, op.IsTelephony())
		}
		if op == wire.OpGoodbye {
			continue // unsolicited: no request, no payload of its own
		}
		if known != (op.IsFrontEnd() || op.IsTelephony()) {
			t.Fatalf("%#x: named %v but front end %v, telephony %v", i, known, op.IsFrontEnd(), op.IsTelephony())
		}
		if known != (newPayload(op, false) != nil) {
			t.Fatalf("%#x: payload table and op list disagree", i)
		}
	}
}
