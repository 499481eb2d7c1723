package xmlapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"switchboard/client"
	"switchboard/wire"
)

// Path is where WebEx clients post requests.
const Path = "/WBXService/XMLService"

// TierHeader is the response header naming the telephony tier that holds
// the session (Create, Get, Set). It is for operators: a failover never
// shows in the XML, which has no field for it.
const TierHeader = "X-Switchboard-Tier"

// IdempotencyHeader is an optional request header. A client that retries a
// Create it is not sure went through sends the same value again and gets
// the first result instead of a second meeting (see Handler).
const IdempotencyHeader = "Idempotency-Key"

// defaultDuration is the duration of a meeting whose request names none,
// in minutes (the WebEx default).
const defaultDuration = 60

// Backend is the daemon, as the front end uses it. *client.Client
// implements it.
type Backend interface {
	Allocate(ctx context.Context, req *wire.AllocateRequest) (client.Allocation, error)
	Lookup(ctx context.Context, key uint64) (client.Reservation, error)
	Update(ctx context.Context, key uint64, spec *wire.Spec, meta []byte) (client.Reservation, error)
	Release(ctx context.Context, key uint64) error
}

var _ Backend = (*client.Client)(nil)

// Pinger is a Backend that can tell whether it answers. *client.Client
// implements it. GetAPIVersion and the health endpoint ping a Backend that
// implements it; one that does not counts as answering.
type Pinger interface {
	Ping(ctx context.Context) error
}

var _ Pinger = (*client.Client)(nil)

// Option configures a Handler (test seams).
type Option func(*Handler)

// WithLogger sets the logger (default: none).
func WithLogger(l *zap.Logger) Option {
	return func(h *Handler) {
		if l != nil {
			h.log = l
		}
	}
}

// WithClock replaces time.Now (it dates the password cache).
func WithClock(now func() time.Time) Option {
	return func(h *Handler) {
		if now != nil {
			h.now = now
		}
	}
}

// WithRandom replaces crypto/rand as the source of idempotency tokens.
func WithRandom(r io.Reader) Option {
	return func(h *Handler) {
		if r != nil {
			h.rand = r
		}
	}
}

// Handler serves the WebEx XML API (CreateTeleconferenceSession,
// SetTeleconferenceSession, GetTeleconferenceSession, DelSession,
// DelMeeting, AuthenticateUser, GetAPIVersion) on top of the daemon. It
// keeps no meeting state: the meeting record travels as the reservation's
// meta. It is safe for concurrent use and starts no goroutines.
//
// Idempotency (decision): a Create gets a fresh random token, reused for
// the Handler's own retry when the daemon connection is lost mid-call, so
// that retry never makes a second bridge. The token is not derived from
// the request's content: WebEx Create has no request id, and two identical
// Creates are two meetings (the daemon remembers a token for a day). A
// client that wants its own retries deduplicated sends an Idempotency-Key
// header; the token is then a hash of the account and that key.
type Handler struct {
	be      Backend
	auth    *authenticator
	log     *zap.Logger
	now     func() time.Time
	rand    io.Reader
	maxBody int
	depth   int
	gsb     string
	timeout time.Duration
	proxies []netip.Prefix // auth.trusted_proxies
	bufs    sync.Pool      // *[]byte
	metrics *Metrics       // nil: none
}

// NewHandler returns a Handler for cfg (defaulted and validated, as
// ParseConfig returns it) calling be.
func NewHandler(cfg *Config, be Backend, opts ...Option) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &Handler{be: be, log: zap.NewNop(), now: time.Now, rand: rand.Reader, maxBody: cfg.HTTP.MaxBodyBytes,
		depth: cfg.XML.MaxDepth, gsb: cfg.XML.GSBStatus, timeout: cfg.Backend.RequestTimeout, proxies: cfg.Auth.proxies()}
	for _, o := range opts {
		o(h)
	}
	var err error
	if h.auth, err = newAuthenticator(cfg, h.now, h.log); err != nil {
		return nil, fmt.Errorf("xmlapi: %w", err)
	}
	h.bufs.New = func() any { b := make([]byte, 0, 4096); return &b }
	return h, nil
}

func (h *Handler) getBuf() *[]byte { return h.bufs.Get().(*[]byte) }

func (h *Handler) putBuf(b *[]byte) {
	if cap(*b) > 1<<20 {
		return // do not keep a huge body's buffer
	}
	*b = (*b)[:0]
	h.bufs.Put(b)
}

// outcome is what one request did, for the log line.
type outcome struct {
	op    op
	name  string // the operation as the request named it (opNone: for the log)
	user  string
	key   uint64
	tier  string
	fault *Fault
	err   error // the daemon error behind a fault, if any
}

// ServeHTTP answers one POST. Every answer is XML with HTTP 200, FAILURE
// included (a non-POST method gets 405 with a FAILURE body); the request
// body is read raw whatever its Content-Type and is never form-decoded.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.now()
	if h.metrics != nil {
		h.metrics.inFlight.Inc()
		defer h.metrics.inFlight.Dec()
	}
	out := h.getBuf()
	defer h.putBuf(out)
	var oc outcome
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.log.Error("xml request panicked", zap.Any("panic", p), zap.Stack("stack"))
			oc.fault = &Fault{ID: ExcInternal, Reason: "Internal error"}
			*out = appendFailure((*out)[:0], svcNone, h.gsb, oc.fault)
			h.write(w, http.StatusOK, *out, "")
			h.logOutcome(&oc, start)
		}
	}()

	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		oc.fault = forwardFault("method %s, use POST", r.Method)
		*out = appendFailure(*out, svcNone, h.gsb, oc.fault)
		h.write(w, http.StatusMethodNotAllowed, *out, "")
		h.logOutcome(&oc, start)
		return
	}
	in := h.getBuf()
	defer h.putBuf(in)
	body, err := readBody(r.Body, *in, h.maxBody)
	*in = body[:0]
	switch {
	case errors.Is(err, errTooLarge):
		w.Header().Set("Connection", "close") // do not read the rest
		oc.fault = forwardFault("request larger than %d bytes", h.maxBody)
	case err != nil:
		oc.fault = forwardFault("cannot read the request body")
	}
	if oc.fault != nil {
		*out = appendFailure(*out, svcNone, h.gsb, oc.fault)
		h.write(w, http.StatusOK, *out, "")
		h.logOutcome(&oc, start)
		return
	}
	var xff []string
	if len(h.proxies) > 0 {
		xff = r.Header.Values("X-Forwarded-For")
	}
	from := clientAddr(r.RemoteAddr, xff, h.proxies)
	*out = h.serve(r.Context(), body, r.Header.Get(IdempotencyHeader), from, *out, &oc)
	if oc.fault != nil && oc.fault.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(oc.fault.RetryAfter))
	}
	h.write(w, http.StatusOK, *out, oc.tier)
	h.logOutcome(&oc, start)
}

var errTooLarge = errors.New("body too large")

// readBody reads r into buf, failing with errTooLarge past max bytes.
func readBody(r io.Reader, buf []byte, max int) ([]byte, error) {
	b := bytes.NewBuffer(buf[:0])
	n, err := b.ReadFrom(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return b.Bytes(), err
	}
	if n > int64(max) {
		return b.Bytes(), errTooLarge
	}
	return b.Bytes(), nil
}

func (h *Handler) write(w http.ResponseWriter, status int, body []byte, tier string) {
	hd := w.Header()
	hd.Set("Content-Type", "text/xml;charset=UTF-8")
	hd.Set("Pragma", "no-cache")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("Expires", "Thu, 01 Jan 1970 00:00:00 GMT")
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	if tier != "" {
		hd.Set(TierHeader, tier)
	}
	w.WriteHeader(status)
	w.Write(body) // an error here is the client's departure: nothing to do
}

var opNames = [numOps]string{opNone: "none", opCreate: "CreateTeleconferenceSession", opSet: "SetTeleconferenceSession",
	opGet: "GetTeleconferenceSession", opDel: "DelSession", opDelMeeting: "DelMeeting", opGetAPIVersion: "GetAPIVersion",
	opAuthenticateUser: "AuthenticateUser"}

// logOpName is the operation of a request for the log: its name when
// supported, else the name it asked for (client text: at most 64 letters,
// digits and ._- kept, anything else as '?'), else "none" (no operation
// could be read).
func logOpName(oc *outcome) string {
	if oc.op != opNone || oc.name == "" {
		return opNames[oc.op]
	}
	b := []byte(oc.name[:min(len(oc.name), 64)])
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '?'
		}
	}
	return string(b)
}

// logOutcome writes one line per request, with the operation the request
// named, supported or not (logOpName; "supported":false for one that is
// not). It never logs request content: no password, no session ticket, no
// meeting field, no meta, no FAILURE reason (which may quote a value); the
// offending element's path is enough.
func (h *Handler) logOutcome(oc *outcome, start time.Time) {
	if h.metrics != nil {
		h.metrics.record(oc, h.now().Sub(start))
	}
	lvl := zap.DebugLevel
	msg := "xml request served"
	if oc.fault != nil {
		msg = "xml request failed"
		switch oc.fault.ID {
		case ExcAuth, ExcAccessDenied, ExcBusy:
			lvl = zap.WarnLevel
		case ExcNotResponding, ExcUnavailable, ExcCapacity, ExcOverloaded, ExcKeysExhausted, ExcInternal:
			lvl = zap.ErrorLevel
		case ExcThrottled:
			// One line per refused login would flood the log during an
			// attack: "login throttled" (warn) marks each new delay.
			lvl = zap.DebugLevel
		default:
			lvl = zap.InfoLevel
		}
	}
	if ce := h.log.Check(lvl, msg); ce != nil {
		fs := make([]zap.Field, 0, 8)
		fs = append(fs, zap.String("op", logOpName(oc)), zap.Duration("took", h.now().Sub(start)))
		if oc.op == opNone && oc.name != "" {
			fs = append(fs, zap.Bool("supported", false))
		}
		if oc.user != "" {
			fs = append(fs, zap.String("user", oc.user))
		}
		if oc.key != 0 {
			fs = append(fs, zap.Uint64("key", oc.key))
		}
		if oc.tier != "" {
			fs = append(fs, zap.String("tier", oc.tier))
		}
		if oc.fault != nil {
			fs = append(fs, zap.String("exception", oc.fault.ID))
			if oc.fault.Elem != "" {
				fs = append(fs, zap.String("element", oc.fault.Elem))
			}
		}
		if oc.err != nil {
			fs = append(fs, zap.Error(oc.err))
		}
		ce.Write(fs...)
	}
}

// serve handles one request document from the client address from (the
// zero Addr when unknown) and appends the response to dst.
func (h *Handler) serve(ctx context.Context, body []byte, idemKey string, from netip.Addr, dst []byte, oc *outcome) []byte {
	var req request
	f := parseRequest(body, h.depth, &req)
	oc.op, oc.name = req.op, req.opName
	if f != nil {
		oc.fault = f
		return appendFailure(dst, serviceOf(req.op), h.gsb, f)
	}
	svc := serviceOf(req.op)
	switch {
	case req.op == opGetAPIVersion:
		// No sign-in (decision, docs/webex-xml.md §3.3): a load balancer's
		// health check holds no password, and a securityContext sent
		// along is not checked, so this is no password oracle.
		if f := h.ping(ctx); f != nil {
			oc.fault = f
			return appendFailure(dst, svc, h.gsb, f)
		}
		return appendAPIVersionResponse(dst, h.gsb)
	case req.op == opAuthenticateUser && req.cred.password == "":
		// A ticket cannot renew itself: sessions end TicketTTL after the
		// last password sign-in.
		oc.fault = &Fault{ID: ExcAuth, Reason: "AuthenticateUser needs a password", Elem: "securityContext/password"}
		return appendFailure(dst, svc, h.gsb, oc.fault)
	}
	acc, f := h.auth.authenticate(ctx, &req.cred, from)
	if f != nil {
		oc.fault = f
		return appendFailure(dst, svc, h.gsb, f)
	}
	// backend.request_timeout bounds the daemon calls only: a sign-in that
	// waited for a hash slot, or a slow hash on a starved machine, must not
	// spend the daemon's budget and come back as 000035, which blames the
	// daemon. Sign-in has its own bounds (auth.hash_wait,
	// auth.throttle_hold).
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	oc.user = acc.webExID
	if req.fault != nil {
		oc.fault = req.fault
		return appendFailure(dst, svc, h.gsb, req.fault)
	}
	var out []byte
	switch req.op {
	case opCreate:
		out, f = h.create(ctx, acc, &req, idemKey, dst, oc)
	case opGet:
		out, f = h.get(ctx, acc, &req, dst, oc)
	case opSet:
		out, f = h.set(ctx, acc, &req, dst, oc)
	case opDel:
		out, f = h.del(ctx, acc, &req, dst, oc, svcEp, "ep:delSessionResponse")
	case opDelMeeting:
		out, f = h.del(ctx, acc, &req, dst, oc, svcMeet, "meet:delMeetingResponse")
	case opAuthenticateUser:
		ticket, created := h.auth.issueTicket(acc)
		if h.metrics != nil {
			h.metrics.tickets.Inc()
		}
		out = appendAuthenticateUserResponse(dst, h.gsb, ticket, created)
	}
	if f != nil {
		oc.fault, oc.tier = f, "" // the tier header is for successes only
		return appendFailure(dst, svc, h.gsb, f)
	}
	return out
}

// checkHost refuses scheduling for another host: hostWebExID, when given,
// must name the caller (delegated scheduling is not supported).
func checkHost(m *meeting, acc *account) *Fault {
	if m.isSet(fHostWebExID) && m.str(fHostWebExID) != "" && !strings.EqualFold(m.str(fHostWebExID), acc.webExID) {
		return &Fault{ID: ExcAccessDenied, Elem: "schedule/hostWebExID",
			Reason: "Access denied: schedule/hostWebExID names another host"}
	}
	return nil
}

// encodeMeta validates m as a whole and encodes it as the meta blob.
func encodeMeta(acc *account, m *meeting) ([]byte, *Fault) {
	if !m.isSet(fConfName) || m.str(fConfName) == "" {
		return nil, invalidFault("metaData/confName", "required")
	}
	if f := checkHost(m, acc); f != nil {
		return nil, f
	}
	if f := m.finish(); f != nil {
		return nil, f
	}
	meta := appendRecord(make([]byte, 0, 512), &record{owner: acc.webExID, site: acc.siteKey(), m: *m})
	if len(meta) > wire.MaxMeta {
		return nil, &Fault{ID: ExcTooLarge, Reason: fmt.Sprintf("Meeting record too large: %d bytes, at most %d; shorten the attendee lists", len(meta), wire.MaxMeta)}
	}
	return meta, nil
}

// retry runs call once more when its outcome is unknown (the connection to
// the daemon died after the request was sent) and time remains. Every
// daemon call made here is safe to repeat: ALLOCATE carries the same
// token, LOOKUP reads, UPDATE replaces, RELEASE answers NOT_FOUND the
// second time (del handles that).
func retry(ctx context.Context, call func() error) (retried bool, err error) {
	err = call()
	if err != nil && errors.Is(err, client.ErrUnknownOutcome) && ctx.Err() == nil {
		return true, call()
	}
	return false, err
}

func (h *Handler) token(acc *account, idemKey string) ([]byte, *Fault) {
	if idemKey != "" {
		if len(idemKey) > 128 {
			return nil, forwardFault("%s longer than 128 bytes", IdempotencyHeader)
		}
		sum := sha256.Sum256([]byte(strings.ToLower(acc.webExID) + "\x00" + idemKey))
		return sum[:], nil
	}
	t := make([]byte, 16)
	if _, err := io.ReadFull(h.rand, t); err != nil {
		return nil, &Fault{ID: ExcInternal, Reason: "Internal error"}
	}
	return t, nil
}

func (h *Handler) create(ctx context.Context, acc *account, req *request, idemKey string, dst []byte, oc *outcome) ([]byte, *Fault) {
	m := &req.m
	if !m.isSet(fTimeZoneID) {
		m.set(fTimeZoneID, value{n: int64(acc.tz)})
	}
	if !m.isSet(fDuration) {
		m.set(fDuration, value{n: defaultDuration})
	}
	meta, f := encodeMeta(acc, m)
	if f != nil {
		return nil, f
	}
	tok, f := h.token(acc, idemKey)
	if f != nil {
		return nil, f
	}
	areq := wire.AllocateRequest{Token: tok, Spec: m.spec(), Meta: meta}
	var a client.Allocation
	_, err := retry(ctx, func() (err error) {
		a, err = h.be.Allocate(ctx, &areq)
		return err
	})
	if err != nil {
		oc.err = err
		return nil, backendFault(err)
	}
	oc.key, oc.tier = a.Key, a.Tier
	return appendCreateResponse(dst, h.gsb, a.Key), nil
}

// owned looks up the session and checks that acc owns it. A reservation
// whose meta is not a meeting record (allocated by another client of the
// daemon) is not a meeting of this API: 060001.
func (h *Handler) owned(ctx context.Context, acc *account, req *request, oc *outcome) (client.Reservation, *record, *Fault) {
	if !req.hasKey {
		if req.op == opDelMeeting {
			return client.Reservation{}, nil, invalidFault("meetingKey", "required")
		}
		return client.Reservation{}, nil, invalidFault("sessionKey", "required")
	}
	oc.key = req.key
	var res client.Reservation
	_, err := retry(ctx, func() (err error) {
		res, err = h.be.Lookup(ctx, req.key)
		return err
	})
	if err != nil {
		oc.err = err
		return res, nil, backendFault(err)
	}
	rec, err := decodeRecord(res.Meta)
	switch {
	case errors.Is(err, ErrRecordVersion):
		oc.err = err
		return res, nil, &Fault{ID: ExcInternal, Reason: "Meeting record written by a newer version"}
	case err != nil:
		return res, nil, faultNotFound
	}
	if !strings.EqualFold(rec.owner, acc.webExID) || rec.site != acc.siteKey() {
		return res, nil, faultDenied
	}
	oc.tier = res.Tier
	return res, rec, nil
}

func (h *Handler) get(ctx context.Context, acc *account, req *request, dst []byte, oc *outcome) ([]byte, *Fault) {
	res, rec, f := h.owned(ctx, acc, req, oc)
	if f != nil {
		return nil, f
	}
	return appendGetResponse(dst, h.gsb, req.key, &rec.m, &res.Bridge), nil
}

func (h *Handler) set(ctx context.Context, acc *account, req *request, dst []byte, oc *outcome) ([]byte, *Fault) {
	_, rec, f := h.owned(ctx, acc, req, oc)
	if f != nil {
		return nil, f
	}
	m := rec.m
	m.merge(&req.m)
	meta, f := encodeMeta(acc, &m)
	if f != nil {
		return nil, f
	}
	spec := m.spec()
	var res client.Reservation
	_, err := retry(ctx, func() (err error) {
		res, err = h.be.Update(ctx, req.key, &spec, meta)
		return err
	})
	if err != nil {
		oc.err = err
		return nil, backendFault(err)
	}
	oc.tier = res.Tier
	return appendEmptyResponse(dst, svcAuo, h.gsb, "auo:setTeleconferenceSessionResponse"), nil
}

// del serves DelSession and DelMeeting, which differ only in the name of
// the key element and the response's namespace and type.
func (h *Handler) del(ctx context.Context, acc *account, req *request, dst []byte, oc *outcome, svc service, respType string) ([]byte, *Fault) {
	if _, _, f := h.owned(ctx, acc, req, oc); f != nil {
		return nil, f
	}
	oc.tier = ""
	retried, err := retry(ctx, func() error { return h.be.Release(ctx, req.key) })
	if err != nil && !(retried && errors.Is(err, wire.StatusNotFound)) {
		oc.err = err
		return nil, backendFault(err)
	}
	return appendEmptyResponse(dst, svc, h.gsb, respType), nil
}

// ping asks the daemon whether it answers within backend.request_timeout:
// nil when it does or the Backend cannot tell (no Pinger), else the
// FAILURE a daemon error maps to (000035 when it does not answer).
func (h *Handler) ping(ctx context.Context) *Fault {
	p, ok := h.be.(Pinger)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	if err := p.Ping(ctx); err != nil {
		return backendFault(err)
	}
	return nil
}

// Health reports whether this front end can serve: nil when the daemon
// answers a PING within backend.request_timeout (or the Backend cannot be
// pinged). It is what the health endpoint (HealthPath) and GetAPIVersion
// check.
func (h *Handler) Health(ctx context.Context) error {
	if f := h.ping(ctx); f != nil {
		return f
	}
	return nil
}
