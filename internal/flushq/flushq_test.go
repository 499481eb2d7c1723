package flushq

import (
	"errors"
	"slices"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// batch is one WriteBatch call as recorded.
type batch struct {
	b      string
	frames int
	marks  []Mark[int]
}

// recorder writes batches into a log; fail makes the write with that index
// (counted from 1) fail after written bytes. onWrite, when set, runs in the
// write with no lock held (a writer appending meanwhile).
type recorder struct {
	q       *Queue[int]
	mu      *sync.Mutex
	pending *[]byte
	got     []batch
	fail    int
	written int
	onWrite func(n int)
}

func (r *recorder) WriteBatch(b []byte, frames int, marks []Mark[int]) (int, error) {
	r.got = append(r.got, batch{string(b), frames, slices.Clone(marks)})
	if r.onWrite != nil {
		r.onWrite(len(r.got))
	}
	if len(r.got) == r.fail {
		return r.written, errors.New("write failed")
	}
	return len(b), nil
}

func newQueue(maxKept int) (*Queue[int], *recorder) {
	r := &recorder{q: new(Queue[int]), mu: new(sync.Mutex), pending: new([]byte)}
	r.q.Init(r.mu, r.pending, r, maxKept)
	return r.q, r
}

// appendFrame appends s as one frame (marked with v when v != 0), with the
// mutex held, and reports whether the caller became the flusher.
func appendFrame(q *Queue[int], pending *[]byte, s string, v int) bool {
	*pending = append(*pending, s...)
	if v != 0 {
		q.AddedMarked(v)
	} else {
		q.Added()
	}
	return q.Claim()
}

// TestFramesAppendedDuringAWriteShareTheNext: the first writer becomes the
// flusher; frames appended while it writes (by writers that do not become
// flushers) go out together in its next write, with their marks' ends
// counted from the start of that batch; then the flush is over and the
// next writer becomes the flusher.
func TestFramesAppendedDuringAWriteShareTheNext(t *testing.T) {
	q, r := newQueue(0)
	r.onWrite = func(n int) {
		if n != 1 {
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if appendFrame(q, r.pending, "bb", 2) || appendFrame(q, r.pending, "ccc", 0) || appendFrame(q, r.pending, "d", 4) {
			t.Error("a writer became the flusher while a flush was running")
		}
	}
	r.mu.Lock()
	if !appendFrame(q, r.pending, "a", 1) {
		t.Fatal("the first writer did not become the flusher")
	}
	if res := q.Flush(0); res != (Result{}) {
		t.Fatalf("Flush: %+v, want it over", res)
	}
	if !appendFrame(q, r.pending, "e", 0) {
		t.Fatal("the flush is over, yet the next writer did not become the flusher")
	}
	q.Flush(0)
	r.mu.Unlock()
	want := []batch{
		{"a", 1, []Mark[int]{{1, 1}}},
		{"bbcccd", 3, []Mark[int]{{2, 2}, {4, 6}}},
		{"e", 1, nil},
	}
	if !equalBatches(r.got, want) {
		t.Fatalf("batches %+v, want %+v", r.got, want)
	}
}

// TestFlushStopsAfterRounds: with rounds > 0 the flusher writes at most
// that many batches; with more pending it stays the flusher (More) and
// whoever inherits the role finishes with Flush.
func TestFlushStopsAfterRounds(t *testing.T) {
	q, r := newQueue(0)
	r.onWrite = func(int) { // every write finds another frame appended
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.got) < 4 {
			appendFrame(q, r.pending, "x", 0)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	appendFrame(q, r.pending, "x", 0)
	if res := q.Flush(2); !res.More || res.Err != nil {
		t.Fatalf("Flush(2): %+v, want More", res)
	}
	if len(r.got) != 2 {
		t.Fatalf("%d writes, want 2", len(r.got))
	}
	if q.Claim() {
		t.Fatal("a writer became the flusher while the role was being handed over")
	}
	if res := q.Flush(0); res != (Result{}) {
		t.Fatalf("Flush(0): %+v, want it over", res)
	}
	if len(r.got) != 4 {
		t.Fatalf("%d writes, want 4", len(r.got))
	}
}

// TestFlushStopsAtAWriteError: a failed write stops the flush with its
// error, how much of it was written and its index; the caller is still the
// flusher until End, and what was appended meanwhile is still pending.
func TestFlushStopsAtAWriteError(t *testing.T) {
	q, r := newQueue(0)
	r.fail, r.written = 2, 1
	r.onWrite = func(n int) {
		if n == 1 {
			r.mu.Lock()
			appendFrame(q, r.pending, "bb", 0)
			r.mu.Unlock()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	appendFrame(q, r.pending, "a", 0)
	res := q.Flush(0)
	if res.Err == nil || res.Written != 1 || res.Batch != 1 || res.More {
		t.Fatalf("Flush: %+v, want the second batch's error with 1 byte written", res)
	}
	appendFrame(q, r.pending, "c", 0)
	if q.Claim() {
		t.Fatal("a writer became the flusher before End")
	}
	q.Discard()
	q.End()
	if !appendFrame(q, r.pending, "d", 0) {
		t.Fatal("after End the next writer did not become the flusher")
	}
	q.Flush(0)
	if last := r.got[len(r.got)-1]; last.b != "d" || last.frames != 1 {
		t.Fatalf("after Discard the next write was %+v, want only d", last)
	}
}

// TestTakeBack: a frame taken back before the write is not written, and
// the marks after it are shifted.
func TestTakeBack(t *testing.T) {
	q, r := newQueue(0)
	r.mu.Lock()
	defer r.mu.Unlock()
	appendFrame(q, r.pending, "aa", 1)
	start := len(*r.pending)
	appendFrame(q, r.pending, "bbb", 2)
	end := len(*r.pending)
	appendFrame(q, r.pending, "c", 3)
	q.TakeBack(start, end)
	q.Flush(0)
	want := []batch{{"aac", 2, []Mark[int]{{1, 2}, {3, 3}}}}
	if !equalBatches(r.got, want) {
		t.Fatalf("batches %+v, want %+v", r.got, want)
	}
}

// TestNoAllocationOnceWarm: appending and flushing reuse the two buffers
// (and the two mark slices): nothing is allocated per write.
func TestNoAllocationOnceWarm(t *testing.T) {
	q := new(Queue[int])
	var mu sync.Mutex
	var pending []byte
	q.Init(&mu, &pending, discard{}, 0)
	frame := make([]byte, 64)
	round := func() {
		mu.Lock()
		for i := range 4 {
			pending = append(pending, frame...)
			q.AddedMarked(i + 1)
			q.Claim()
		}
		q.Flush(0)
		mu.Unlock()
	}
	round()
	round()
	if n := testing.AllocsPerRun(100, round); n != 0 {
		t.Fatalf("%v allocations per round, want 0", n)
	}
}

// TestMaxKept: a buffer grown past maxKept is dropped after its write.
func TestMaxKept(t *testing.T) {
	q := new(Queue[struct{}])
	var mu sync.Mutex
	var pending []byte
	q.Init(&mu, &pending, discardNone{}, 16)
	mu.Lock()
	defer mu.Unlock()
	pending = append(pending, make([]byte, 32)...)
	q.Added()
	q.Claim()
	q.Flush(0)
	if q.spare != nil {
		t.Fatalf("a %d-byte buffer was kept, over maxKept 16", cap(q.spare))
	}
}

type discard struct{}

func (discard) WriteBatch(b []byte, _ int, _ []Mark[int]) (int, error) { return len(b), nil }

type discardNone struct{}

func (discardNone) WriteBatch(b []byte, _ int, _ []Mark[struct{}]) (int, error) {
	return len(b), nil
}

func equalBatches(a, b []batch) bool {
	return slices.EqualFunc(a, b, func(x, y batch) bool {
		return x.b == y.b && x.frames == y.frames && slices.Equal(x.marks, y.marks)
	})
}
