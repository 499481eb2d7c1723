package daemon

import (
	"context"

	"switchboard/frontend"
	"switchboard/inflight"
	"switchboard/route"
	"switchboard/wire"
)

// handler is the front-end server's Handler: it decodes a request and hands
// it to the router. It is the only place where the server's view (ops,
// payloads, held answers) meets the router's (decoded requests, in-flight
// slots).
type handler struct{ rt *route.Router }

// handlerState is one request's memory in the handler: its decoded
// message and the router's scratch.
type handlerState struct {
	areq wire.AllocateRequest
	ureq wire.UpdateRequest
	kreq wire.KeyRequest
	rt   route.Scratch
}

func (h handler) NewState() any { return &handlerState{} }

func (h handler) Handle(ctx context.Context, state any, req frontend.Request, out []byte) ([]byte, frontend.Held, error) {
	st := state.(*handlerState)
	rt := st.rt
	rt.Reset()
	*st = handlerState{rt: rt}
	st.rt.Polite = req.Polite
	var err error
	switch req.Op {
	case wire.OpAllocate:
		if err = st.areq.Decode(req.Payload); err == nil {
			out, err = h.rt.Allocate(ctx, &st.rt, &st.areq, out)
		}
	case wire.OpLookup:
		if err = st.kreq.Decode(req.Payload); err == nil {
			out, err = h.rt.Lookup(ctx, &st.rt, st.kreq.Key, out)
		}
	case wire.OpUpdate:
		if err = st.ureq.Decode(req.Payload); err == nil {
			out, err = h.rt.Update(ctx, &st.rt, &st.ureq, out)
		}
	case wire.OpRelease:
		if err = st.kreq.Decode(req.Payload); err == nil {
			out, err = h.rt.Release(ctx, &st.rt, st.kreq.Key, out)
		}
	}
	return out, frontend.Held(st.rt.Slot), err
}

// Settle frees the in-flight slot of an answer handed to the kernel, or
// releases the allocation of one that never will be.
func (h handler) Settle(held frontend.Held, delivered bool) {
	if delivered {
		h.rt.Delivered(inflight.Slot(held))
	} else {
		h.rt.Undelivered(inflight.Slot(held))
	}
}

func (h handler) StatusOf(err error) (wire.Status, string) { return route.StatusOf(err) }
