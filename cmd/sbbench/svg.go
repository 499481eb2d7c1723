package main

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strings"
)

// The picture's geometry, in SVG user units (pixels).
const (
	svgWidth  = 960
	svgLeft   = 72  // room for the y axis labels
	svgRight  = 180 // room for the legend
	svgPanelH = 170
	svgGap    = 46
	svgTop    = 84
)

// tierColors colour the tiers in the daemon's order; others get grey.
var tierColors = map[string]string{"primary-large": "#4e79a7", "nextgen": "#f28e2b", "backup2-large": "#59a14f"}

// renderSVG draws the report as one self-contained SVG document (no
// script, no external font or style): for load phases, latency p50 and p99
// (log scale), throughput and the per-tier share over time, with every
// fault injection (class "fault") and reload (class "reload") marked by a
// vertical line across the panels; for the throughput scenario, a bar per
// peerbench run. The checks are listed below.
func renderSVG(r *scenarioReport) string {
	var body strings.Builder
	y := svgTop
	if len(r.Phases) > 0 {
		y = drawTimeline(&body, r, y)
	}
	if len(r.Peers) > 0 {
		y = drawPeers(&body, r, y)
	}
	y += 10
	for _, c := range r.Checks {
		verdict, colour := "met", "#2b7a2b"
		switch {
		case c.Limit == "":
			colour = "#333333"
		case !c.Met:
			verdict, colour = "NOT met", "#b22222"
		}
		fmt.Fprintf(&body, `<text x="%d" y="%d" class="check" fill="%s">%s</text>`+"\n", svgLeft, y, colour, esc(c.text(verdict)))
		y += 18
	}
	y += 10
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgWidth, y, svgWidth, y)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="16" font-weight="bold">sbbench scenario %s</text>`+"\n", svgLeft, esc(r.Scenario))
	fmt.Fprintf(&b, `<text x="%d" y="42" fill="#555555">%s · %d × %s · Go %s · load average %s → %s · %s</text>`+"\n",
		svgLeft, r.Started.Format("2006-01-02 15:04 UTC"), r.Machine.CPUs, esc(r.Machine.CPU), esc(strings.TrimPrefix(r.Machine.Go, "go")),
		esc(r.Machine.LoadStart), esc(r.Machine.LoadFinish), esc(r.Build))
	b.WriteString(body.String())
	b.WriteString("</svg>\n")
	return b.String()
}

func esc(s string) string { return html.EscapeString(s) }

// point is one timeline row placed on the scenario's time axis.
type point struct {
	t, step float64 // seconds from the start of the first phase; row width
	row     *timelineRow
}

// drawTimeline draws the three panels of the load phases, one after the
// other on one time axis, from y; it returns the y below them.
func drawTimeline(b *strings.Builder, r *scenarioReport, y int) int {
	var pts []point
	type mark struct {
		t           float64
		class, text string
	}
	var marks []mark
	var tiers []string
	offset := 0.0
	for _, p := range r.Phases {
		s := &p.Summary
		if len(r.Phases) > 1 {
			text := p.Name
			if p.DaemonRSSKB > 0 {
				text += fmt.Sprintf(" · RSS %.1f MiB", float64(p.DaemonRSSKB)/1024)
			}
			marks = append(marks, mark{offset, "phase", text})
		}
		for i := range s.Timeline {
			row := &s.Timeline[i]
			pts = append(pts, point{offset + row.T, s.TimelineStepS, row})
			for _, t := range sortedKeys(row.ByTier) {
				if !slices.Contains(tiers, t) {
					tiers = append(tiers, t)
				}
			}
			if row.Reloads > 0 {
				marks = append(marks, mark{offset + row.T, "reload", "reload"})
			}
		}
		for _, f := range s.Faults {
			if f.Result == resultSkipped {
				continue
			}
			marks = append(marks, mark{offset + f.IssuedS, "fault", "fault " + f.Mode})
		}
		offset += float64(len(s.Timeline)) * s.TimelineStepS
	}
	slices.SortStableFunc(tiers, func(a, b string) int { return tierOrder(a) - tierOrder(b) })
	span := max(offset, 1e-3)
	plotW := float64(svgWidth - svgLeft - svgRight)
	x := func(t float64) float64 { return svgLeft + t/span*plotW }

	// Panel 1: latency, log scale.
	lo, hi := 10.0, 100.0
	for _, p := range pts {
		if p.row.P50 > 0 {
			lo = min(lo, p.row.P50)
		}
		hi = max(hi, p.row.P99)
	}
	lo = math.Pow(10, math.Floor(math.Log10(lo)))
	hi = math.Pow(10, math.Ceil(math.Log10(hi)))
	ly := func(us float64) float64 {
		f := (math.Log10(max(us, lo)) - math.Log10(lo)) / (math.Log10(hi) - math.Log10(lo))
		return float64(y+svgPanelH) - f*svgPanelH
	}
	panel(b, y, "latency of ok allocations (from the intended send time), log scale")
	for v := lo; v <= hi*1.001; v *= 10 {
		yt := ly(v)
		fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#dddddd"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n",
			svgLeft, svgWidth-svgRight, yt, yt, svgLeft-6, yt+4, usText(v))
	}
	polyline(b, pts, x, func(p point) (float64, bool) { return ly(p.row.P50), p.row.OK > 0 }, "#1f77b4", "p50")
	polyline(b, pts, x, func(p point) (float64, bool) { return ly(p.row.P99), p.row.OK > 0 }, "#d62728", "p99")
	legend(b, y, []string{"p50", "p99"}, []string{"#1f77b4", "#d62728"})
	top := y

	// Panel 2: throughput, per second.
	y += svgPanelH + svgGap
	peak := 1.0
	for _, p := range pts {
		peak = max(peak, float64(p.row.Sent)/p.step)
	}
	peak = niceCeil(peak * 1.1)
	ty := func(v float64) float64 { return float64(y+svgPanelH) - v/peak*svgPanelH }
	panel(b, y, "allocations per second (by intended send time)")
	for i := 0; i <= 4; i++ {
		v := peak * float64(i) / 4
		fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#dddddd"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n",
			svgLeft, svgWidth-svgRight, ty(v), ty(v), svgLeft-6, ty(v)+4, num(math.Round(v)))
	}
	polyline(b, pts, x, func(p point) (float64, bool) { return ty(float64(p.row.OK) / p.step), true }, "#2ca02c", "ok")
	polyline(b, pts, x, func(p point) (float64, bool) { return ty(float64(p.row.Overloaded) / p.step), true }, "#ff7f0e", "overloaded")
	polyline(b, pts, x, func(p point) (float64, bool) { return ty(float64(sum(p.row.Errors)) / p.step), true }, "#d62728", "errors")
	legend(b, y, []string{"ok", "overloaded", "errors"}, []string{"#2ca02c", "#ff7f0e", "#d62728"})

	// Panel 3: per-tier share of ok allocations.
	y += svgPanelH + svgGap
	panel(b, y, "share of ok allocations by tier")
	for _, p := range pts {
		if p.row.OK == 0 {
			continue
		}
		acc := 0.0
		for _, t := range tiers {
			f := float64(p.row.ByTier[t]) / float64(p.row.OK)
			if f == 0 {
				continue
			}
			h := f * svgPanelH
			fmt.Fprintf(b, `<rect class="tier" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %d</title></rect>`+"\n",
				x(p.t), float64(y+svgPanelH)-acc-h, max(x(p.t+p.step)-x(p.t)-0.5, 0.5), h, tierColor(t), num(round3(p.t)), esc(t), p.row.ByTier[t])
			acc += h
		}
	}
	colours := make([]string, len(tiers))
	for i, t := range tiers {
		colours[i] = tierColor(t)
	}
	legend(b, y, tiers, colours)
	bottom := y + svgPanelH

	// The time axis, under the last panel.
	for i := 0; i <= 10; i++ {
		t := span * float64(i) / 10
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%ss</text>`+"\n", x(t), bottom+16, num(math.Round(t*10)/10))
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" fill="#555555">seconds from the end of the first warmup</text>`+"\n", svgLeft, bottom+34)

	// Markers across the three panels.
	for i, m := range marks {
		colour := map[string]string{"fault": "#b22222", "reload": "#6a3d9a", "phase": "#333333"}[m.class]
		fmt.Fprintf(b, `<g class="%s"><line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="%s" stroke-dasharray="4 3"/>`+
			`<text x="%.1f" y="%d" fill="%s" font-size="11">%s</text><title>%s at %ss</title></g>`+"\n",
			m.class, x(m.t), x(m.t), top-4, bottom, colour, x(m.t)+3, top+10+12*(i%3), colour, esc(m.text), esc(m.text), num(round3(m.t)))
	}
	return bottom + 56
}

// drawPeers draws the throughput scenario's runs as bars of cycles/s, one
// group per load, from y; it returns the y below.
func drawPeers(b *strings.Builder, r *scenarioReport, y int) int {
	for _, load := range peerLoads {
		var runs []peerRun
		peak := 1.0
		for _, p := range r.Peers {
			if p.Label == load.label {
				runs = append(runs, p)
				peak = max(peak, p.CyclesPerS)
			}
		}
		if len(runs) == 0 {
			continue
		}
		peak = niceCeil(peak)
		panel(b, y, fmt.Sprintf("%s: cycles (allocate + release) per second, %d caller(s) on %d connection(s); each run in order", load.label, load.callers, load.conns))
		bw := float64(svgWidth-svgLeft-svgRight) / float64(len(runs))
		for i, p := range runs {
			h := p.CyclesPerS / peak * svgPanelH
			x := svgLeft + float64(i)*bw
			fmt.Fprintf(b, `<rect class="peer" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s round %d: %.0f cycles/s, alloc p50 %.1f µs, p99 %.1f µs, %.1f µs CPU per cycle</title></rect>`+"\n",
				x+2, float64(y+svgPanelH)-h, bw-4, h, peerColor(p.Target), esc(p.Target), p.Round, p.CyclesPerS, p.AllocP50, p.AllocP99, p.CPUPerCycle)
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%.0f/s · p99 %s</text>`+"\n",
				x+bw/2, float64(y+svgPanelH)-h-4, p.CyclesPerS, usText(p.AllocP99))
			fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle" font-size="10">%s r%d</text>`+"\n", x+bw/2, y+svgPanelH+14, esc(p.Target), p.Round)
		}
		fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", svgLeft-6, y+4, num(peak))
		y += svgPanelH + svgGap
	}
	return y
}

// panel draws a panel's frame and title at y.
func panel(b *strings.Builder, y int, title string) {
	fmt.Fprintf(b, `<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", svgLeft, y-8, esc(title))
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999999"/>`+"\n", svgLeft, y, svgWidth-svgLeft-svgRight, svgPanelH)
}

// polyline draws one series: a path through the rows where at reports a
// value, broken where it does not.
func polyline(b *strings.Builder, pts []point, x func(float64) float64, at func(point) (float64, bool), colour, class string) {
	var d strings.Builder
	pen := false
	for _, p := range pts {
		v, ok := at(p)
		if !ok {
			pen = false
			continue
		}
		cmd := "L"
		if !pen {
			cmd = "M"
		}
		fmt.Fprintf(&d, "%s%.1f %.1f ", cmd, x(p.t+p.step/2), v)
		pen = true
	}
	if d.Len() > 0 {
		fmt.Fprintf(b, `<path class="%s" d="%s" fill="none" stroke="%s" stroke-width="1.6"/>`+"\n", class, strings.TrimSpace(d.String()), colour)
	}
}

// legend lists names in their colours right of the panel at y.
func legend(b *strings.Builder, y int, names, colours []string) {
	for i, n := range names {
		ly := y + 14 + 18*i
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			svgWidth-svgRight+10, ly-10, colours[i], svgWidth-svgRight+28, ly, esc(n))
	}
}

func tierOrder(t string) int {
	if i := slices.Index(tierNames, t); i >= 0 {
		return i
	}
	return len(tierNames)
}

func tierColor(t string) string {
	if c, ok := tierColors[t]; ok {
		return c
	}
	return "#999999"
}

func peerColor(t string) string {
	return map[string]string{"switchboard": "#4e79a7", "http": "#e15759", "grpc-tuned": "#76b7b2"}[t]
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}
