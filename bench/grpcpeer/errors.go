package grpcpeer

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "switchboard/bench/grpcpeer/peerpb"
)

// Bounds of the messages: the same as the wire protocol's, so all three
// services refuse the same requests.
const (
	MaxToken    = 128      // idempotency token, bytes
	MaxName     = 2048     // conference name, bytes
	MaxMeta     = 32 << 10 // opaque meeting record, bytes
	MaxInterval = 1 << 15  // recurrence interval
)

// Sentinel errors, carried as gRPC status codes. Match them with errors.Is
// on the error of a Client or of the front's stub calls.
var (
	ErrBadRequest  = errors.New("grpcpeer: bad request")         // InvalidArgument
	ErrNotFound    = errors.New("grpcpeer: no such reservation") // NotFound
	ErrKeyExists   = errors.New("grpcpeer: key already held")    // AlreadyExists
	ErrCapacity    = errors.New("grpcpeer: capacity full")       // ResourceExhausted
	ErrUnavailable = errors.New("grpcpeer: telephony unavailable")
	ErrClosed      = errors.New("grpcpeer: closed")
)

// codeOf maps an error to its status code.
func codeOf(err error) codes.Code {
	switch {
	case errors.Is(err, ErrBadRequest):
		return codes.InvalidArgument
	case errors.Is(err, ErrNotFound):
		return codes.NotFound
	case errors.Is(err, ErrKeyExists):
		return codes.AlreadyExists
	case errors.Is(err, ErrCapacity):
		return codes.ResourceExhausted
	case errors.Is(err, ErrUnavailable):
		return codes.Unavailable
	}
	return codes.Internal
}

// toStatus turns an error of a handler into the status error gRPC sends.
func toStatus(err error) error { return status.Error(codeOf(err), err.Error()) }

// fromStatus turns the error of a call back into its sentinel, wrapped with
// the server's message. Unavailable and DeadlineExceeded (no answer in
// time) are ErrUnavailable; a canceled call keeps context.Canceled.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var s error
	switch st.Code() {
	case codes.InvalidArgument:
		s = ErrBadRequest
	case codes.NotFound:
		s = ErrNotFound
	case codes.AlreadyExists:
		s = ErrKeyExists
	case codes.ResourceExhausted:
		s = ErrCapacity
	case codes.Unavailable, codes.DeadlineExceeded:
		s = ErrUnavailable
	case codes.Canceled:
		s = context.Canceled
	default:
		return err
	}
	return fmt.Errorf("%w (%s: %s)", s, st.Code(), st.Message())
}

// validateSpec applies the checks wire.Spec.Validate applies.
func validateSpec(s *pb.Spec) error {
	if s == nil {
		return fmt.Errorf("%w: no spec", ErrBadRequest)
	}
	r := s.GetRepeat()
	switch {
	case len(s.Name) > MaxName:
		return fmt.Errorf("%w: name is %d bytes, at most %d", ErrBadRequest, len(s.Name), MaxName)
	case s.TimeZone < -1 || s.TimeZone > 61:
		return fmt.Errorf("%w: time zone %d not in -1..61", ErrBadRequest, s.TimeZone)
	case s.Tone > 3:
		return fmt.Errorf("%w: tone %d", ErrBadRequest, s.Tone)
	case r.GetKind() > 3:
		return fmt.Errorf("%w: repeat kind %d", ErrBadRequest, r.GetKind())
	case r.GetInterval() > MaxInterval:
		return fmt.Errorf("%w: repeat interval %d", ErrBadRequest, r.GetInterval())
	case r.GetDays() > 0x7f:
		return fmt.Errorf("%w: repeat days %#x", ErrBadRequest, r.GetDays())
	case r.GetDayOfMonth() > 31:
		return fmt.Errorf("%w: day of month %d", ErrBadRequest, r.GetDayOfMonth())
	case r.GetWeekOfMonth() > 6:
		return fmt.Errorf("%w: week of month %d", ErrBadRequest, r.GetWeekOfMonth())
	}
	return nil
}
