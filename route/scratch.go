package route

import (
	"switchboard/inflight"
	"switchboard/internal/deadline"
	"switchboard/wire"
)

// Scratch is one request's working memory in the router: decoded messages,
// buffers for the index and the attempt deadline. The caller keeps it in
// its own pooled per-request state and passes it to every Router call of
// the request, so steady-state requests reuse memory instead of allocating
// it. Only the router writes it, except for Polite, which the caller sets
// before the call; the caller reads Slot after Allocate.
//
// A Scratch is used by one request at a time; Reset readies it for the
// next one, keeping its buffers.
type Scratch struct {
	// Polite: the request's connection has at most a couple of requests
	// unanswered; its RESERVE is written without yielding
	// (pool.RoundTripOnNow). Set by the caller.
	Polite bool
	// Slot is the in-flight record of the allocation just answered (0:
	// none). The caller must hand it, once the answer's bytes are written
	// or known lost, to Router.Delivered or Router.Undelivered.
	Slot inflight.Slot

	token   []byte // the request's idempotency token, for Slot
	scratch []byte
	cached  []byte
	kbuf    []byte
	ureq    wire.UpdateRequest
	kreq    wire.KeyRequest
	res     wire.Reservation
	unasked []orphan // servers a LOOKUP could not reach (locate)
	// adl bounds one tier attempt (and a wait for a full tier's slot); it
	// keeps its timer and channel from one request to the next.
	adl deadline.Deadline
}

// Reset readies sc for the next request, keeping its buffers and timer.
func (sc *Scratch) Reset() {
	*sc = Scratch{scratch: sc.scratch[:0], cached: sc.cached[:0], kbuf: sc.kbuf[:0], adl: sc.adl}
}
