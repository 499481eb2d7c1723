package wire_test

import (
	"bytes"
	"reflect"
	"testing"

	"switchboard/wire"
)

// The codec promises no allocation in steady state: encoding appends to a
// reused buffer and decoding aliases the frame. testing.AllocsPerRun is
// deterministic, so these are ordinary tests, not benchmarks.

func assertNoAllocs(t *testing.T, what string, f func()) {
	t.Helper()
	if n := testing.AllocsPerRun(100, f); n != 0 {
		t.Errorf("%s: %v allocations per run, want 0", what, n)
	}
}

func TestNoAllocsEncodeDecode(t *testing.T) {
	for _, m := range sampleMessages(t) {
		buf := make([]byte, 0, 64<<10)
		p := m.AppendTo(nil)
		into := clone(m)
		assertNoAllocs(t, "AppendTo "+typeName(m), func() { buf = m.AppendTo(buf[:0]) })
		assertNoAllocs(t, "Decode "+typeName(m), func() {
			if err := into.Decode(p); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestNoAllocsFrames(t *testing.T) {
	req := &wire.AllocateRequest{Token: []byte("tok-1"), Spec: createSpec(), Meta: fill(1024)}
	h := wire.Header{Op: wire.OpAllocate, ID: 7}
	buf := make([]byte, 0, 64<<10)
	assertNoAllocs(t, "AppendFrame", func() {
		var err error
		if buf, err = wire.AppendFrame(buf[:0], h, req, wire.DefaultMaxFrame); err != nil {
			t.Fatal(err)
		}
	})
	assertNoAllocs(t, "BeginFrame/FinishFrame", func() {
		b, start := wire.BeginFrame(buf[:0], h)
		b = req.AppendTo(b)
		var err error
		if buf, err = wire.FinishFrame(b, start, wire.DefaultMaxFrame); err != nil {
			t.Fatal(err)
		}
	})
	frame := append([]byte(nil), buf...)
	assertNoAllocs(t, "ParseHeader", func() {
		if _, _, err := wire.ParseHeader(frame, wire.DefaultMaxFrame); err != nil {
			t.Fatal(err)
		}
	})
	assertNoAllocs(t, "AppendError", func() {
		buf = wire.AppendError(buf[:0], h, wire.StatusCapacity, "every tier is full")
	})

	r := bytes.NewReader(frame)
	rbuf := make([]byte, 0, 4096)
	assertNoAllocs(t, "ReadFrame", func() {
		r.Reset(frame)
		var err error
		if _, _, rbuf, err = wire.ReadFrame(r, rbuf, wire.DefaultMaxFrame); err != nil {
			t.Fatal(err)
		}
	})
}

func typeName(m message) string { return reflect.TypeOf(m).Elem().Name() }
