package telsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxControlBody bounds a control request's body; maxControlReply, a reply
// read by ControlClient (a full table listed by GET /reservations: 100,000
// reservations of a few hundred bytes each).
const (
	maxControlBody  = 64 << 10
	maxControlReply = 64 << 20
)

// ControlHandler returns the HTTP control API of s (documented in the
// package comment): GET/POST /fault, PUT /fault/{mode}, GET /stats, GET
// /reservations. Mount it
// on a loopback listener; it has no authentication. The handler is safe for
// concurrent use.
func (s *Server) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fault", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Fault())
	})
	mux.HandleFunc("POST /fault", func(w http.ResponseWriter, r *http.Request) {
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxControlBody))
		dec.DisallowUnknownFields()
		var f Fault
		if err := dec.Decode(&f); err != nil {
			writeError(w, fmt.Errorf("%w: %w", ErrBadFault, err))
			return
		}
		s.setFaultHTTP(w, f)
	})
	mux.HandleFunc("PUT /fault/{mode}", func(w http.ResponseWriter, r *http.Request) {
		f, err := faultFromQuery(r.PathValue("mode"), r.URL.Query())
		if err != nil {
			writeError(w, err)
			return
		}
		s.setFaultHTTP(w, f)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats())
	})
	mux.HandleFunc("GET /reservations", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Reservations())
	})
	return mux
}

func (s *Server) setFaultHTTP(w http.ResponseWriter, f Fault) {
	if err := s.SetFault(f); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.Fault())
}

// faultFromQuery builds a Fault from PUT /fault/{mode}?latency=…&jitter=…
// &fraction=…&period=….
func faultFromQuery(mode string, q map[string][]string) (Fault, error) {
	var f Fault
	m, err := ParseMode(mode)
	if err != nil {
		return f, err
	}
	f.Mode = m
	for name, vs := range q {
		if len(vs) != 1 {
			return f, fmt.Errorf("%w: parameter %q given %d times", ErrBadFault, name, len(vs))
		}
		v := vs[0]
		var dst *time.Duration
		switch name {
		case "latency":
			dst = &f.Latency
		case "jitter":
			dst = &f.Jitter
		case "period":
			dst = &f.Period
		case "fraction":
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return f, fmt.Errorf("%w: fraction: %w", ErrBadFault, err)
			}
			f.Fraction = x
			continue
		default:
			return f, fmt.Errorf("%w: unknown parameter %q", ErrBadFault, name)
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return f, fmt.Errorf("%w: %s: %w", ErrBadFault, name, err)
		}
		*dst = d
	}
	return f, nil
}

type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrBadFault):
		code = http.StatusBadRequest
	case errors.Is(err, ErrClosed):
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, errorBody{Error: err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(errorBody{Error: err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// ControlClient calls a telsim control API over HTTP (what `telsim fault`
// and `telsim stats` use). It is safe for concurrent use.
type ControlClient struct {
	base string
	hc   *http.Client
}

// NewControlClient returns a client of the control API at addr, a host:port
// or an http:// URL. A nil hc means a client with a 10 s timeout.
func NewControlClient(addr string, hc *http.Client) *ControlClient {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return &ControlClient{base: strings.TrimRight(addr, "/"), hc: hc}
}

// SetFault injects f and returns the fault now in force (defaults filled).
// A rejected fault's error wraps ErrBadFault; a closed server's, ErrClosed.
func (c *ControlClient) SetFault(ctx context.Context, f Fault) (Fault, error) {
	body, err := json.Marshal(f)
	if err != nil {
		return Fault{}, err
	}
	var out Fault
	err = c.do(ctx, http.MethodPost, "/fault", body, &out)
	return out, err
}

// Fault returns the fault in force.
func (c *ControlClient) Fault(ctx context.Context) (Fault, error) {
	var out Fault
	err := c.do(ctx, http.MethodGet, "/fault", nil, &out)
	return out, err
}

// Stats returns the server's counters.
func (c *ControlClient) Stats(ctx context.Context) (Stats, error) {
	var out Stats
	err := c.do(ctx, http.MethodGet, "/stats", nil, &out)
	return out, err
}

// Reservations returns every reservation the server holds, sorted by key.
func (c *ControlClient) Reservations(ctx context.Context) ([]Reservation, error) {
	var out []Reservation
	err := c.do(ctx, http.MethodGet, "/reservations", nil, &out)
	return out, err
}

func (c *ControlClient) do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("telsim control: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("telsim control: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxControlReply))
	if err != nil {
		return fmt.Errorf("telsim control: %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e errorBody
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		var kind error
		switch resp.StatusCode {
		case http.StatusBadRequest:
			kind = ErrBadFault
		case http.StatusServiceUnavailable:
			kind = ErrClosed
		default:
			return fmt.Errorf("telsim control: %s %s: %s: %s", method, path, resp.Status, msg)
		}
		return fmt.Errorf("%w (%s %s: %s)", kind, method, path, msg)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("telsim control: %s %s: decoding reply: %w", method, path, err)
	}
	return nil
}
