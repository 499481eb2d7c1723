package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"switchboard/client"
	"switchboard/wire"
)

// errClientBacklog is the outcome of an open-loop request that was due
// while -max-inflight requests were already waiting: it was not sent.
var errClientBacklog = errors.New("sbbench: too many requests in flight, not sent")

// Error codes that are not wire statuses.
const (
	codeBacklog   = "client_backlog" // not sent: the in-flight cap was reached
	codeTimeout   = "client_timeout" // no answer within -timeout
	codeCanceled  = "canceled"       // the run was stopped while waiting
	codeBusy      = "client_busy"    // not sent: the client connection's in-flight cap
	codeConnLost  = "conn_lost"      // the connection died before the answer
	codeClosed    = "conn_closed"    // the connection was already dead
	codeTransport = "transport"      // any other client-side failure
)

// isOverloaded reports whether err is the daemon shedding the request
// (OVERLOADED: "busy, retry later"). It is counted apart from the errors:
// a shed request is the daemon protecting itself, not a failure of it.
func isOverloaded(err error) bool { return errors.Is(err, wire.StatusOverloaded) }

// errorCode maps an error to the code it is counted under: the wire status
// name for an answer from the daemon, a client_* or transport code else.
func errorCode(err error) string {
	var re *wire.RemoteError
	var st wire.Status
	switch {
	case errors.As(err, &re):
		return re.Status.String()
	case errors.As(err, &st):
		return st.String()
	case errors.Is(err, errClientBacklog):
		return codeBacklog
	case errors.Is(err, context.DeadlineExceeded):
		return codeTimeout
	case errors.Is(err, context.Canceled):
		return codeCanceled
	case errors.Is(err, client.ErrBusy):
		return codeBusy
	case errors.Is(err, client.ErrConnLost):
		return codeConnLost
	case errors.Is(err, client.ErrConnClosed), errors.Is(err, client.ErrClosed):
		return codeClosed
	}
	return codeTransport
}

// outcome is what became of one request.
type outcome struct {
	seq      int64     // allocation sequence number, from 0
	intended time.Time // when it was due (closed loop: when it was sent)
	sent     time.Time // when it was handed to the client; zero if never sent
	done     time.Time // when the answer (or error) came back
	key      uint64    // allocated or released key
	tier     string    // the tier that served an allocation
	err      error
}

// observer sees every outcome as it happens, from many goroutines at once.
// The recorder that makes the summary is one; a per-second timeline is
// another that can be added without touching the load loops.
type observer interface {
	allocation(o *outcome)
	release(o *outcome)
}

// Histogram range: 1 ns to 1 h, 3 significant digits.
const (
	histLowest  = 1
	histHighest = int64(time.Hour)
	histDigits  = 3
)

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histLowest, histHighest, histDigits)
}

func record(h *hdrhistogram.Histogram, d time.Duration) {
	v := max(int64(d), histLowest)
	_ = h.RecordValue(min(v, histHighest)) // in range by construction
}

// recorder accumulates the summary. Allocations due before measureFrom are
// warmup: counted apart and otherwise ignored. Only successful allocations
// enter the latency histogram; errors are counted by code. It is safe for
// concurrent use.
type recorder struct {
	measureFrom time.Time

	mu       sync.Mutex
	lat      *hdrhistogram.Histogram // done − intended, ok allocations
	lag      *hdrhistogram.Histogram // sent − intended, every sent allocation
	rel      *hdrhistogram.Histogram // release round trips
	sent     int64
	ok       int64
	shed     int64 // answered OVERLOADED
	warmup   int64
	errs     map[string]int64
	tiers    map[string]int64
	released int64
	relShed  int64 // releases answered OVERLOADED
	relErrs  map[string]int64
	last     time.Time // latest answer to a measured allocation
}

func newRecorder(measureFrom time.Time) *recorder {
	return &recorder{
		measureFrom: measureFrom,
		lat:         newHistogram(),
		lag:         newHistogram(),
		rel:         newHistogram(),
		errs:        make(map[string]int64),
		tiers:       make(map[string]int64),
		relErrs:     make(map[string]int64),
	}
}

func (r *recorder) allocation(o *outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o.intended.Before(r.measureFrom) {
		r.warmup++
		return
	}
	r.sent++
	if o.done.After(r.last) {
		r.last = o.done
	}
	if !o.sent.IsZero() {
		record(r.lag, o.sent.Sub(o.intended))
	}
	if isOverloaded(o.err) {
		r.shed++
		return
	}
	if o.err != nil {
		r.errs[errorCode(o.err)]++
		return
	}
	r.ok++
	r.tiers[o.tier]++
	record(r.lat, o.done.Sub(o.intended))
}

func (r *recorder) release(o *outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if isOverloaded(o.err) {
		r.relShed++
		return
	}
	if o.err != nil {
		r.relErrs[errorCode(o.err)]++
		return
	}
	r.released++
	record(r.rel, o.done.Sub(o.sent))
}

// summary returns the totals. loadEnd is when the load loop stopped
// sending; the measured window runs from measureFrom to the later of
// loadEnd and the last measured answer.
func (r *recorder) summary(loadEnd time.Time) summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	end := loadEnd
	if r.last.After(end) {
		end = r.last
	}
	window := max(end.Sub(r.measureFrom), 0)
	s := summary{
		Sent:          r.sent,
		OK:            r.ok,
		Overloaded:    r.shed,
		Errors:        copyCounts(r.errs),
		ByTier:        copyCounts(r.tiers),
		DurationS:     window.Seconds(),
		WarmupSent:    r.warmup,
		Released:      r.released,
		ReleaseErrors: copyCounts(r.relErrs),
		ReleaseShed:   r.relShed,
	}
	if window > 0 {
		s.Rate = float64(r.ok) / window.Seconds()
	}
	s.P50, s.P90, s.P99, s.P999, s.Max = percentiles(r.lat)
	s.LagP50, _, s.LagP99, _, s.LagMax = percentiles(r.lag)
	s.ReleaseP50, _, s.ReleaseP99, _, _ = percentiles(r.rel)
	return s
}

// percentiles returns p50, p90, p99, p99.9 and max of h in µs.
func percentiles(h *hdrhistogram.Histogram) (p50, p90, p99, p999, maxv float64) {
	if h.TotalCount() == 0 {
		return
	}
	q := h.ValueAtPercentiles([]float64{50, 90, 99, 99.9})
	return micros(q[50]), micros(q[90]), micros(q[99]), micros(q[99.9]), micros(h.Max())
}

// micros converts ns to µs with 0.1 µs resolution.
func micros(ns int64) float64 { return float64((ns+50)/100) / 10 }

func copyCounts(m map[string]int64) map[string]int64 {
	c := make(map[string]int64, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// fanout passes every outcome to each observer in turn.
type fanout []observer

func (f fanout) allocation(o *outcome) {
	for _, ob := range f {
		ob.allocation(o)
	}
}

func (f fanout) release(o *outcome) {
	for _, ob := range f {
		ob.release(o)
	}
}

// latency returns a copy of the histogram of the ok allocations' latencies
// (ns, from the intended send time): what -hgrm writes.
func (r *recorder) latency() *hdrhistogram.Histogram {
	r.mu.Lock()
	defer r.mu.Unlock()
	return hdrhistogram.Import(r.lat.Export())
}
