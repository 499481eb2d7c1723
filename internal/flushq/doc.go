// Package flushq is flush-combining, the write scheme of the connections
// many goroutines write frames on (mux's requests, the front-end server's
// answers): no writer goroutine, no lock held across a write, and
// concurrent writers sharing one write syscall.
//
// A writer appends its frame to the connection's pending buffer under the
// connection's mutex and asks Claim whether it is now the flusher. If a
// flush is running, the flusher will write the frame and the writer is
// done. If not, it becomes the flusher and calls Flush, which takes the
// pending buffer (the spare one becomes the new pending buffer), unlocks,
// hands the batch to the connection's Writer, re-locks, and repeats until
// nothing is pending. The two buffers swap back and forth, so a steady
// stream of writes allocates nothing.
//
// Frames may carry metadata (Mark: a front-end answer's held slot) that
// travels with where the frame ends in its batch, so the Writer can tell
// which frames a short write delivered whole. A writer that gives up
// before its frame was written may take it back (TakeBack).
//
// What differs between the two users stays with them, as arguments and in
// their Writer: when to yield the processor before writing (Yield), how
// many batches a caller writes before handing the flush over (Flush's
// rounds), deadlines, what a failed write means. The Writer is stored once
// (Init), a method set rather than a closure, so nothing is allocated per
// write; it runs with no lock held.
//
// The queue is guarded by its owner's mutex, which usually guards more
// (mux's waiting calls): every method is called with it held.
package flushq
