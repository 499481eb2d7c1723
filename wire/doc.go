// Package wire holds the framing and the message codecs of switchboard's two
// binary protocols: the front-end protocol (front end ↔ daemon, over a Unix
// socket) and the telephony protocol (daemon ↔ telephony server, over TCP).
//
// Both protocols share one frame layout (docs/protocol.md specifies every
// byte): a 4-byte big-endian length, a version, an op code, flags, a status
// and a 64-bit request id, then the payload. The request id lets many requests
// share one connection and be answered out of order.
//
// The package is the contract between the daemon, its Go client, the telephony
// simulator and any front end written in another language, so it imports
// nothing else of switchboard's and is kept small and boring:
//
//   - Encoding appends to a caller-owned buffer (AppendTo), so a reused buffer
//     makes it allocation-free.
//   - Decoding fills a caller-owned struct whose []byte fields alias the frame
//     (Decode); nothing is copied and nothing allocates. A caller that keeps a
//     field past the frame's lifetime copies it.
//   - The frame length is checked against a maximum before any payload byte is
//     read (ParseHeader, ReadFrame): a peer never makes us buffer more than we
//     allow.
//   - Every variable-length field has a documented bound that both sides check.
//
// Status codes are errors: a wire.Status implements error, so callers match
// them with errors.Is(err, wire.StatusNotFound), and a RemoteError carries the
// peer's message while unwrapping to its Status.
package wire
