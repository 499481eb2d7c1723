package xmlapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"switchboard/internal/httpbound"
	"switchboard/internal/unixsock"
)

// Metrics and health (docs/operations.md §5, "xmlapi"): the front end
// exports its own Prometheus families, xmlapi_*, on a listener of its own
// (metrics.addr: a loopback port or a Unix socket, off by default, like
// the daemon's), and answers GET HealthPath there and on its XML port.

// HealthPath answers 200 "ok" while the daemon answers a PING within
// backend.request_timeout, else 503: for load balancers and supervisors.
const HealthPath = "/healthz"

// Label values of the op label beyond the supported operations' names.
const (
	metricOpUnsupported = "unsupported" // an operation this front end does not serve
	metricOpNone        = "none"        // no operation could be read (not XML, no xsi:type, …)
)

// metricOps is the op label, by op; index numOps is "unsupported".
var metricOps = func() [numOps + 1]string {
	var out [numOps + 1]string
	copy(out[:], opNames[:])
	out[opNone] = metricOpNone
	out[numOps] = metricOpUnsupported
	return out
}()

// Metrics is the front end's Prometheus instrumentation. Recording a
// request is atomic adds on children resolved at NewMetrics (a FAILURE
// adds one label lookup); it is safe for concurrent use.
type Metrics struct {
	reg        *prometheus.Registry
	requests   [numOps + 1][2]prometheus.Counter // [op][0 success, 1 failure]
	duration   [numOps + 1]prometheus.Observer
	exceptions *prometheus.CounterVec
	inFlight   prometheus.Gauge
	tickets    prometheus.Counter
}

// NewMetrics returns the front end's metrics on a registry of their own,
// with the Go runtime and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "xmlapi_requests_total",
		Help: "XML API requests answered, by operation and result (success or failure).",
	}, []string{"op", "result"})
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "xmlapi_request_duration_seconds",
		Help: "From a request's arrival to its answer, by operation: sign-in and daemon calls included.",
		// 0.5 ms to 8.2 s: a cached sign-in and a LOOKUP take well under
		// a millisecond, a bcrypt check tens, a slow daemon seconds.
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15),
	}, []string{"op"})
	m.exceptions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "xmlapi_exceptions_total",
		Help: "FAILURE answers, by operation and WebEx exception ID.",
	}, []string{"op", "exception"})
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "xmlapi_requests_in_flight",
		Help: "XML API requests being served.",
	})
	m.tickets = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "xmlapi_session_tickets_issued_total",
		Help: "Session tickets issued by AuthenticateUser.",
	})
	for i, op := range metricOps {
		m.requests[i][0] = reqs.WithLabelValues(op, "success")
		m.requests[i][1] = reqs.WithLabelValues(op, "failure")
		m.duration[i] = dur.WithLabelValues(op)
	}
	m.reg.MustRegister(reqs, dur, m.exceptions, m.inFlight, m.tickets,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the registry NewMetricsServer serves.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// record counts one answered request.
func (m *Metrics) record(oc *outcome, took time.Duration) {
	i := int(oc.op)
	if oc.op == opNone && oc.name != "" {
		i = int(numOps)
	}
	res := 0
	if oc.fault != nil {
		res = 1
		m.exceptions.WithLabelValues(metricOps[i], oc.fault.ID).Inc()
	}
	m.requests[i][res].Inc()
	m.duration[i].Observe(took.Seconds())
}

// WithMetrics records every request in m (default: no metrics).
func WithMetrics(m *Metrics) Option {
	return func(h *Handler) { h.metrics = m }
}

// serveHealth answers GET HealthPath for h. The body says only ok or
// unavailable: the port may be public.
func serveHealth(h *Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		if err := h.Health(r.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "unavailable: the switchboard daemon does not answer")
			return
		}
		fmt.Fprintln(w, "ok")
	}
}

// NewMetricsServer returns the server of metrics.addr: GET /metrics (m's
// registry, Prometheus text or OpenMetrics) and GET HealthPath (h).
func NewMetricsServer(m *Metrics, h *Handler, log *zap.Logger) *http.Server {
	if log == nil {
		log = zap.NewNop()
	}
	errLog, err := zap.NewStdLogAt(log.Named("metrics"), zap.WarnLevel)
	if err != nil { // only for an invalid level: a programming error
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog: errLog, ErrorHandling: promhttp.ContinueOnError, EnableOpenMetrics: true,
	}))
	mux.Handle("GET "+HealthPath, serveHealth(h))
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
		IdleTimeout: metricsIdleTimeout, ErrorLog: errLog}
}

// The metrics server's limits (a loopback port is open to every local
// user): at most metricsMaxConns connections (the one idle the longest is
// closed for a new one: internal/httpbound), keep-alive connections closed
// after metricsIdleTimeout idle.
const (
	metricsMaxConns    = 64
	metricsIdleTimeout = 30 * time.Second
)

// ListenMetrics opens metrics.addr (validated): a loopback host:port, or
// unix:/path for a Unix socket of mode 0660 (its owner and group only,
// where a loopback port is open to every local user). The socket is
// created under its final mode in a private directory and renamed into
// place, replacing a stale one; closing the listener removes it. A path
// that exists and is not a socket is an ErrConfig.
func ListenMetrics(addr string) (net.Listener, error) {
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		return net.Listen("tcp", addr)
	}
	ln, err := unixsock.Listen(path, 0o660)
	switch {
	case errors.Is(err, unixsock.ErrNotSocket):
		return nil, fmt.Errorf("%w: metrics.addr %s: exists and is not a socket", ErrConfig, path)
	case errors.Is(err, unixsock.ErrSocketInUse):
		return nil, fmt.Errorf("metrics.addr %s: in use by another process", path)
	case err != nil:
		return nil, err
	}
	return &unlinkListener{Listener: ln, path: path}, nil
}

// unlinkListener removes its socket's path when closed.
type unlinkListener struct {
	net.Listener
	path string
}

func (l *unlinkListener) Close() error {
	err := l.Listener.Close()
	os.Remove(l.path)
	return err
}

// ServeMetrics serves srv on ln, at most 64 connections at once (the one
// idle the longest is closed for a new one; it sets srv.ConnState), until
// ctx ends, then shuts it down within timeout. It returns when srv has
// stopped.
func ServeMetrics(ctx context.Context, srv *http.Server, ln net.Listener, timeout time.Duration) error {
	ln = httpbound.Bound(srv, ln, metricsMaxConns)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		srv.Close()
	}
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// validMetricsAddr checks metrics.addr: empty, a loopback host:port, or
// unix: and an absolute path.
func validMetricsAddr(addr string) error {
	if addr == "" {
		return nil
	}
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if !filepath.IsAbs(path) {
			return fmt.Errorf("%q: want unix:/absolute/path", addr)
		}
		return nil
	}
	if !IsLoopbackListen(addr) {
		return fmt.Errorf("%q: want a loopback host:port (127.0.0.1, ::1 or localhost) or unix:/absolute/path; scrape through a local agent", addr)
	}
	if _, port, _ := net.SplitHostPort(addr); !validPort(port) {
		return fmt.Errorf("%q: port %q not in 0..65535", addr, port)
	}
	return nil
}

// validPort reports whether port is a decimal port number, 0..65535 (0:
// any free port). Service names are not taken: a config says the number.
func validPort(port string) bool {
	p, err := strconv.Atoi(port)
	return err == nil && p >= 0 && p <= 65535
}
