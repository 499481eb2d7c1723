// Package telsim is a simulated telephony server: the reference
// implementation of the server side of switchboard's telephony protocol
// (package wire, docs/protocol.md), with faults that can be switched on and
// off while it runs.
//
// Why it exists: the daemon must be developed, tested, benchmarked and
// drilled without a real telephony bridge. The daemon's embedded default
// config has telsim/simhost start one Server per `sim://NAME` tier on
// 127.0.0.1:0 (cmd/switchboard hands the daemon that host), and the daemon dials it
// like any other server; load tests and fault drills run the same code as a
// process (cmd/telsim). Because it is the reference, it is strict where a
// client could get away with sloppiness elsewhere: every bound of the
// protocol is enforced, every reply is matched by request id, and replies to
// pipelined requests may go out of order.
//
// # Protocol
//
// A connection carries many requests at once. Each frame is read with
// wire.ReadFrame; a frame whose length exceeds Config.MaxFrame (checked
// before the payload is read), a bad version or flags, a frame cut short, or
// a response-flagged frame from the client closes the connection. A payload
// that does not decode (or an invalid spec, or key 0) is answered
// BAD_REQUEST with a message; an op outside the telephony protocol,
// UNSUPPORTED.
//
//   - HELLO → HelloResponse{Server, Tier, Load}; PING → Load (PONG).
//   - RESERVE (UpdateRequest) → Bridge: a unique bridge id, the server's toll
//     and toll-free call-in numbers (shared by its bridges, as on a real
//     bridge), an 8-digit host code and a 9-digit attendee code, random and
//     unique among live reservations. KEY_EXISTS for a key already held
//     (checked before capacity), CAPACITY at Config.Capacity.
//   - UPDATE (UpdateRequest) → Bridge, replacing spec and meta; NOT_FOUND.
//   - RELEASE (KeyRequest) → empty; NOT_FOUND. A RELEASE of a key the
//     server does not hold leaves a tombstone for Config.TombstoneTTL: a
//     RESERVE of that key arriving later (it was queued, or overtaken) is
//     refused KEY_EXISTS, so NOT_FOUND is final (the protocol's RELEASE
//     contract, docs/protocol.md). Tombstones are bounded (MaxTombstones).
//   - LOOKUP (KeyRequest) → Record{Bridge, Spec, Meta}; NOT_FOUND.
//
// Spec and meta are copied out of the request (its buffer is reused). The
// reservation table is shared by every connection of a server: 64 mutex
// shards, no lock held across I/O.
//
// Requests of a connection are executed in arrival order by its reader. A
// reply without latency is written at once and flushed when no further
// complete request is buffered, so a pipelined burst costs one write. A
// reply with latency (Config.Latency/Jitter for RESERVE, UPDATE, RELEASE and
// LOOKUP; the slow fault for everything) is sent by a goroutine of its own
// after the delay, so one slow reply delays no other. At most
// Config.MaxInFlight delayed replies are pending per connection; at that
// bound the reader stops reading until one is sent, which pushes back on the
// client through TCP; nothing is dropped. Writes to a connection are
// serialised by a mutex over a bufio.Writer, held only for the write.
//
// # Faults
//
// Server.SetFault switches the fault at run time; Mode documents what each
// does. In summary, with what a client observes:
//
//	none       normal service (listening again on the same port after down/flap)
//	down       listener and every connection closed: dials get ECONNREFUSED
//	refuse     every connection closed; new ones accepted and closed at once: EOF
//	reset      every connection reset, new ones too: ECONNRESET
//	blackhole  requests read and executed, never answered: the client times out
//	slow       every reply delayed by latency + [0, jitter)
//	errors     a fraction of requests answered INTERNAL, not executed
//	garbage    requests executed, replies undecodable (bad version/flags, junk payload)
//	cut        request executed, half its reply written, connection closed: EOF mid-frame
//	full       every RESERVE answered CAPACITY, not executed
//	flap       down and up alternately every period, starting down
//	queue      every RESERVE executed only after latency; other requests served at once
//
// In blackhole, garbage and cut the request is executed, as it would be on a
// real server whose answer is lost: the outcome is unknown to the client,
// which is the case the daemon's orphan handling exists for. In errors and
// full it is not: the server said no.
//
// # Control API
//
// Server.ControlHandler serves it in-process; `telsim -control ADDR` serves
// it on a listener. Bodies are JSON; durations are Go duration strings.
//
//	GET  /fault                 → 200 {"mode":"slow","latency":"5ms","jitter":"1ms"}
//	POST /fault                 {"mode":"slow","latency":"5ms","jitter":"1ms","fraction":0.5,"period":"1s"}
//	                            → 200 with the fault now in force (defaults filled in)
//	PUT  /fault/{mode}?latency=5ms&jitter=1ms&fraction=0.5&period=1s
//	                            → same as POST
//	GET  /stats                 → 200 Stats as JSON
//	GET  /reservations          → 200 [{"key":…,"bridge_id":"…","name":"…","meta":"base64"}, …]
//
// GET /reservations lists every live reservation, sorted by key, with the
// client's meta (base64, as JSON carries bytes): read-only, for tests and
// drills that must map each held bridge back to the session that asked for
// it (the crash test of cmd/switchboard does). It is a snapshot taken one
// table shard at a time, so under load it is not a single instant, but no
// reservation appears twice.
//
// Errors are {"error":"…"}: 400 for an invalid fault (unknown mode or
// parameter, negative duration, fraction outside [0, 1]), 503 after Close,
// 500 if listening again failed (the server keeps retrying every 100 ms).
// ControlClient is the Go client; `telsim fault` and `telsim stats` use it.
//
// # Lifecycle
//
// New starts nothing. Serve (or Start) owns the listener and a goroutine per
// connection; Close closes the listener and every connection, drops pending
// delayed replies and waits for every goroutine. A client that half-closes
// after its last request still gets every reply.
package telsim
