package flushq

import (
	"runtime"
	"sync"
)

// Writer writes the batches of a Queue.
type Writer[M any] interface {
	// WriteBatch writes b, which holds frames frames; marks are those of
	// its frames that carry metadata, with where each ends in b. It is
	// called by the flusher with no lock held. It returns how much of b
	// may have reached the peer; an error stops the flush (Flush returns
	// it). b and marks are valid during the call only.
	WriteBatch(b []byte, frames int, marks []Mark[M]) (written int, err error)
}

// Mark is the metadata of one queued frame: Val, and End, where the frame
// ends in its buffer.
type Mark[M any] struct {
	Val M
	End int
}

// Queue is the flush-combining state of one connection. The zero value is
// not usable: Init it. Every method is called with the owner's mutex held.
type Queue[M any] struct {
	mu      *sync.Mutex
	w       Writer[M]
	maxKept int

	pending *[]byte // the owner's pending buffer, which frames are appended to
	spare   []byte  // the other buffer, while not being written
	frames  int     // frames in pending
	marks   []Mark[M]
	spareM  []Mark[M]
	// flushing: a flusher is writing, or about to; the others only append.
	flushing bool
}

// Init sets up q: mu is the owner's mutex, guarding q; pending is the
// owner's buffer frames are appended to (in place: a frame may be encoded
// straight into it); w writes the batches. A buffer of a capacity over
// maxKept is dropped after its write instead of being kept for reuse (0:
// all are kept).
func (q *Queue[M]) Init(mu *sync.Mutex, pending *[]byte, w Writer[M], maxKept int) {
	q.mu, q.pending, q.w, q.maxKept = mu, pending, w, maxKept
}

// Added records that one frame has been appended to the pending buffer.
func (q *Queue[M]) Added() { q.frames++ }

// AddedMarked is Added for a frame that carries v: v travels with the
// frame's bytes to the Writer, whose marks say where the frame ends.
func (q *Queue[M]) AddedMarked(v M) {
	q.frames++
	q.marks = append(q.marks, Mark[M]{Val: v, End: len(*q.pending)})
}

// Claim makes the caller the flusher, if no flush is running: then it must
// call Flush (or hand the role to a goroutine that will). False: the
// running flusher writes what the caller appended.
func (q *Queue[M]) Claim() bool {
	if q.flushing {
		return false
	}
	q.flushing = true
	return true
}

// Yield lets goroutines about to append run first, so their frames join
// the flusher's next write: it unlocks, yields the processor once and
// re-locks. Only the flusher calls it; the others only append meanwhile.
func (q *Queue[M]) Yield() {
	q.mu.Unlock()
	runtime.Gosched()
	q.mu.Lock()
}

// TakeBack removes from the pending buffer the frame appended at
// [start, end), which has not been written: a writer that gave up before
// its frame went out. Only the flusher may call it (no swap has moved the
// frame since it was appended). The frame's mark, if any, is dropped: its
// metadata is the caller's to settle.
func (q *Queue[M]) TakeBack(start, end int) {
	*q.pending = append((*q.pending)[:start], (*q.pending)[end:]...)
	q.frames--
	kept := q.marks[:0]
	for _, m := range q.marks {
		switch {
		case m.End <= start:
		case m.End <= end:
			continue
		default:
			m.End -= end - start
		}
		kept = append(kept, m)
	}
	q.marks = kept
}

// Discard drops everything pending (the connection is dead). Marks are
// dropped with it: their metadata is the caller's to settle first.
func (q *Queue[M]) Discard() {
	*q.pending = (*q.pending)[:0]
	q.frames = 0
	clear(q.marks)
	q.marks = q.marks[:0]
}

// End ends the flush without writing what is pending (after a failed
// write, Flush returned the error); the next Claim makes a new flusher.
func (q *Queue[M]) End() { q.flushing = false }

// Result is how a Flush ended. Err == nil and !More: nothing was left
// pending and the flush is over. Otherwise the caller is still the flusher.
type Result struct {
	// Err is the error of the write that stopped the flush; Written is
	// how much of that batch may have reached the peer and Batch its
	// index among the batches of this Flush (0: the first).
	Err     error
	Written int
	Batch   int
	// More: the flush stopped after rounds writes with more pending.
	More bool
}

// Flush writes what is pending, batch after batch, until nothing is: it
// takes the pending buffer (the spare one becomes the pending buffer),
// unlocks, hands the batch to the Writer, re-locks and starts over. Then
// the flush is over (the next Claim makes a new flusher). It stops early,
// the caller still the flusher, at a write error, or after rounds writes
// (rounds > 0) with more pending. Called by the flusher with the mutex
// held; returns with it held.
func (q *Queue[M]) Flush(rounds int) Result {
	for n := 0; len(*q.pending) > 0; n++ {
		if n == rounds && rounds > 0 {
			return Result{More: true}
		}
		out, frames, marks := *q.pending, q.frames, q.marks
		*q.pending, q.frames, q.marks = q.spare[:0], 0, q.spareM[:0]
		q.spare, q.spareM = nil, nil
		q.mu.Unlock()
		written, err := q.w.WriteBatch(out, frames, marks)
		clear(marks)
		q.mu.Lock()
		if q.maxKept == 0 || cap(out) <= q.maxKept {
			q.spare = out[:0]
		}
		q.spareM = marks[:0]
		if err != nil {
			return Result{Err: err, Written: written, Batch: n}
		}
	}
	q.flushing = false
	return Result{}
}
