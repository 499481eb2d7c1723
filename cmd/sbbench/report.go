package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// summary is a run's result: what -json prints, field for field. Latencies
// are in µs with 0.1 µs resolution. Sent counts every allocation due in the
// measured window, so sent = ok + overloaded + the sum of errors
// (client_backlog included: due but not sent). OVERLOADED answers (the
// daemon shed the request: retry later) are counted in overloaded, never in
// errors, so that shedding under a burst is not mistaken for UNAVAILABLE or
// any other failure.
type summary struct {
	Mode        string  `json:"mode"`                  // "rate" or "concurrency"
	TargetRate  float64 `json:"target_rate,omitempty"` // -rate
	Concurrency int     `json:"concurrency,omitempty"` // -concurrency
	Conns       int     `json:"conns"`
	Socket      string  `json:"socket"`

	Sent       int64            `json:"sent"`
	OK         int64            `json:"ok"`
	Overloaded int64            `json:"overloaded"` // answered OVERLOADED (shed by the daemon)
	Errors     map[string]int64 `json:"errors"`     // code → count: wire status names but OVERLOADED, client_*, transport
	Rate       float64          `json:"rate"`       // ok allocations per second over duration_s
	ByTier     map[string]int64 `json:"by_tier"`    // tier → ok allocations
	DurationS  float64          `json:"duration_s"`
	WarmupS    float64          `json:"warmup_s"`
	WarmupSent int64            `json:"warmup_sent"`

	P50  float64 `json:"p50_us"`
	P90  float64 `json:"p90_us"`
	P99  float64 `json:"p99_us"`
	P999 float64 `json:"p999_us"`
	Max  float64 `json:"max_us"`

	// The generator's own lateness: actual send − intended send.
	LagP50 float64 `json:"send_lag_p50_us"`
	LagP99 float64 `json:"send_lag_p99_us"`
	LagMax float64 `json:"send_lag_max_us"`

	// Releases of every allocation, warmup included.
	Released      int64            `json:"released"`
	ReleaseErrors map[string]int64 `json:"release_errors"`
	ReleaseShed   int64            `json:"release_overloaded"` // releases answered OVERLOADED
	ReleaseP50    float64          `json:"release_p50_us"`
	ReleaseP99    float64          `json:"release_p99_us"`

	Interrupted bool `json:"interrupted"` // stopped early by a signal

	// Every -fault, in time order, with what became of it.
	Faults []injection `json:"faults"`
	// What -reload-every did; absent without it.
	Reloads *reloadSummary `json:"reloads,omitempty"`
	// The measured window in rows of timeline_step_s seconds.
	TimelineStepS float64       `json:"timeline_step_s"`
	Timeline      []timelineRow `json:"timeline"`
}

func writeJSON(w io.Writer, s *summary) error {
	if s.Faults == nil {
		s.Faults = []injection{}
	}
	if s.Timeline == nil {
		s.Timeline = []timelineRow{}
	}
	enc := json.NewEncoder(w)
	return enc.Encode(s)
}

func writeText(w io.Writer, s *summary) error {
	var b strings.Builder
	switch s.Mode {
	case "rate":
		fmt.Fprintf(&b, "sbbench: open loop, %g allocations/s", s.TargetRate)
	default:
		fmt.Fprintf(&b, "sbbench: closed loop, %d workers", s.Concurrency)
	}
	fmt.Fprintf(&b, ", %d conn(s), %s\n", s.Conns, s.Socket)
	if s.Interrupted {
		b.WriteString("interrupted: stopped early by a signal\n")
	}
	fmt.Fprintf(&b, "measured      %.3fs (after %gs warmup, %d warmup allocations)\n", s.DurationS, s.WarmupS, s.WarmupSent)
	fmt.Fprintf(&b, "sent          %d\n", s.Sent)
	fmt.Fprintf(&b, "ok            %d\n", s.OK)
	fmt.Fprintf(&b, "overloaded    %d (shed by the daemon: retry later)\n", s.Overloaded)
	fmt.Fprintf(&b, "errors        %d%s\n", sum(s.Errors), paren(counts(s.Errors)))
	fmt.Fprintf(&b, "rate          %.1f/s\n", s.Rate)
	fmt.Fprintf(&b, "latency µs    p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n", s.P50, s.P90, s.P99, s.P999, s.Max)
	if s.Mode == "rate" {
		fmt.Fprintf(&b, "send lag µs   p50 %.1f  p99 %.1f  max %.1f\n", s.LagP50, s.LagP99, s.LagMax)
	}
	fmt.Fprintf(&b, "by tier       %s\n", counts(s.ByTier))
	fmt.Fprintf(&b, "releases      %d ok, %d overloaded, %d errors%s; p50 %.1f µs, p99 %.1f µs\n",
		s.Released, s.ReleaseShed, sum(s.ReleaseErrors), paren(counts(s.ReleaseErrors)), s.ReleaseP50, s.ReleaseP99)
	writeFaults(&b, s.Faults)
	writeReloads(&b, s.Reloads)
	writeTimeline(&b, s.TimelineStepS, s.Timeline)
	_, err := io.WriteString(w, b.String())
	return err
}

// lateNote is how late an injection may be issued before the fault log
// says when it was due.
const lateNote = 10 * time.Millisecond

// writeFaults prints the fault log: one line per -fault, in time order.
func writeFaults(b *strings.Builder, faults []injection) {
	for i, f := range faults {
		label := "faults"
		if i > 0 {
			label = ""
		}
		what := f.Addr + " " + f.Fault
		switch f.Result {
		case resultSkipped:
			fmt.Fprintf(b, "%-13s due %s  %s: skipped, %s\n", label, offset(f.AtS), what, f.Error)
			continue
		case resultOK:
			fmt.Fprintf(b, "%-13s %s  %s: ok in %s (in force: %s)", label, offset(f.IssuedS), what, usText(f.TookUS), f.InForce)
		default:
			fmt.Fprintf(b, "%-13s %s  %s: FAILED in %s: %s", label, offset(f.IssuedS), what, usText(f.TookUS), f.Error)
		}
		if time.Duration((f.IssuedS-f.AtS)*float64(time.Second)) > lateNote {
			fmt.Fprintf(b, " (due %s)", offset(f.AtS))
		}
		b.WriteByte('\n')
	}
}

// writeReloads prints what -reload-every did and the p99 of the timeline
// rows during reloads against the other rows.
func writeReloads(b *strings.Builder, r *reloadSummary) {
	if r == nil {
		return
	}
	fmt.Fprintf(b, "reloads       every %s via %s: %d ok, %d failed", num(r.EveryS)+"s", r.AdminSocket, r.OK, r.Failed)
	if r.Skipped > 0 {
		fmt.Fprintf(b, ", %d skipped (the previous one was still running)", r.Skipped)
	}
	if r.OK+r.Failed > 0 {
		fmt.Fprintf(b, "; took p50 %s, max %s", usText(r.TookP50US), usText(r.TookMaxUS))
	}
	if r.LastVersion > 0 {
		fmt.Fprintf(b, "; config version %d", r.LastVersion)
	}
	b.WriteByte('\n')
	if r.FirstError != "" {
		fmt.Fprintf(b, "%-13s first failure: %s\n", "", r.FirstError)
	}
	switch {
	case r.RowsWith == 0:
		fmt.Fprintf(b, "%-13s no row with allocations had a reload in progress: nothing to compare\n", "")
	case r.RowsWithout == 0:
		fmt.Fprintf(b, "%-13s every row had a reload in progress: nothing to compare with (use a -timeline-step below -reload-every)\n", "")
	default:
		fmt.Fprintf(b, "%-13s p99 µs of rows during a reload %.1f (%s), of the other rows %.1f (%s): ratio %.2f\n",
			"", r.P99With, rowCount(r.RowsWith), r.P99Without, rowCount(r.RowsWithout), r.P99Ratio)
	}
}

// rowCount renders n timeline rows: "1 row", "3 rows".
func rowCount(n int) string {
	if n == 1 {
		return "1 row"
	}
	return fmt.Sprintf("%d rows", n)
}

// writeTimeline prints the timeline as a table: a column per tier (in the
// order tiers first served), then notes: errors by code and the faults
// injected in the row.
func writeTimeline(b *strings.Builder, stepS float64, rows []timelineRow) {
	if len(rows) == 0 {
		return
	}
	var tiers []string
	for _, r := range rows {
		for _, t := range sortedKeys(r.ByTier) {
			if !slices.Contains(tiers, t) {
				tiers = append(tiers, t)
			}
		}
	}
	fmt.Fprintf(b, "timeline      rows of %ss from the end of warmup (by intended send time); latency of ok allocations\n", num(stepS))
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "t\tsent\tok\toverloaded\terrors\tp50 µs\tp99 µs\t")
	for _, t := range tiers {
		fmt.Fprintf(tw, "%s\t", t)
	}
	fmt.Fprint(tw, "  notes\n")
	for _, r := range rows {
		fmt.Fprintf(tw, "%ss\t%d\t%d\t%d\t%d\t%.1f\t%.1f\t", num(r.T), r.Sent, r.OK, r.Overloaded, sum(r.Errors), r.P50, r.P99)
		for _, t := range tiers {
			fmt.Fprintf(tw, "%d\t", r.ByTier[t])
		}
		var notes []string
		if len(r.Errors) > 0 {
			notes = append(notes, counts(r.Errors))
		}
		for _, f := range r.Faults {
			notes = append(notes, "fault "+f.Addr+" "+f.Fault+" "+f.Result)
		}
		switch {
		case r.ReloadsFailed > 0:
			notes = append(notes, fmt.Sprintf("reload %d ok, %d FAILED", r.Reloads-r.ReloadsFailed, r.ReloadsFailed))
		case r.Reloads > 0:
			notes = append(notes, fmt.Sprintf("reload %d ok", r.Reloads))
		case r.Reloading:
			notes = append(notes, "reloading")
		}
		fmt.Fprintf(tw, "  %s\n", strings.Join(notes, "; "))
	}
	_ = tw.Flush() // writes to a strings.Builder: cannot fail
}

// offset renders seconds after the end of warmup, e.g. "+3.000s".
func offset(s float64) string { return fmt.Sprintf("+%.3fs", s) }

// num renders a number of seconds without trailing zeros: 1, 0.25.
func num(s float64) string { return strconv.FormatFloat(s, 'f', -1, 64) }

// usText renders µs readably: "850µs", "12.3ms".
func usText(us float64) string {
	if us < 1000 {
		return fmt.Sprintf("%.0fµs", us)
	}
	return fmt.Sprintf("%.1fms", us/1000)
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// counts renders m as "a 1, b 2", sorted by key; "none" when empty.
func counts(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := sortedKeys(m)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// paren renders c as " (c)", or "" for "none".
func paren(c string) string {
	if c == "none" {
		return ""
	}
	return " (" + c + ")"
}
