package inflight

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func open(t *testing.T, path string, n int) (*Table, []Record) {
	t.Helper()
	tb, recs, err := Open(path, n)
	if err != nil {
		t.Fatal(err)
	}
	return tb, recs
}

func TestLifecycleAndRecovery(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inflight")
	tb, recs := open(t, path, 4)
	if len(recs) != 0 || tb.Slots() != 4 {
		t.Fatalf("fresh table: %d records, %d slots", len(recs), tb.Slots())
	}
	a, _ := tb.Acquire()
	b, _ := tb.Acquire()
	c, _ := tb.Acquire()
	d, _ := tb.Acquire()
	if _, ok := tb.Acquire(); ok {
		t.Fatal("a fifth slot out of four")
	}
	if err := tb.Intend(a, []byte("tok-a"), 111, []byte("primary")); err != nil {
		t.Fatal(err)
	}
	// b: intent, retried on another tier with a fresh key.
	tb.Intend(b, []byte("tok-b"), 222, []byte("primary"))
	tb.Intend(b, []byte("tok-b"), 223, []byte("nextgen"))
	// c: acked.
	tb.Intend(c, []byte("tok-c"), 333, []byte("primary"))
	tb.Ack(c, []byte("response-c"))
	// d: acked then freed (delivered).
	tb.Intend(d, nil, 444, []byte("primary"))
	tb.Ack(d, []byte("response-d"))
	tb.Free(d)
	if tb.Len() != 3 {
		t.Fatalf("Len %d, want 3", tb.Len())
	}
	// No Close: the process "dies" with the mapping in place; the page
	// cache holds what it stored.
	tb2, recs := open(t, path, 2)
	defer tb2.Close()
	defer tb.Close()
	got := map[uint64]Record{}
	for _, r := range recs {
		got[r.Key] = r
	}
	want := []Record{
		{State: Intent, Key: 111, Tier: []byte("primary"), Token: []byte("tok-a")},
		{State: Intent, Key: 223, Tier: []byte("nextgen"), Token: []byte("tok-b")},
		{State: Acked, Key: 333, Tier: []byte("primary"), Token: []byte("tok-c"), Resp: []byte("response-c")},
	}
	if len(recs) != len(want) {
		t.Fatalf("recovered %d records, want %d: %+v", len(recs), len(want), recs)
	}
	for _, w := range want {
		r, ok := got[w.Key]
		if !ok || r.State != w.State || !bytes.Equal(r.Tier, w.Tier) || !bytes.Equal(r.Token, w.Token) || !bytes.Equal(r.Resp, w.Resp) {
			t.Fatalf("key %d: got %+v, want %+v", w.Key, r, w)
		}
	}
	// The table grew to hold them, they stay acquired, and they survive
	// another restart until freed.
	if tb2.Slots() != 3 || tb2.Len() != 3 {
		t.Fatalf("rebuilt table: %d slots, %d used", tb2.Slots(), tb2.Len())
	}
	if _, ok := tb2.Acquire(); ok {
		t.Fatal("a recovered slot was handed out")
	}
	var r Record
	if err := tb2.Read(recs[2].Slot, &r); err != nil || r.Key != recs[2].Key {
		t.Fatalf("Read of a recovered slot: %v %+v", err, r)
	}
	tb2.Free(recs[0].Slot)
	tb3, recs3 := open(t, path, 8)
	defer tb3.Close()
	if len(recs3) != 2 || tb3.Slots() != 8 || tb3.Len() != 2 {
		t.Fatalf("after freeing one: %d records, %d slots, %d used", len(recs3), tb3.Slots(), tb3.Len())
	}
}

// A write cut short reads as the previous state or as empty, never as a
// different record.
func TestTornWrites(t *testing.T) {
	s := make([]byte, SlotSize)
	h, _ := EncodeIntent(s, []byte("tok"), 7, []byte("primary"))
	putHeader(s, h)
	var r Record
	if err := Decode(s, &r); err != nil || r.State != Intent || r.Key != 7 {
		t.Fatalf("intent: %v %+v", err, r)
	}
	// Ack's response written, header not yet: still the intent.
	EncodeAck(s, []byte("answer"))
	if err := Decode(s, &r); err != nil || r.State != Intent {
		t.Fatalf("ack before its header: %v %+v", err, r)
	}
	hAck, _ := EncodeAck(s, []byte("answer"))
	putHeader(s, hAck)
	if err := Decode(s, &r); err != nil || r.State != Acked || string(r.Resp) != "answer" {
		t.Fatalf("acked: %v %+v", err, r)
	}
	// A body changed under a valid header (a rewrite cut short): empty.
	s[keyOff] ^= 1
	if err := Decode(s, &r); err == nil {
		t.Fatalf("a torn body decoded: %+v", r)
	}
	// A free slot.
	if err := Decode(make([]byte, SlotSize), &r); err == nil {
		t.Fatal("an empty slot decoded")
	}
}

func putHeader(s []byte, h uint64) {
	for i := 0; i < 8; i++ {
		s[i] = 0
	}
	*(*uint64)(ptr(s)) = h
}

func TestTooLong(t *testing.T) {
	tb, _ := open(t, filepath.Join(t.TempDir(), "inflight"), 1)
	defer tb.Close()
	s, _ := tb.Acquire()
	if err := tb.Intend(s, make([]byte, MaxToken+1), 1, nil); !errors.Is(err, ErrTooLong) {
		t.Fatalf("long token: %v", err)
	}
	if err := tb.Intend(s, make([]byte, MaxToken), 1, make([]byte, MaxTier)); err != nil {
		t.Fatal(err)
	}
	if err := tb.Ack(s, make([]byte, MaxResponse+1)); !errors.Is(err, ErrTooLong) {
		t.Fatalf("long response: %v", err)
	}
	if err := tb.Ack(s, make([]byte, MaxResponse)); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptFileRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inflight")
	os.WriteFile(path, []byte("not a table"), 0o600)
	if _, _, err := Open(path, 4); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of garbage: %v", err)
	}
}

// Acquire and Free from many goroutines: no slot is ever held twice.
func TestConcurrentAcquireFree(t *testing.T) {
	tb, _ := open(t, filepath.Join(t.TempDir(), "inflight"), 8)
	defer tb.Close()
	held := make([]sync.Mutex, 9)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20000; i++ {
				s, ok := tb.Acquire()
				if !ok {
					continue
				}
				if !held[s].TryLock() {
					t.Errorf("slot %d handed out twice", s)
					return
				}
				held[s].Unlock()
				tb.Free(s)
			}
		}()
	}
	wg.Wait()
	if tb.Len() != 0 {
		t.Fatalf("Len %d after all freed", tb.Len())
	}
	n := 0
	for {
		if _, ok := tb.Acquire(); !ok {
			break
		}
		n++
	}
	if n != 8 {
		t.Fatalf("%d slots acquirable after the storm, want 8", n)
	}
}

func BenchmarkIntendAckFree(b *testing.B) {
	tb, _, err := Open(filepath.Join(b.TempDir(), "inflight"), 4096)
	if err != nil {
		b.Fatal(err)
	}
	defer tb.Close()
	tok, tier, resp := []byte("0123456789abcdef0123456789abcdef"), []byte("primary-large"), bytes.Repeat([]byte{'r'}, 120)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s, _ := tb.Acquire()
		tb.Intend(s, tok, uint64(i), tier)
		tb.Ack(s, resp)
		tb.Free(s)
	}
}
