package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/VictoriaMetrics/fastcache"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"switchboard/frontend"
	"switchboard/internal/buildinfo"
	"switchboard/internal/httpbound"
	"switchboard/internal/unixsock"
	"switchboard/pool"
	"switchboard/route"
	"switchboard/wire"
)

// counter is the request path's view of a Prometheus counter child.
type counter = prometheus.Counter

// tierMetrics are a tier's metric children, looked up once when the tier is
// built (never per request) and shared across reloads by tier name.
type tierMetrics struct {
	attempts [route.NumOutcomes]counter
}

// Attempt implements route.TierObserver: one attempt's outcome on the
// tier, counted under the outcome's label.
func (m *tierMetrics) Attempt(o route.Outcome) {
	if m != nil {
		m.attempts[o].Inc()
	}
}

// Front-end ops as metric label values, indexed by wire.Op (the front-end
// ops are 1..5).
const numFrontOps = int(wire.OpRelease) + 1

var opNames = [numFrontOps]string{"", "ping", "allocate", "lookup", "update", "release"}

// numStatus covers every front-end status wire defines.
const numStatus = int(wire.StatusUnsupported) + 1

// Reload results, for switchboard_reloads_total.
const (
	reloadOK              = "ok"
	reloadInvalid         = "invalid"          // the new config does not parse or validate
	reloadRequiresRestart = "requires_restart" // it changes a field that cannot change live
	reloadFailed          = "failed"           // new pools did not warm up, or the daemon stopped
)

// metrics is the daemon's Prometheus instrumentation. Counters on the
// request path are children resolved in advance, so recording is an atomic
// add; gauges are read at scrape time by collector. It is safe for
// concurrent use.
type metrics struct {
	reg       *prometheus.Registry
	requests  [numFrontOps][numStatus]counter
	latency   [numFrontOps]prometheus.Observer
	attempts  *prometheus.CounterVec
	failovers *prometheus.CounterVec
	reloads   *prometheus.CounterVec
}

func newMetrics(d *Daemon) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_requests_total",
		Help: "Front-end requests answered, by op and result (ok or the error status).",
	}, []string{"op", "result"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "switchboard_request_duration_seconds",
		Help:    "Time from a front-end request's admission to its response being queued, by op.",
		Buckets: prometheus.ExponentialBuckets(25e-6, 2, 18), // 25µs … 3.3s
	}, []string{"op"})
	m.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_tier_attempts_total",
		Help: "RESERVE attempts on a tier, by tier and outcome.",
	}, []string{"tier", "outcome"})
	m.failovers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_failovers_total",
		Help: "Allocations served by a tier other than the first one tried, by the tier first tried (from) and the tier that served (to).",
	}, []string{"from", "to"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_reloads_total",
		Help: "Configuration reloads, by result (ok, invalid, requires_restart, failed).",
	}, []string{"result"})
	for op := 1; op < numFrontOps; op++ {
		for st := 0; st < numStatus; st++ {
			result := "ok"
			if st != 0 {
				result = strings.ToLower(wire.Status(st).String())
			}
			m.requests[op][st] = requests.WithLabelValues(opNames[op], result)
		}
		m.latency[op] = latency.WithLabelValues(opNames[op])
	}
	for _, r := range []string{reloadOK, reloadInvalid, reloadRequiresRestart, reloadFailed} {
		m.reloads.WithLabelValues(r) // present at 0 from the start, for alerts
	}
	bi := buildinfo.Read()
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "switchboard_build_info",
		Help:        "Always 1; the labels say which build runs: module version, VCS revision (-modified for a dirty tree), Go version.",
		ConstLabels: prometheus.Labels{"version": bi.Version, "revision": bi.RevisionLabel(), "goversion": bi.GoVersion},
	})
	build.Set(1)
	m.reg.MustRegister(requests, latency, m.attempts, m.failovers, m.reloads, build,
		&collector{d: d}, logDropsCollector{},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Request records one answered front-end request (it implements the
// server's Observer).
func (m *metrics) Request(op wire.Op, st wire.Status, took time.Duration) {
	if int(op) >= numFrontOps || op == 0 || int(st) >= numStatus {
		return
	}
	m.requests[op][st].Inc()
	m.latency[op].Observe(took.Seconds())
}

// tier returns the metric children of the tier named name.
func (m *metrics) tier(name string) *tierMetrics {
	t := &tierMetrics{}
	for o := range t.attempts {
		t.attempts[o] = m.attempts.WithLabelValues(name, route.Outcome(o).String())
	}
	return t
}

// wireFailovers resolves, for each tier of an order, the failover counters
// from every tier before it.
func (m *metrics) wireFailovers(tiers []*tier) {
	for _, to := range tiers {
		to.FailoverFrom = make([]route.Counter, len(tiers))
		for _, from := range tiers {
			if from != to {
				to.FailoverFrom[from.Pos] = m.failovers.WithLabelValues(from.Name, to.Name)
			}
		}
	}
}

// collector reads the daemon's state at scrape time: breakers, pools, keys,
// in-flight requests, config version. It is safe for concurrent use.
type collector struct{ d *Daemon }

var (
	descBreaker   = prometheus.NewDesc("switchboard_breaker_state", "Breaker state by tier: 0 closed, 1 half-open, 2 open.", []string{"tier"}, nil)
	descOverride  = prometheus.NewDesc("switchboard_breaker_override", "Operator breaker override by tier: 0 auto, 1 forced open, 2 forced closed.", []string{"tier"}, nil)
	descDrained   = prometheus.NewDesc("switchboard_tier_drained", "1 when an operator drained the tier (it takes no new allocations).", []string{"tier"}, nil)
	descPoolConns = prometheus.NewDesc("switchboard_pool_connections", "Telephony connections by tier and state (live, dialing, draining).", []string{"tier", "state"}, nil)
	descPoolCalls = prometheus.NewDesc("switchboard_pool_in_flight", "Telephony requests in flight by tier.", []string{"tier"}, nil)
	descInFlight  = prometheus.NewDesc("switchboard_in_flight", "Front-end requests in progress.", nil, nil)
	descAdmLimit  = prometheus.NewDesc("switchboard_admission_limit", "Requests admission lets at the telephony tiers at once: the adaptive limit, which shrinks when their latency shows a queue (the first available tier's pool capacity may bound it lower).", nil, nil)
	descAdmWait   = prometheus.NewDesc("switchboard_admission_waiting", "Requests waiting for a slot at the telephony tiers (at most 50 ms each, then OVERLOADED).", nil, nil)
	descConns     = prometheus.NewDesc("switchboard_connections", "Front-end connections open (bounded by server.max_conns).", nil, nil)
	descRefused   = prometheus.NewDesc("switchboard_connections_refused_total", "Front-end connections closed at accept because server.max_conns were open.", nil, nil)
	descCuts      = prometheus.NewDesc("switchboard_connections_cut_total", "Front-end connections the daemon closed, by reason: idle, read_timeout, write_timeout (client not reading), queue_full, input_overflow (netpoll), evicted (longest-idle, to make room at server.max_conns).", []string{"reason"}, nil)
	descPauses    = prometheus.NewDesc("switchboard_connection_read_pauses_total", "Times the daemon stopped reading a front-end connection at server.max_conn_unanswered or server.max_conn_queued_bytes (until its responses drained).", nil, nil)
	descNotAllow  = prometheus.NewDesc("switchboard_connections_not_allowed_total", "Front-end connections closed at accept because their peer's uid and gid are in neither server.allow_uids nor server.allow_gids.", nil, nil)
	descKeptFail  = prometheus.NewDesc("switchboard_answers_kept_after_failed_write_total", "Allocation answers of a failed front-end write that counted as delivered and kept their bridges: those the kernel took whole (net), or the whole failed batch (netpoll).", nil, nil)
	descIssued    = prometheus.NewDesc("switchboard_keys_issued_total", "Session keys issued since start.", nil, nil)
	descLeft      = prometheus.NewDesc("switchboard_keys_left", "Session keys this node can still issue.", nil, nil)
	descKeyWaits  = prometheus.NewDesc("switchboard_key_waits_total", "Requests that found no session key buffered and waited for the lease store (a slow data directory).", nil, nil)
	descOrphans   = prometheus.NewDesc("switchboard_orphans_pending", "Possibly orphaned reservations waiting to be released.", nil, nil)
	descStranded  = prometheus.NewDesc("switchboard_orphans_stranded", "Pending orphans held by a server no configured tier has; kept until it is configured again.", nil, nil)
	descVersion   = prometheus.NewDesc("switchboard_config_version", "Configuration generation in force: 1 at start, +1 per successful reload.", nil, nil)
	descReloadAt  = prometheus.NewDesc("switchboard_config_last_reload_success_timestamp_seconds", "When the configuration in force was loaded.", nil, nil)
	descStart     = prometheus.NewDesc("switchboard_start_time_seconds", "When the daemon started.", nil, nil)

	// The session index (fastcache.Stats), read at scrape time. Entries
	// counts overwritten entries too, until their bytes are reused.
	descIdxEntries     = prometheus.NewDesc("switchboard_index_entries", "Entries in the session index (sessions, idempotency tokens), overwritten ones included until their space is reused.", nil, nil)
	descIdxBytes       = prometheus.NewDesc("switchboard_index_bytes", "Bytes the session index occupies (off the Go heap; counted in RSS).", nil, nil)
	descIdxMaxBytes    = prometheus.NewDesc("switchboard_index_max_bytes", "The session index's capacity in bytes (cache.size_mb, rounded up to 32 MiB steps).", nil, nil)
	descIdxGets        = prometheus.NewDesc("switchboard_index_get_calls_total", "Session index lookups since start.", nil, nil)
	descIdxSets        = prometheus.NewDesc("switchboard_index_set_calls_total", "Session index writes since start.", nil, nil)
	descIdxMisses      = prometheus.NewDesc("switchboard_index_misses_total", "Session index lookups that found nothing (the telephony servers are asked instead).", nil, nil)
	descIdxCollisions  = prometheus.NewDesc("switchboard_index_collisions_total", "Session index lookups that met another key with the same hash (a miss, never a wrong answer).", nil, nil)
	descIdxCorruptions = prometheus.NewDesc("switchboard_index_corruptions_total", "Session index entries found damaged (dropped and treated as misses).", nil, nil)
)

// Metrics of the key store (daemon/keys.go collects them).
var (
	descKeysReady   = prometheus.NewDesc("switchboard_keys_ready", "1 when a session key can be issued now (keys buffered, or the lease store answers); 0 while ALLOCATE gets KEYS_EXHAUSTED because the store is failing or was never reached (sbctl status says why).", nil, nil)
	descLeaseErrors = prometheus.NewDesc("switchboard_keys_lease_errors_total", "Failed attempts to lease counters from the key store (or to attach to it) since start.", nil, nil)
	descRollbacks   = prometheus.NewDesc("switchboard_keys_store_rollbacks_total", "etcd store only: restores of etcd this daemon found after the fact (its own last lease undone: keys it issued may be issued again by another daemon; the fleet is fenced). Any increase needs an operator (docs/operations.md, Backups).", nil, nil)
	descStoreTxns   = prometheus.NewDesc("switchboard_keys_store_txns_total", "etcd lease transactions by result: committed, lost_race (another daemon moved the mark first; retried), unknown (no answer; the counters are never used).", []string{"result"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBreaker, descOverride, descDrained, descPoolConns, descPoolCalls,
		descInFlight, descAdmLimit, descAdmWait, descConns, descRefused, descCuts, descPauses, descNotAllow, descKeptFail, descIssued, descLeft, descKeyWaits, descOrphans, descStranded, descVersion, descReloadAt, descStart,
		descIdxEntries, descIdxBytes, descIdxMaxBytes, descIdxGets, descIdxSets, descIdxMisses, descIdxCollisions, descIdxCorruptions} {
		ch <- d
	}
	describeKeys(ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st, ok := c.d.running()
	if !ok {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, t := range st.rt.Tiers() {
		gauge(descBreaker, float64(t.Breaker.State()), t.Name)
		gauge(descOverride, float64(t.Breaker.Override()), t.Name)
		gauge(descDrained, b2f(t.Ctl.Drained.Load()), t.Name)
		ps := t.Pool.Stats()
		live, dialing, draining := poolCounts(ps)
		gauge(descPoolConns, float64(live), t.Name, "live")
		gauge(descPoolConns, float64(dialing), t.Name, "dialing")
		gauge(descPoolConns, float64(draining), t.Name, "draining")
		gauge(descPoolCalls, float64(ps.InFlight), t.Name)
	}
	ss := st.srv.Stats()
	gauge(descInFlight, float64(ss.InFlight))
	gauge(descAdmLimit, float64(ss.AdmissionLimit))
	gauge(descAdmWait, float64(ss.AdmissionWaiting))
	gauge(descConns, float64(ss.Open))
	ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(ss.Refused))
	for r, name := range frontend.CutReasons() {
		ch <- prometheus.MustNewConstMetric(descCuts, prometheus.CounterValue, float64(ss.Cuts[r]), name)
	}
	ch <- prometheus.MustNewConstMetric(descPauses, prometheus.CounterValue, float64(ss.Pauses))
	ch <- prometheus.MustNewConstMetric(descNotAllow, prometheus.CounterValue, float64(ss.NotAllowed))
	ch <- prometheus.MustNewConstMetric(descKeptFail, prometheus.CounterValue, float64(ss.KeptAfterFailedWrite))
	rs := st.rt.Stats()
	ks := c.d.keys.Stats()
	ch <- prometheus.MustNewConstMetric(descIssued, prometheus.CounterValue, float64(ks.Issued))
	gauge(descLeft, float64(ks.Left))
	ch <- prometheus.MustNewConstMetric(descKeyWaits, prometheus.CounterValue, float64(rs.KeyWaits))
	c.d.collectKeys(ch, ks)
	gauge(descOrphans, float64(rs.Orphans))
	gauge(descStranded, float64(rs.Stranded))
	gauge(descVersion, float64(c.d.version.Load()))
	gauge(descReloadAt, float64(c.d.loadedAt.Load())/1e9)
	gauge(descStart, float64(c.d.started.UnixNano())/1e9)
	var is fastcache.Stats
	st.rt.IndexStats(&is) // takes each bucket's lock in turn, briefly: scrape time only
	gauge(descIdxEntries, float64(is.EntriesCount))
	gauge(descIdxBytes, float64(is.BytesSize))
	gauge(descIdxMaxBytes, float64(is.MaxBytesSize))
	counterOf := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counterOf(descIdxGets, is.GetCalls)
	counterOf(descIdxSets, is.SetCalls)
	counterOf(descIdxMisses, is.Misses)
	counterOf(descIdxCollisions, is.Collisions)
	counterOf(descIdxCorruptions, is.Corruptions)
}

func poolCounts(ps pool.Stats) (live, dialing, draining int) {
	for _, s := range ps.Servers {
		live += s.Live
		dialing += s.Dialing
		draining += s.Draining
	}
	return
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// metricsServer serves /metrics over HTTP on a loopback address. Run owns
// its goroutine; shutdown stops it and waits.
type metricsServer struct {
	hs   *http.Server
	ln   net.Listener
	path string // the Unix socket's, removed at shutdown; empty on TCP
	done chan struct{}
}

// The metrics server's limits: its port is open to every local user, so
// connections are bounded (the one idle the longest is closed for a new
// one: internal/httpbound), an idle keep-alive connection is closed, and a
// request must be read and answered in bounded time.
const (
	metricsMaxConns    = 64
	metricsIdleTimeout = 30 * time.Second
	metricsTimeout     = 30 * time.Second // header read: 5 s of it
)

func startMetricsServer(log *zap.Logger, addr string, reg *prometheus.Registry) (*metricsServer, error) {
	var ln net.Listener
	var err error
	path, isUnix := strings.CutPrefix(addr, "unix:")
	if isUnix {
		// Mode 0660: the owner and group (the scraping agent's) only.
		ln, err = unixsock.Listen(path, 0o660)
	} else {
		ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:          zap.NewStdLog(log),
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: metricsTimeout, WriteTimeout: metricsTimeout,
		IdleTimeout: metricsIdleTimeout, ErrorLog: zap.NewStdLog(log)}
	m := &metricsServer{
		hs:   hs,
		ln:   httpbound.Bound(hs, ln, metricsMaxConns),
		done: make(chan struct{}),
	}
	if isUnix {
		m.path = path
	}
	go func() {
		defer close(m.done)
		if err := m.hs.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", zap.Error(err))
		}
	}()
	return m, nil
}

func (m *metricsServer) addr() net.Addr { return m.ln.Addr() }

func (m *metricsServer) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := m.hs.Shutdown(ctx); err != nil {
		m.hs.Close()
	}
	<-m.done
	if m.path != "" {
		os.Remove(m.path)
	}
}

var descLogDropped = prometheus.NewDesc("switchboard_log_dropped_total",
	"Log lines the sampler dropped (past 100 of one message per second, all but every 100th), by level.", []string{"level"}, nil)

// logDropsCollector exports logDropped at scrape time.
type logDropsCollector struct{}

func (logDropsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descLogDropped }

func (logDropsCollector) Collect(ch chan<- prometheus.Metric) {
	for i := range logDropped {
		lvl := zapcore.DebugLevel + zapcore.Level(i)
		ch <- prometheus.MustNewConstMetric(descLogDropped, prometheus.CounterValue, float64(logDropped[i].Load()), lvl.String())
	}
}
