package xmlapi

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"switchboard/wire"
)

// Sentinel errors. Match them with errors.Is.
var (
	// ErrConfig wraps every configuration error.
	ErrConfig = errors.New("xmlapi: invalid configuration")
	// ErrBadHash: a password hash is neither bcrypt ($2a$, $2b$, $2y$) nor
	// argon2id in PHC form ($argon2id$v=19$m=…,t=…,p=…$salt$hash).
	ErrBadHash = errors.New("xmlapi: unsupported or malformed password hash")
	// ErrRecord: a meta blob is not a meeting record this version can read.
	ErrRecord = errors.New("xmlapi: not a meeting record")
	// ErrRecordVersion: a meeting record written by a newer, incompatible
	// front end.
	ErrRecordVersion = errors.New("xmlapi: meeting record version not supported")
)

// Exception IDs carried in serv:exceptionID on FAILURE.
//
// WebEx never published a complete table (docs/webex-xml.md §8.2, §9.1), so
// the IDs fall in two groups:
//
//   - IDs the real service is known to return, reused with the same meaning:
//     000000, 000001, 000035, 030002, 030047, 060001.
//   - IDs of our own for conditions the real service has no known ID for.
//     They sit in the 0699xx block, which no known WebEx ID uses (its IDs
//     appear to be grouped 00xxxx system, 03xxxx user, 06xxxx meeting), and
//     999999 for an internal error.
//
// A client should key on the ID, never on the reason text (which WebEx
// documents as "subject to change" and which names the offending element
// here).
const (
	// ExcForward: the document cannot be routed: not well-formed XML, too
	// large, nested too deep, an unsupported character encoding, no
	// bodyContent, no or an unsupported operation. The real service answers
	// "Fail to forward request:null" (docs/webex-xml.md §2.4).
	ExcForward = "000000"
	// ExcAccessDenied: the caller is not the host of the session, or asks to
	// schedule for another host.
	ExcAccessDenied = "000001"
	// ExcNotResponding: the switchboard daemon did not answer: socket down,
	// connection lost, or the request's deadline passed (daemon TIMEOUT).
	ExcNotResponding = "000035"
	// ExcAuth: incorrect user or password, or an incomplete securityContext.
	ExcAuth = "030002"
	// ExcTicket: the sessionTicket is not one this front end issued to
	// that account, was altered, or has expired (TicketTTL after
	// AuthenticateUser). The client signs in again with AuthenticateUser.
	ExcTicket = "030047"
	// ExcNotFound: no meeting under that session key.
	ExcNotFound = "060001"
	// ExcInvalid: an element's value breaks the schema's constraints (the
	// reason names the element), or the daemon answered BAD_REQUEST.
	ExcInvalid = "069900"
	// ExcUnavailable: no telephony tier could serve (daemon UNAVAILABLE).
	ExcUnavailable = "069901"
	// ExcCapacity: every telephony tier is full (daemon CAPACITY).
	ExcCapacity = "069902"
	// ExcOverloaded: the daemon shed the request, or refused the front
	// end's connections (a GOODBYE at its max_conns) until the request's
	// deadline; retry after a backoff (daemon OVERLOADED: "busy, retry"). Distinct from ExcUnavailable on
	// purpose: the telephony tiers may be fine, only the daemon's queue is
	// full. The response carries Retry-After: 1.
	ExcOverloaded = "069903"
	// ExcKeysExhausted: the daemon cannot issue session keys (daemon
	// KEYS_EXHAUSTED: key domain used up or its lease store failing).
	ExcKeysExhausted = "069904"
	// ExcTooLarge: the meeting record exceeds the 32 KiB the daemon stores
	// (wire.MaxMeta), usually because of very long attendee lists.
	ExcTooLarge = "069905"
	// ExcBusy: the sign-in service is busy: no password check (bcrypt,
	// argon2id) could start within auth.hash_wait because
	// auth.max_concurrent_hashes checks were already running. Nothing was
	// decided about the credentials and the daemon was not called; retry
	// after a backoff (the response carries Retry-After: 1). Never 000035:
	// the daemon is not at fault.
	ExcBusy = "069906"
	// ExcThrottled: too many failed sign-ins lately for the claimed
	// account name or from the client's address; retry after the number of
	// seconds in the Retry-After header (also in the reason). The password
	// was not checked.
	ExcThrottled = "069907"
	// ExcInternal: a bug, a daemon INTERNAL or an unknown daemon status, or
	// a stored record this front end cannot read.
	ExcInternal = "999999"
)

// Fault is a FAILURE to answer: its exception ID and reason. The element
// path, when the fault is about one element, is also kept apart so that it
// can be logged without the reason text (which may quote request content).
type Fault struct {
	ID     string // exception ID, one of the Exc constants
	Reason string // human-readable reason, sent to the client
	Elem   string // offending element path, e.g. "schedule/startDate"; may be empty
	// RetryAfter, when positive, is sent as the Retry-After header (seconds).
	RetryAfter int
}

func (f *Fault) Error() string { return "xmlapi: " + f.ID + " " + f.Reason }

func forwardFault(format string, args ...any) *Fault {
	return &Fault{ID: ExcForward, Reason: "Fail to forward request: " + fmt.Sprintf(format, args...)}
}

func invalidFault(elem, format string, args ...any) *Fault {
	return &Fault{ID: ExcInvalid, Elem: elem, Reason: "Invalid " + elem + ": " + fmt.Sprintf(format, args...)}
}

var (
	faultAuth     = &Fault{ID: ExcAuth, Reason: "Incorrect user or password"}
	faultTicket   = &Fault{ID: ExcTicket, Reason: "Not a valid session ticket", Elem: "securityContext/sessionTicket"}
	faultNotFound = &Fault{ID: ExcNotFound, Reason: "Corresponding Meeting not found"}
	faultDenied   = &Fault{ID: ExcAccessDenied, Reason: "Access denied, additional privileges are required"}
	faultBusy     = &Fault{ID: ExcBusy, Reason: "Sign-in service busy, retry later", RetryAfter: 1}
)

// throttledFault is the ExcThrottled FAILURE for a login refused for wait.
func throttledFault(wait time.Duration) *Fault {
	s := int((wait + time.Second - 1) / time.Second)
	return &Fault{ID: ExcThrottled, RetryAfter: s,
		Reason: "Too many failed sign-ins, retry in " + strconv.Itoa(s) + " s"}
}

// backendFault maps an error of the daemon client to the FAILURE a WebEx
// client gets. Every error that is not an answer of the daemon (dial
// refused, connection lost, deadline passed, client closed) means the
// backend is not responding.
func backendFault(err error) *Fault {
	var re *wire.RemoteError
	if !errors.As(err, &re) {
		var st wire.Status
		if !errors.As(err, &st) {
			if errors.Is(err, context.Canceled) {
				return &Fault{ID: ExcNotResponding, Reason: "Request cancelled"}
			}
			return &Fault{ID: ExcNotResponding, Reason: "Telephony allocation service not responding"}
		}
		re = &wire.RemoteError{Status: st}
	}
	switch re.Status {
	case wire.StatusNotFound:
		return faultNotFound
	case wire.StatusUnavailable:
		return &Fault{ID: ExcUnavailable, Reason: "No telephony server is available"}
	case wire.StatusCapacity:
		return &Fault{ID: ExcCapacity, Reason: "Every telephony server is full"}
	case wire.StatusOverloaded:
		return &Fault{ID: ExcOverloaded, Reason: "Telephony allocation service overloaded, retry later", RetryAfter: 1}
	case wire.StatusKeysExhausted:
		return &Fault{ID: ExcKeysExhausted, Reason: "No session key can be issued"}
	case wire.StatusTimeout:
		return &Fault{ID: ExcNotResponding, Reason: "Telephony allocation service not responding in time"}
	case wire.StatusBadRequest:
		return &Fault{ID: ExcInvalid, Reason: "Request rejected by the telephony allocation service"}
	}
	return &Fault{ID: ExcInternal, Reason: "Internal error"}
}
