package fuzz

import (
	"bytes"
	"encoding/binary"
	"testing"

	"switchboard/inflight"
)

// inflightSlot builds a slot holding an intent (and an answer, if resp is
// not nil), header word included.
func inflightSlot(token []byte, key uint64, tier, resp []byte) []byte {
	s := make([]byte, inflight.SlotSize)
	h, err := inflight.EncodeIntent(s, token, key, tier)
	if err == nil && resp != nil {
		h, err = inflight.EncodeAck(s, resp)
	}
	if err != nil {
		panic(err)
	}
	binary.NativeEndian.PutUint64(s, h)
	return s
}

// FuzzInflightSlot: the in-flight table's slot decoder, run on every slot of
// the file a previous process left (a process killed mid-write, a damaged
// disk). On any input it returns a record or an error, never panics; a
// record's fields are within their bounds, re-encode to the same slot
// (header word and covered bytes), and a flipped bit anywhere the checksum
// covers makes the slot unreadable rather than a different record.
func FuzzInflightSlot(f *testing.F) {
	f.Add([]byte{}, uint16(0))
	f.Add(make([]byte, inflight.SlotSize), uint16(0))
	f.Add(inflightSlot([]byte("token"), 123456789, []byte("primary-large"), nil), uint16(9))
	f.Add(inflightSlot(nil, 1, []byte("nextgen"), []byte("answer")), uint16(300))
	f.Add(inflightSlot(bytes.Repeat([]byte{'t'}, inflight.MaxToken), ^uint64(0),
		bytes.Repeat([]byte{'a'}, inflight.MaxTier), bytes.Repeat([]byte{'r'}, inflight.MaxResponse)), uint16(1023))
	torn := inflightSlot([]byte("token"), 7, []byte("primary-large"), []byte("answer"))
	torn[20] ^= 0xff
	f.Add(torn, uint16(0))
	f.Fuzz(func(t *testing.T, s []byte, flip uint16) {
		var r inflight.Record
		err := inflight.Decode(s, &r)
		if len(s) != inflight.SlotSize {
			if err == nil {
				t.Fatalf("a %d-byte slot decoded", len(s))
			}
			return
		}
		if err != nil {
			return
		}
		if len(r.Tier) > inflight.MaxTier || len(r.Token) > inflight.MaxToken || len(r.Resp) > inflight.MaxResponse {
			t.Fatalf("field out of bounds: %+v", r)
		}
		if r.State != inflight.Intent && r.State != inflight.Acked {
			t.Fatalf("decoded state %v", r.State)
		}
		var resp []byte
		if r.State == inflight.Acked {
			resp = r.Resp
		}
		again := inflightSlot(r.Token, r.Key, r.Tier, resp)
		covered := 18 + inflight.MaxTier + inflight.MaxToken
		if !bytes.Equal(again[:covered], s[:covered]) {
			t.Fatalf("re-encoding differs:\n in % x\nout % x", s[:covered], again[:covered])
		}
		if !bytes.Equal(again[216:216+len(resp)], s[216:216+len(resp)]) {
			t.Fatal("re-encoded answer differs")
		}
		var r2 inflight.Record
		if err := inflight.Decode(again, &r2); err != nil || r2.Key != r.Key || r2.State != r.State ||
			!bytes.Equal(r2.Tier, r.Tier) || !bytes.Equal(r2.Token, r.Token) || !bytes.Equal(r2.Resp, r.Resp) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, r, r2)
		}
		// One flipped bit inside what the checksum covers.
		span := covered + len(resp)
		pos := int(flip) % span
		if pos >= covered {
			pos = 216 + pos - covered
		}
		bad := bytes.Clone(s)
		bad[pos] ^= 1 << (flip >> 13)
		var r3 inflight.Record
		if err := inflight.Decode(bad, &r3); err == nil {
			t.Fatalf("slot with bit %d of byte %d flipped still decodes: %+v", flip>>13, pos, r3)
		}
	})
}
