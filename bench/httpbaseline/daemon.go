package httpbaseline

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Defaults of Config, and the baseline's key domain.
const (
	// DefaultConns is Config.Conns's default: idle keep-alive connections
	// kept to the stub. It is at least the benchmark's concurrency, so no
	// request ever waits for a dial or closes a connection it could reuse.
	DefaultConns = 128
	// DefaultAttemptTimeout is Config.AttemptTimeout's default, the same as
	// a switchboard tier's attempt_timeout in the embedded config.
	DefaultAttemptTimeout = 250 * time.Millisecond

	// FirstKey is the first session key; later ones count up by one. Keys
	// are nine-digit numbers, as switchboard's default.
	FirstKey = 100_000_000
	lastKey  = 999_999_999

	// Tier is the tier every allocation reports: the baseline has one.
	Tier = "stub"
)

// Config describes a baseline daemon. Zero fields mean their defaults,
// except Socket and StubURL, which are required.
type Config struct {
	// Socket is the Unix socket path the daemon listens on. Required.
	Socket string
	// StubURL is the telephony stub's base URL (Stub.Start's answer).
	// Required.
	StubURL string
	// Conns is the number of idle keep-alive connections kept to the stub
	// (http.Transport.MaxIdleConnsPerHost). Default DefaultConns.
	Conns int
	// AttemptTimeout bounds each call to the stub. Default
	// DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// Log receives failures of stub calls. Default: none. Nothing is logged
	// on the happy path.
	Log *zap.Logger
}

// session is one live allocation as the daemon records it.
type session struct {
	token  string
	bridge Bridge
	spec   Spec
	meta   []byte
}

// Daemon is the baseline daemon: POST /allocate and POST /release over a
// Unix socket, calling the stub over TCP. It is safe for concurrent use.
type Daemon struct {
	cfg  Config
	tr   *http.Transport
	hc   *http.Client
	next atomic.Uint64 // keys issued so far

	mu sync.Mutex
	// Guarded by mu.
	sessions map[uint64]*session
	tokens   map[string]*AllocateResponse // the first answer per live token

	hs *httpServer
}

// NewDaemon checks cfg and returns a daemon that is not serving yet.
func NewDaemon(cfg Config) (*Daemon, error) {
	if cfg.Socket == "" || cfg.StubURL == "" {
		return nil, errors.New("httpbaseline: Socket and StubURL are required")
	}
	if cfg.Conns <= 0 {
		cfg.Conns = DefaultConns
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = DefaultAttemptTimeout
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
		MaxIdleConns:        0, // no overall limit
		MaxIdleConnsPerHost: cfg.Conns,
		IdleConnTimeout:     idleTimeout,
		DisableCompression:  true,
	}
	return &Daemon{
		cfg:      cfg,
		tr:       tr,
		hc:       &http.Client{Transport: tr},
		sessions: make(map[uint64]*session),
		tokens:   make(map[string]*AllocateResponse),
	}, nil
}

// Start listens on the Unix socket and serves until Close. Call it once.
func (d *Daemon) Start() error {
	ln, err := net.Listen("unix", d.cfg.Socket)
	if err != nil {
		return fmt.Errorf("httpbaseline: daemon: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /allocate", d.handleAllocate)
	mux.HandleFunc("POST /release", d.handleRelease)
	d.hs = serve(ln, mux)
	return nil
}

// Close stops serving (closing the socket and every connection), waits for
// the serving goroutine and closes the idle connections to the stub.
// Idempotent.
func (d *Daemon) Close() error {
	var err error
	if d.hs != nil {
		err = d.hs.close()
	}
	d.tr.CloseIdleConnections()
	return err
}

// Live returns the number of live sessions.
func (d *Daemon) Live() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.sessions)
}

// Conns returns the number of front-end connections accepted so far (few:
// clients keep them alive).
func (d *Daemon) Conns() uint64 {
	if d.hs == nil {
		return 0
	}
	return d.hs.accepted.Load()
}

func (d *Daemon) handleAllocate(w http.ResponseWriter, r *http.Request) {
	var req AllocateRequest
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	if err := req.validate(); err != nil {
		writeError(w, err)
		return
	}
	if req.Token != "" {
		d.mu.Lock()
		first, ok := d.tokens[req.Token]
		d.mu.Unlock()
		if ok {
			replay := *first
			replay.Replayed = true
			writeJSON(w, http.StatusOK, &replay)
			return
		}
	}
	n := d.next.Add(1)
	key := FirstKey + n - 1
	if key > lastKey {
		writeError(w, fmt.Errorf("%w: keys exhausted", ErrUnavailable))
		return
	}
	var b Bridge
	if err := d.callStub(r.Context(), "/reserve", &ReserveRequest{Key: key, Spec: req.Spec, Meta: req.Meta}, &b); err != nil {
		writeError(w, err)
		return
	}
	resp := &AllocateResponse{Key: key, Tier: Tier, Bridge: b}
	d.mu.Lock()
	d.sessions[key] = &session{token: req.Token, bridge: b, spec: req.Spec, meta: req.Meta}
	if req.Token != "" {
		d.tokens[req.Token] = resp
	}
	d.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}

func (d *Daemon) handleRelease(w http.ResponseWriter, r *http.Request) {
	var req KeyRequest
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	d.mu.Lock()
	s, ok := d.sessions[req.Key]
	d.mu.Unlock()
	if !ok {
		writeError(w, fmt.Errorf("%w: %d", ErrNotFound, req.Key))
		return
	}
	err := d.callStub(r.Context(), "/release", &KeyRequest{Key: req.Key}, nil)
	if err != nil && !errors.Is(err, ErrNotFound) {
		// The stub did not answer: keep the session so a retry can
		// release it (the baseline has no background releaser).
		writeError(w, err)
		return
	}
	d.mu.Lock()
	delete(d.sessions, req.Key)
	if s.token != "" {
		delete(d.tokens, s.token)
	}
	d.mu.Unlock()
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// callStub posts in to the stub's path under the attempt timeout. Refusals
// of the stub keep their sentinel; anything else (no answer, a timeout, a
// server error) is ErrUnavailable.
func (d *Daemon) callStub(ctx context.Context, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.AttemptTimeout)
	defer cancel()
	err := postJSON(ctx, d.hc, d.cfg.StubURL+path, in, out)
	switch {
	case err == nil, errors.Is(err, ErrBadRequest), errors.Is(err, ErrNotFound),
		errors.Is(err, ErrKeyExists), errors.Is(err, ErrCapacity):
		return err
	}
	if ce := d.cfg.Log.Check(zap.WarnLevel, "telephony stub call failed"); ce != nil {
		ce.Write(zap.String("path", path), zap.Error(err))
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
