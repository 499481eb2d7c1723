package httpbaseline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// Bounds of the JSON messages: the same as the wire protocol's, so both
// services refuse the same requests.
const (
	MaxToken    = 128      // idempotency token, bytes
	MaxName     = 2048     // conference name, bytes
	MaxMeta     = 32 << 10 // opaque meeting record, bytes
	MaxInterval = 1 << 15  // recurrence interval
	// maxBody bounds a request body: MaxMeta base64-encoded plus the rest.
	maxBody = 64 << 10
)

// Sentinel errors of both HTTP hops, carried as status codes. Match them
// with errors.Is on the error of a Client or of the daemon's stub calls.
var (
	ErrBadRequest  = errors.New("httpbaseline: bad request")         // 400
	ErrNotFound    = errors.New("httpbaseline: no such reservation") // 404
	ErrKeyExists   = errors.New("httpbaseline: key already held")    // 409
	ErrCapacity    = errors.New("httpbaseline: capacity full")       // 507
	ErrUnavailable = errors.New("httpbaseline: telephony unavailable")
	ErrClosed      = errors.New("httpbaseline: closed")
)

// Recurrence describes how a conference repeats (wire.Recurrence in JSON).
type Recurrence struct {
	Kind        uint8  `json:"kind"`
	Interval    uint16 `json:"interval"`
	Until       int64  `json:"until"`
	Days        uint8  `json:"days"`
	DayOfMonth  uint8  `json:"day_of_month"`
	WeekOfMonth uint8  `json:"week_of_month"`
}

// Spec is what a telephony bridge needs to know (wire.Spec in JSON).
type Spec struct {
	Name             string     `json:"name"`
	Start            int64      `json:"start"`
	TimeZone         int16      `json:"time_zone"`
	Duration         uint32     `json:"duration"`
	Tone             uint8      `json:"tone"`
	Repeat           Recurrence `json:"repeat"`
	FullAttendees    uint32     `json:"full_attendees"`
	LimitedAttendees uint32     `json:"limited_attendees"`
}

// validate applies the checks wire.Spec.Validate applies.
func (s *Spec) validate() error {
	switch {
	case len(s.Name) > MaxName:
		return fmt.Errorf("%w: name is %d bytes, at most %d", ErrBadRequest, len(s.Name), MaxName)
	case s.TimeZone < -1 || s.TimeZone > 61:
		return fmt.Errorf("%w: time zone %d not in -1..61", ErrBadRequest, s.TimeZone)
	case s.Tone > 3:
		return fmt.Errorf("%w: tone %d", ErrBadRequest, s.Tone)
	case s.Repeat.Kind > 3:
		return fmt.Errorf("%w: repeat kind %d", ErrBadRequest, s.Repeat.Kind)
	case s.Repeat.Interval > MaxInterval:
		return fmt.Errorf("%w: repeat interval %d", ErrBadRequest, s.Repeat.Interval)
	case s.Repeat.Days&0x80 != 0:
		return fmt.Errorf("%w: repeat days %#x", ErrBadRequest, s.Repeat.Days)
	case s.Repeat.DayOfMonth > 31:
		return fmt.Errorf("%w: day of month %d", ErrBadRequest, s.Repeat.DayOfMonth)
	case s.Repeat.WeekOfMonth > 6:
		return fmt.Errorf("%w: week of month %d", ErrBadRequest, s.Repeat.WeekOfMonth)
	}
	return nil
}

// Bridge is how people dial in to a reserved conference.
type Bridge struct {
	ID           string `json:"id"`
	Toll         string `json:"toll"`
	TollFree     string `json:"toll_free"`
	HostCode     string `json:"host_code"`
	AttendeeCode string `json:"attendee_code"`
}

// AllocateRequest is the body of the daemon's POST /allocate. Meta is
// base64 in JSON (encoding/json's []byte).
type AllocateRequest struct {
	Token string `json:"token,omitempty"`
	Spec  Spec   `json:"spec"`
	Meta  []byte `json:"meta,omitempty"`
}

func (r *AllocateRequest) validate() error {
	switch {
	case len(r.Token) > MaxToken:
		return fmt.Errorf("%w: token is %d bytes, at most %d", ErrBadRequest, len(r.Token), MaxToken)
	case len(r.Meta) > MaxMeta:
		return fmt.Errorf("%w: meta is %d bytes, at most %d", ErrBadRequest, len(r.Meta), MaxMeta)
	}
	return r.Spec.validate()
}

// AllocateResponse is the daemon's answer to POST /allocate.
type AllocateResponse struct {
	Key      uint64 `json:"key"`
	Replayed bool   `json:"replayed,omitempty"`
	Tier     string `json:"tier"`
	Bridge   Bridge `json:"bridge"`
}

// KeyRequest is the body of POST /release, to the daemon and to the stub.
type KeyRequest struct {
	Key uint64 `json:"key"`
}

// ReserveRequest is the body of the stub's POST /reserve.
type ReserveRequest struct {
	Key  uint64 `json:"key"`
	Spec Spec   `json:"spec"`
	Meta []byte `json:"meta,omitempty"`
}

// errorBody is the JSON body of every non-2xx answer.
type errorBody struct {
	Error string `json:"error"`
}

// statusOf maps an error to its HTTP status.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrKeyExists):
		return http.StatusConflict
	case errors.Is(err, ErrCapacity):
		return http.StatusInsufficientStorage
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// errorOf maps an HTTP status back to its sentinel.
func errorOf(code int) error {
	switch code {
	case http.StatusBadRequest:
		return ErrBadRequest
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusConflict:
		return ErrKeyExists
	case http.StatusInsufficientStorage:
		return ErrCapacity
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return ErrUnavailable
	}
	return errors.New("httpbaseline: internal error")
}

// writeJSON answers code with v as JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// writeError answers err as a JSON error body with its status.
func writeError(w http.ResponseWriter, err error) {
	writeJSON(w, statusOf(err), errorBody{Error: err.Error()})
}

// readJSON decodes a bounded request body into v.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return nil
}

// postJSON posts in as JSON to url with hc and decodes a 2xx answer into
// out (nil: the body is discarded). A non-2xx answer is returned as its
// sentinel, wrapped with the server's message. The body is always drained
// and closed, so the connection goes back to the keep-alive pool.
func postJSON(ctx context.Context, hc *http.Client, url string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer func() {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}()
	if resp.StatusCode/100 != 2 {
		var eb errorBody
		_ = json.NewDecoder(io.LimitReader(resp.Body, 4<<10)).Decode(&eb)
		return fmt.Errorf("%w (HTTP %d: %s)", errorOf(resp.StatusCode), resp.StatusCode, eb.Error)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("httpbaseline: decoding the answer: %w", err)
	}
	return nil
}
