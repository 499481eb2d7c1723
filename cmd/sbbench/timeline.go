package main

import (
	"math"
	"slices"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Timeline sizing. Each row with successful allocations holds a latency
// histogram of about 37 KB (1 ns to 1 h, 2 significant digits: 1 %
// resolution, enough for a row's p50 and p99), so a timeline is capped at
// maxTimelineRows rows (about 22 MB): a longer run gets wider rows.
const (
	defaultTimelineStep = time.Second
	minTimelineStep     = time.Millisecond
	maxTimelineRows     = 600
	rowHistDigits       = 2
)

// effectiveStep returns the row width for a measured window of duration:
// step, widened (to a whole millisecond) when the window would need more
// than maxTimelineRows rows.
func effectiveStep(step, duration time.Duration) time.Duration {
	if step <= 0 {
		step = defaultTimelineStep
	}
	if rows := (duration + step - 1) / step; rows <= maxTimelineRows {
		return step
	}
	wide := (duration + maxTimelineRows - 1) / maxTimelineRows
	return (wide + time.Millisecond - 1).Truncate(time.Millisecond)
}

// timelineRow is one row of the timeline: the allocations due in
// [t, t+step) after the end of warmup, and the faults injected then. As
// in the summary, sent = ok + overloaded + the sum of errors and latencies are those of
// ok allocations, in µs, measured from the intended send time.
type timelineRow struct {
	T    float64 `json:"t_s"` // start of the row, seconds after the end of warmup
	Sent int64   `json:"sent"`
	OK   int64   `json:"ok"`
	// Overloaded counts OVERLOADED answers (not in Errors).
	Overloaded int64            `json:"overloaded"`
	Errors     map[string]int64 `json:"errors"`  // code → count
	P50        float64          `json:"p50_us"`  // 0 when no allocation succeeded
	P99        float64          `json:"p99_us"`  // 0 when no allocation succeeded
	ByTier     map[string]int64 `json:"by_tier"` // tier → ok allocations
	Faults     []injection      `json:"faults"`  // injections issued in the row, in order
	// -reload-every: reloads issued in the row (failed ones included),
	// those that failed, and whether a reload was in progress at any time
	// during the row (issued in it or running on from an earlier row).
	Reloads       int  `json:"reloads"`
	ReloadsFailed int  `json:"reloads_failed"`
	Reloading     bool `json:"reloading"`
}

// bucket accumulates one row.
type bucket struct {
	sent, ok int64
	shed     int64            // OVERLOADED answers
	errs     map[string]int64 // nil until the first error
	tiers    map[string]int64 // nil until the first ok
	lat      *hdrhistogram.Histogram
	faults   []injection

	reloads, reloadsFailed int
	reloading              bool
}

// timeline is the observer that buckets measured allocations by the row
// their intended send time falls in (so a stall shows in the row where the
// requests were due, not where they were answered) and files each fault
// injection under the row it was issued in. Warmup allocations are
// ignored. It is safe for concurrent use.
type timeline struct {
	from time.Time     // end of warmup: row 0 starts here
	step time.Duration // row width
	max  int           // rows; later times are filed in the last row

	mu   sync.Mutex
	rows []bucket // grown on demand, up to max
}

// newTimeline returns a timeline of a measured window of duration starting
// at from, in rows of step (see effectiveStep).
func newTimeline(from time.Time, step, duration time.Duration) *timeline {
	n := int((duration + step - 1) / step)
	return &timeline{from: from, step: step, max: max(n, 1)}
}

// rowLocked returns the bucket of time t, or nil for a time before from.
func (tl *timeline) rowLocked(t time.Time) *bucket {
	d := t.Sub(tl.from)
	if d < 0 {
		return nil
	}
	i := min(int(d/tl.step), tl.max-1)
	for len(tl.rows) <= i {
		tl.rows = append(tl.rows, bucket{})
	}
	return &tl.rows[i]
}

func (tl *timeline) allocation(o *outcome) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	b := tl.rowLocked(o.intended)
	if b == nil {
		return // warmup
	}
	b.sent++
	if isOverloaded(o.err) {
		b.shed++
		return
	}
	if o.err != nil {
		if b.errs == nil {
			b.errs = make(map[string]int64)
		}
		b.errs[errorCode(o.err)]++
		return
	}
	b.ok++
	if b.tiers == nil {
		b.tiers = make(map[string]int64)
		b.lat = hdrhistogram.New(histLowest, histHighest, rowHistDigits)
	}
	b.tiers[o.tier]++
	record(b.lat, o.done.Sub(o.intended))
}

func (tl *timeline) release(*outcome) {}

// injected files inj under the row of its issue time (row 0 if it was
// issued before the end of warmup).
func (tl *timeline) injected(inj *injection) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	t := tl.from.Add(time.Duration(math.Round(max(inj.IssuedS, 0) * float64(time.Second))))
	b := tl.rowLocked(t)
	b.faults = append(b.faults, *inj)
}

// reloaded files c under the row of its issue time and marks every row
// its call overlapped as reloading.
func (tl *timeline) reloaded(c *reloadCall) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	at := func(s float64) time.Time {
		return tl.from.Add(time.Duration(math.Round(max(s, 0) * float64(time.Second))))
	}
	b := tl.rowLocked(at(c.IssuedS))
	b.reloads++
	if !c.OK {
		b.reloadsFailed++
	}
	first := tl.index(at(c.IssuedS))
	last := tl.index(at(c.IssuedS + c.TookS))
	for i := first; i <= last; i++ {
		tl.rowLocked(tl.from.Add(time.Duration(i) * tl.step)).reloading = true
	}
}

// index returns the row of time t (not before from).
func (tl *timeline) index(t time.Time) int {
	return min(int(max(t.Sub(tl.from), 0)/tl.step), tl.max-1)
}

// reloadSplit merges the latency of the rows with ok allocations into
// those during which a reload was in progress and the others, and sets the
// row counts, the p99 of each side and their ratio in r.
func (tl *timeline) reloadSplit(r *reloadSummary) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	with := hdrhistogram.New(histLowest, histHighest, rowHistDigits)
	without := hdrhistogram.New(histLowest, histHighest, rowHistDigits)
	r.RowsWith, r.RowsWithout = 0, 0
	for i := range tl.rows {
		b := &tl.rows[i]
		if b.lat == nil {
			continue
		}
		if b.reloading {
			r.RowsWith++
			with.Merge(b.lat)
		} else {
			r.RowsWithout++
			without.Merge(b.lat)
		}
	}
	_, _, r.P99With, _, _ = percentiles(with)
	_, _, r.P99Without, _, _ = percentiles(without)
	r.P99Ratio = 0
	if r.P99With > 0 && r.P99Without > 0 {
		r.P99Ratio = r.P99With / r.P99Without
	}
}

// snapshot returns the rows from the end of warmup to the later of loadEnd
// and the last row with data (rows without any allocation are included,
// with zeros: a window in which nothing was due or sent).
func (tl *timeline) snapshot(loadEnd time.Time) []timelineRow {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	n := len(tl.rows)
	if d := loadEnd.Sub(tl.from); d > 0 {
		n = max(n, min(int((d+tl.step-1)/tl.step), tl.max))
	}
	out := make([]timelineRow, n)
	for i := range out {
		r := timelineRow{
			T:      (time.Duration(i) * tl.step).Seconds(),
			Errors: map[string]int64{},
			ByTier: map[string]int64{},
			Faults: []injection{},
		}
		if i < len(tl.rows) {
			b := &tl.rows[i]
			r.Sent, r.OK, r.Overloaded = b.sent, b.ok, b.shed
			r.Errors, r.ByTier = copyCounts(b.errs), copyCounts(b.tiers)
			r.Faults = append(r.Faults, b.faults...)
			r.Reloads, r.ReloadsFailed, r.Reloading = b.reloads, b.reloadsFailed, b.reloading
			slices.SortStableFunc(r.Faults, func(a, b injection) int {
				switch {
				case a.IssuedS < b.IssuedS:
					return -1
				case a.IssuedS > b.IssuedS:
					return 1
				}
				return 0
			})
			if b.lat != nil {
				r.P50, _, r.P99, _, _ = percentiles(b.lat)
			}
		}
		out[i] = r
	}
	return out
}
