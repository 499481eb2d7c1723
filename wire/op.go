package wire

import "strconv"

// Op is a frame's operation code. Front-end ops live in 0x01–0x0F and
// telephony ops in 0x10–0x1F, so a frame sent to the wrong listener is
// recognisably foreign.
type Op uint8

// OpGoodbye is the daemon's one unsolicited frame on the front-end socket:
// a response (flags 01) with request id 0 and a non-OK status whose
// ErrorMessage says why, written as the only frame of a connection the
// daemon refuses at accept (at server.max_conns or max_conns_per_uid),
// before it closes it. The daemon read nothing from that connection, so no
// request sent on it was executed: a client may resend every one of them on
// a new connection (docs/protocol.md §2.3). It answers no request.
const OpGoodbye Op = 0x00

// Front-end protocol (front end ↔ daemon).
const (
	OpPing     Op = 0x01 // liveness; empty payloads
	OpAllocate Op = 0x02 // AllocateRequest → AllocateResponse
	OpLookup   Op = 0x03 // KeyRequest → Reservation
	OpUpdate   Op = 0x04 // UpdateRequest → Reservation
	OpRelease  Op = 0x05 // KeyRequest → empty
)

// Telephony protocol (daemon ↔ telephony server).
const (
	OpHello      Op = 0x10 // Hello → HelloResponse
	OpTelPing    Op = 0x11 // PING: empty → Load (the response is called PONG)
	OpReserve    Op = 0x12 // UpdateRequest → Bridge
	OpTelUpdate  Op = 0x13 // UpdateRequest → Bridge
	OpTelRelease Op = 0x14 // KeyRequest → empty
	OpTelLookup  Op = 0x15 // KeyRequest → Record
)

// IsFrontEnd reports whether op belongs to the front-end protocol.
func (op Op) IsFrontEnd() bool { return op >= OpPing && op <= OpRelease }

// IsTelephony reports whether op belongs to the telephony protocol.
func (op Op) IsTelephony() bool { return op >= OpHello && op <= OpTelLookup }

// String returns the op's protocol name.
func (op Op) String() string {
	switch op {
	case OpGoodbye:
		return "GOODBYE"
	case OpPing:
		return "PING"
	case OpAllocate:
		return "ALLOCATE"
	case OpLookup:
		return "LOOKUP"
	case OpUpdate:
		return "UPDATE"
	case OpRelease:
		return "RELEASE"
	case OpHello:
		return "HELLO"
	case OpTelPing:
		return "TPING"
	case OpReserve:
		return "RESERVE"
	case OpTelUpdate:
		return "TUPDATE"
	case OpTelRelease:
		return "TRELEASE"
	case OpTelLookup:
		return "TLOOKUP"
	}
	return "OP_" + strconv.Itoa(int(op))
}
