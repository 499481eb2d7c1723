// Package frontend is the daemon's front-end socket server: it accepts the
// front ends' connections on a Unix socket, reads frames, admits requests,
// runs each on its own goroutine through a Handler and writes the answers.
//
// It is its own concept because everything here is about connections and
// bytes, and nothing about tiers or sessions: what a request means is the
// Handler's business (the daemon's handler calls the router, package
// route); how many requests may go to the tiers at once is read through
// the Tiers interface; answered requests are reported to an Observer (the
// daemon's metrics). It imports neither the router nor the metrics.
//
// What it holds:
//
//   - two transports (transport_net.go, the default: the standard library,
//     one reader goroutine per connection, the lowest latency for a few
//     busy connections; transport_netpoll.go: cloudwego/netpoll, no
//     goroutine per idle connection), behind one transportConn interface;
//   - framing: the header first, a length above the frame bound refused
//     before the payload is read, the payload copied into pooled request
//     state (server.go);
//   - connection hygiene (conns.go): the read side's bounds, the idle
//     reaper, eviction at the connection bound, GOODBYE on refusal, the
//     peer allow-lists;
//   - admission (admission.go): the in-flight bounds, then a slot at the
//     tiers under an adaptive, latency-targeting limit, served fairly
//     across connections;
//   - flush-combined writes (server.go, through internal/flushq, the
//     scheme mux uses too): a handler appends its frame under the
//     connection's mutex and, if no flush runs, becomes the flusher; no
//     lock is held across the write. The answers a Handler holds (an
//     ALLOCATE's in-flight slot) travel with their bytes as flushq marks
//     and are settled once written, or when they never will be
//     (conn.WriteBatch). What is the front end's own stays here: the
//     politeAt yield, the queue bound, the reader never the flusher, the
//     write counts for stall detection.
//
// The request path holds no lock across I/O and allocates nothing in steady
// state: request state is pooled, the request and admission-wait deadlines
// are reusable (internal/deadline), the Handler's state is kept with the
// request state (Handler.NewState). Goroutines: the transport's readers,
// each request's handler goroutine, the reaper and the flusher goroutines
// the readers start; Shutdown stops and awaits them all.
package frontend
