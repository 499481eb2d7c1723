package wire

import "strconv"

// Status is the outcome carried in a response header. StatusOK is success;
// every other value is an error code. Status implements error so that callers
// write errors.Is(err, wire.StatusCapacity).
type Status uint8

// Status codes shared by both protocols. Which codes each protocol uses is
// listed in docs/protocol.md; a receiver treats an unknown code as
// StatusInternal.
const (
	StatusOK            Status = 0
	StatusBadRequest    Status = 1  // malformed or invalid request; not retryable
	StatusNotFound      Status = 2  // no reservation under that key
	StatusUnavailable   Status = 3  // front end: no tier could serve
	StatusCapacity      Status = 4  // every tier (front end) or this server (telephony) is full
	StatusOverloaded    Status = 5  // front end: shed by the daemon's admission limit
	StatusKeysExhausted Status = 6  // front end: the key domain is used up (or the lease store failed)
	StatusTimeout       Status = 7  // front end: the request's deadline passed
	StatusInternal      Status = 8  // a bug or an unexpected failure
	StatusKeyExists     Status = 9  // telephony: a reservation already holds this key
	StatusDraining      Status = 10 // telephony: the server takes no new reservations
	StatusUnsupported   Status = 11 // unknown op for this version
)

var statusNames = [...]string{
	StatusOK:            "OK",
	StatusBadRequest:    "BAD_REQUEST",
	StatusNotFound:      "NOT_FOUND",
	StatusUnavailable:   "UNAVAILABLE",
	StatusCapacity:      "CAPACITY",
	StatusOverloaded:    "OVERLOADED",
	StatusKeysExhausted: "KEYS_EXHAUSTED",
	StatusTimeout:       "TIMEOUT",
	StatusInternal:      "INTERNAL",
	StatusKeyExists:     "KEY_EXISTS",
	StatusDraining:      "DRAINING",
	StatusUnsupported:   "UNSUPPORTED",
}

// String returns the code's protocol name, e.g. "NOT_FOUND".
func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "STATUS_" + strconv.Itoa(int(s))
}

// Error makes a Status usable as an error value.
func (s Status) Error() string { return "wire: " + s.String() }

// Known reports whether s is a code of this protocol version.
func (s Status) Known() bool { return int(s) < len(statusNames) }

// ParseStatus maps a protocol name back to its code.
func ParseStatus(name string) (Status, bool) {
	for i, n := range statusNames {
		if n == name {
			return Status(i), true
		}
	}
	return 0, false
}

// RemoteError is an error response received from a peer: its status and the
// peer's message. errors.Is(err, wire.StatusX) matches on the status.
type RemoteError struct {
	Status  Status
	Message string
}

func (e *RemoteError) Error() string {
	if e.Message == "" {
		return e.Status.String()
	}
	return e.Status.String() + ": " + e.Message
}

// Unwrap returns the Status.
func (e *RemoteError) Unwrap() error { return e.Status }

// DecodeError turns an error response's payload into a *RemoteError.
func DecodeError(s Status, payload []byte) error {
	var m ErrorMessage
	if err := m.Decode(payload); err != nil {
		return &RemoteError{Status: s}
	}
	return &RemoteError{Status: s, Message: string(m.Message)}
}
