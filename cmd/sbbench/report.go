package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// summary is a run's result: what -json prints, field for field. Latencies
// are in µs with 0.1 µs resolution. Sent counts every allocation due in the
// measured window, so sent = ok + the sum of errors (client_backlog
// included: due but not sent).
type summary struct {
	Mode        string  `json:"mode"`                  // "rate" or "concurrency"
	TargetRate  float64 `json:"target_rate,omitempty"` // -rate
	Concurrency int     `json:"concurrency,omitempty"` // -concurrency
	Conns       int     `json:"conns"`
	Socket      string  `json:"socket"`

	Sent       int64            `json:"sent"`
	OK         int64            `json:"ok"`
	Errors     map[string]int64 `json:"errors"`  // code → count: wire status names, client_*, transport
	Rate       float64          `json:"rate"`    // ok allocations per second over duration_s
	ByTier     map[string]int64 `json:"by_tier"` // tier → ok allocations
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
	ReleaseP50    float64          `json:"release_p50_us"`
	ReleaseP99    float64          `json:"release_p99_us"`

	Interrupted bool `json:"interrupted"` // stopped early by a signal
}

func writeJSON(w io.Writer, s *summary) error {
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
	fmt.Fprintf(&b, "errors        %d%s\n", sum(s.Errors), paren(counts(s.Errors)))
	fmt.Fprintf(&b, "rate          %.1f/s\n", s.Rate)
	fmt.Fprintf(&b, "latency µs    p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n", s.P50, s.P90, s.P99, s.P999, s.Max)
	if s.Mode == "rate" {
		fmt.Fprintf(&b, "send lag µs   p50 %.1f  p99 %.1f  max %.1f\n", s.LagP50, s.LagP99, s.LagMax)
	}
	fmt.Fprintf(&b, "by tier       %s\n", counts(s.ByTier))
	fmt.Fprintf(&b, "releases      %d ok, %d errors%s; p50 %.1f µs, p99 %.1f µs\n",
		s.Released, sum(s.ReleaseErrors), paren(counts(s.ReleaseErrors)), s.ReleaseP50, s.ReleaseP99)
	_, err := io.WriteString(w, b.String())
	return err
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
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
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
