package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"text/tabwriter"
)

// The targets in the order summarize prints them; switchboard's ratios are
// to each of the others.
var targets = []string{"switchboard", "http", "grpc", "grpc-tuned"}

func summarizeRole(_ context.Context, fs *flag.FlagSet, args []string, out io.Writer) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	in := io.Reader(os.Stdin)
	if fs.NArg() > 0 {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	results, err := readResults(in)
	if err != nil {
		return err
	}
	return summarize(results, out)
}

func readResults(in io.Reader) ([]Result, error) {
	var rs []Result
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var r Result
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, sc.Err()
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summarize prints, per label, each target's medians over its runs, then
// switchboard's ratios to each peer: per round (the k-th run of
// switchboard against the k-th run of the peer, which peers.sh runs next
// to each other) and their median.
func summarize(rs []Result, out io.Writer) error {
	var labels []string
	byLabel := map[string]map[string][]Result{}
	for _, r := range rs {
		if byLabel[r.Label] == nil {
			byLabel[r.Label] = map[string][]Result{}
			labels = append(labels, r.Label)
		}
		byLabel[r.Label][r.Target] = append(byLabel[r.Label][r.Target], r)
	}
	field := func(rs []Result, f func(Result) float64) []float64 {
		var v []float64
		for _, r := range rs {
			v = append(v, f(r))
		}
		return v
	}
	cps := func(r Result) float64 { return r.PerSecond }
	cpu := func(r Result) float64 { return r.CPUPerCycle }
	p50 := func(r Result) float64 { return r.AllocP50 }
	p99 := func(r Result) float64 { return r.AllocP99 }
	for _, l := range labels {
		m := byLabel[l]
		fmt.Fprintf(out, "== %s\n", l)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "target\truns\tcycles/s\tCPU µs/cycle\talloc p50 µs\talloc p99 µs\trelease p50 µs\trelease p99 µs\terrors (sum)\t")
		for _, t := range targets {
			rs := m[t]
			if len(rs) == 0 {
				continue
			}
			var errs int64
			for _, r := range rs {
				errs += r.AllocErrors + r.ReleaseErrors
			}
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.1f\t%.0f\t%.0f\t%.0f\t%.0f\t%d\t\n", t, len(rs),
				median(field(rs, cps)), median(field(rs, cpu)), median(field(rs, p50)), median(field(rs, p99)),
				median(field(rs, func(r Result) float64 { return r.ReleaseP50 })),
				median(field(rs, func(r Result) float64 { return r.ReleaseP99 })), errs)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		sb := m["switchboard"]
		for _, t := range targets[1:] {
			peer := m[t]
			n := min(len(sb), len(peer))
			if n == 0 {
				continue
			}
			var rc, rcpu, r50, r99 []float64
			for i := range n {
				rc = append(rc, sb[i].PerSecond/peer[i].PerSecond)
				rcpu = append(rcpu, peer[i].CPUPerCycle/sb[i].CPUPerCycle)
				r50 = append(r50, peer[i].AllocP50/sb[i].AllocP50)
				r99 = append(r99, peer[i].AllocP99/sb[i].AllocP99)
			}
			fmt.Fprintf(out, "switchboard vs %s (median of %d pairs): %.2fx cycles/s, %.2fx less CPU/cycle, alloc p50 %.2fx lower, p99 %.2fx lower; cycles/s ratio per pair:",
				t, n, median(rc), median(rcpu), median(r50), median(r99))
			for _, v := range rc {
				fmt.Fprintf(out, " %.2f", v)
			}
			fmt.Fprintln(out)
		}
		fmt.Fprintln(out)
	}
	return nil
}
