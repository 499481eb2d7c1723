package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"switchboard/internal/testsupport"
)

// The scenario tests run the real binaries, built once (without -race:
// the processes under test are the production build) into a directory
// that TestMain's cleanup removes.
var (
	binsOnce sync.Once
	binsDir  string
	binsErr  error
)

func scenarioBins(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the switchboard and telsim binaries")
	}
	binsOnce.Do(func() {
		binsDir, binsErr = testsupport.BuildBinaries("switchboard/cmd/switchboard", "switchboard/cmd/telsim")
	})
	if binsErr != nil {
		t.Fatal(binsErr)
	}
	return binsDir
}

func removeScenarioBins(int) {
	if binsDir != "" {
		os.RemoveAll(binsDir)
	}
}

// scenarioCtx bounds a scenario test: generous, the machine is shared.
func scenarioCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// readReport parses DIR/NAME.json strictly enough to catch a missing
// field, and checks what every report must hold.
func readReport(t *testing.T, dir, name string) scenarioReport {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatalf("%s.json is not a JSON object: %v", name, err)
	}
	for _, f := range []string{"scenario", "started", "machine", "phases", "checks", "processes"} {
		if _, ok := raw[f]; !ok {
			t.Fatalf("%s.json lacks %q", name, f)
		}
	}
	var r scenarioReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.Scenario != name {
		t.Fatalf("scenario %q, want %q", r.Scenario, name)
	}
	return r
}

// checkMonotone fails unless the summary's percentiles never decrease.
func checkMonotone(t *testing.T, s *summary) {
	t.Helper()
	ps := []float64{s.P50, s.P90, s.P99, s.P999, s.Max}
	if ps[0] <= 0 {
		t.Fatalf("p50 %v: no latency recorded", ps[0])
	}
	for i := 1; i < len(ps); i++ {
		if ps[i] < ps[i-1] {
			t.Fatalf("percentiles p50 p90 p99 p99.9 max = %v: not monotone", ps)
		}
	}
}

// checkReaped fails unless every process of the report is gone and reaped
// (kill(pid, 0) on an unreaped zombie still succeeds).
func checkReaped(t *testing.T, procs []procRecord, want int) {
	t.Helper()
	if len(procs) != want {
		t.Fatalf("%d processes in the report, want %d: %+v", len(procs), want, procs)
	}
	for _, p := range procs {
		if err := syscall.Kill(p.PID, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %s (pid %d) still exists after the scenario: kill 0 = %v", p.Name, p.PID, err)
		}
	}
}

// svgElem is an element of an SVG: its name, class attribute and text
// (its own and its children's).
type svgElem struct {
	name, class, text string
}

// parseSVG parses svg as XML (failing the test if it is not well-formed,
// has another root than svg, a script or an external reference) and
// returns its elements.
func parseSVG(t *testing.T, svg []byte) []svgElem {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(string(svg)))
	var stack []*svgElem
	var all []svgElem
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			e := &svgElem{name: tok.Name.Local}
			for _, a := range tok.Attr {
				if a.Name.Local == "class" {
					e.class = a.Value
				}
				if a.Name.Local == "href" || (a.Name.Local == "src") {
					t.Fatalf("SVG refers to an external resource: <%s %s=%q>", e.name, a.Name.Local, a.Value)
				}
			}
			if e.name == "script" {
				t.Fatal("SVG holds a script")
			}
			if root == "" {
				root = e.name
			}
			stack = append(stack, e)
		case xml.CharData:
			for _, e := range stack {
				e.text += string(tok)
			}
		case xml.EndElement:
			e := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			all = append(all, *e)
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q, want svg", root)
	}
	return all
}

// hasMarker reports whether an element of class has a text containing s.
func hasMarker(elems []svgElem, class, s string) bool {
	for _, e := range elems {
		if e.class == class && strings.Contains(e.text, s) {
			return true
		}
	}
	return false
}

// readHgrm parses a .hgrm file: its value and percentile columns, checked
// to be non-decreasing, ending at the 100th percentile.
func readHgrm(t *testing.T, path string) (values, percentiles []float64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 4 || strings.HasPrefix(fields[0], "#") || fields[0] == "Value" {
			continue
		}
		v, err1 := strconv.ParseFloat(fields[0], 64)
		p, err2 := strconv.ParseFloat(fields[1], 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: bad row %q", path, sc.Text())
		}
		if n := len(values); n > 0 && (v < values[n-1] || p < percentiles[n-1]) {
			t.Fatalf("%s: row %q goes down", path, sc.Text())
		}
		values, percentiles = append(values, v), append(percentiles, p)
	}
	if len(values) == 0 || percentiles[len(percentiles)-1] != 1 {
		t.Fatalf("%s: %d rows, last percentile not 1", path, len(values))
	}
	return values, percentiles
}

// runScenarioTest runs sbbench scenario name against the test binaries at
// 300 allocations/s for duration, expects it to succeed, and returns its
// report (with one phase, monotone percentiles, checks, and its four
// processes reaped), its picture's elements and the report directory.
func runScenarioTest(t *testing.T, name, duration string) (scenarioReport, []svgElem, string) {
	t.Helper()
	bins := scenarioBins(t)
	out := filepath.Join(t.TempDir(), "report")
	r := sbbench(t, scenarioCtx(t), "scenario", name, "-out", out, "-bin", bins, "-duration", duration, "-warmup", "200ms", "-rate", "300")
	if r.code != exitOK || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q, stdout %q", r.code, r.stderr, r.stdout)
	}
	rep := readReport(t, out, name)
	if b := mustRead(t, filepath.Join(out, name+".json")); bytes.Contains(b, []byte(os.TempDir()+"/sbscen")) {
		t.Fatalf("%s.json names the scenario's temporary directory (a path of this machine)", name)
	}
	if len(rep.Phases) != 1 {
		t.Fatalf("%d phases, want 1", len(rep.Phases))
	}
	checkMonotone(t, &rep.Phases[0].Summary)
	checkReaped(t, rep.Processes, 4) // three telsims and the daemon
	if len(rep.Checks) == 0 {
		t.Fatal("no checks in the report")
	}
	return rep, parseSVG(t, mustRead(t, filepath.Join(out, name+".svg"))), out
}

func TestScenarioSteadyEndToEnd(t *testing.T) {
	rep, _, out := runScenarioTest(t, "steady", "1s")
	s := &rep.Phases[0].Summary
	if s.OK == 0 || s.Sent != 300 {
		t.Fatalf("sent %d ok %d, want 300 sent (300/s × 1s)", s.Sent, s.OK)
	}
	vals, _ := readHgrm(t, filepath.Join(out, rep.Phases[0].Hgrm))
	// The .hgrm is in ms, the summary in µs: its last value is the max.
	if got, want := vals[len(vals)-1]*1000, s.Max; got < want*0.99 || got > want*1.01 {
		t.Fatalf(".hgrm max %.1f µs, summary max %.1f µs", got, want)
	}
}

func TestScenarioFailoverEndToEnd(t *testing.T) {
	rep, elems, _ := runScenarioTest(t, "failover", "3s")
	s := &rep.Phases[0].Summary
	if len(s.Faults) != 2 || s.Faults[0].Result != resultOK || s.Faults[1].Result != resultOK {
		t.Fatalf("faults %+v, want down and none, both ok", s.Faults)
	}
	if s.ByTier["nextgen"] == 0 || s.ByTier["primary-large"] == 0 {
		t.Fatalf("by tier %v: want primary-large before and after the fault, nextgen during it", s.ByTier)
	}
	if !hasMarker(elems, "fault", "fault down") || !hasMarker(elems, "fault", "fault none") {
		t.Fatal("failover.svg lacks the fault markers (class fault, \"fault down\" and \"fault none\")")
	}
}

// TestScenarioStopsEverythingWhenInterrupted: a scenario stopped as Ctrl-C
// stops it (its context ends) once the daemon is up stops and reaps every
// process it started, removes its directory and writes no report.
func TestScenarioStopsEverythingWhenInterrupted(t *testing.T) {
	bins := scenarioBins(t)
	out := filepath.Join(t.TempDir(), "report")
	cfg, err := parseScenario([]string{"steady", "-out", out, "-bin", bins, "-duration", "60s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(scenarioCtx(t))
	defer cancel()
	sr := &scenarioRun{cfg: cfg, stdout: io.Discard, started: func(c *child) {
		if c.name == "switchboard" {
			cancel()
		}
	}}
	start := time.Now()
	err = sr.execute(ctx)
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("execute = %v, want interrupted (context canceled)", err)
	}
	if d := time.Since(start); d > 50*time.Second {
		t.Fatalf("took %v: the 60 s load was not cut short", d)
	}
	checkReaped(t, sr.rep.Processes, 4)
	if _, err := os.Stat(sr.dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary directory %s left behind: %v", sr.dir, err)
	}
	if _, err := os.Stat(filepath.Join(out, "steady.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an interrupted scenario wrote a report: %v", err)
	}
}

// TestScenarioMissingBinaryFails: without the binaries the scenario fails
// with one line naming what it could not start.
func TestScenarioMissingBinaryFails(t *testing.T) {
	out := filepath.Join(t.TempDir(), "report")
	r := sbbench(t, bounded(t), "scenario", "steady", "-out", out, "-bin", t.TempDir())
	if r.code != exitFail || !strings.Contains(r.stderr, "telsim") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestScenarioUsage(t *testing.T) {
	for _, args := range [][]string{
		{"scenario"},
		{"scenario", "nope", "-out", "x"},
		{"scenario", "steady"},
		{"scenario", "steady", "-out", "x", "-duration", "1ms"},
		{"scenario", "conns", "-out", "x", "-conns-list", "1,zero"},
		{"scenario", "steady", "-out", "x", "-transport", "udp"},
		{"scenario", "steady", "-out", "x", "extra"},
		{"scenario", "steady", "-out", "x", "-as", "a/b"},
	} {
		r := sbbench(t, bounded(t), args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "sbbench scenario -h") {
			t.Errorf("%q: exit %d, stderr %q; want a usage error", args, r.code, r.stderr)
		}
	}
	r := sbbench(t, bounded(t), "scenario", "-h")
	if r.code != exitOK || !strings.Contains(r.stdout, "failover") {
		t.Fatalf("scenario -h: exit %d, stdout %q", r.code, r.stdout)
	}
}

// TestRenderSVGMarksFaultsAndReloads: the picture of a synthetic report is
// well-formed, self-contained, escapes text, and marks each fault and
// reload at its time.
func TestRenderSVGMarksFaultsAndReloads(t *testing.T) {
	row := func(t float64, tiers map[string]int64) timelineRow {
		var ok int64
		for _, n := range tiers {
			ok += n
		}
		return timelineRow{T: t, Sent: ok, OK: ok, P50: 300, P99: 900, ByTier: tiers, Errors: map[string]int64{}}
	}
	rows := []timelineRow{
		row(0, map[string]int64{"primary-large": 100}),
		row(1, map[string]int64{"nextgen": 100}),
		row(2, map[string]int64{"primary-large": 60, "nextgen": 40}),
	}
	rows[2].Reloads = 1
	rep := &scenarioReport{
		Scenario: "failover <&>",
		Phases: []*phaseReport{{Summary: summary{
			TimelineStepS: 1,
			Timeline:      rows,
			Faults: []injection{
				{Mode: "down", IssuedS: 1, Result: resultOK},
				{Mode: "none", IssuedS: 2, Result: resultOK},
				{Mode: "reset", AtS: 2.5, Result: resultSkipped},
			},
		}}},
		Checks: []check{{Name: "errors < 1 & more", Value: 0, Limit: "= 0", Met: true}},
	}
	svg := renderSVG(rep)
	elems := parseSVG(t, []byte(svg))
	for _, want := range []struct{ class, text string }{
		{"fault", "fault down"}, {"fault", "fault none"}, {"reload", "reload"}, {"check", "errors < 1 & more"},
	} {
		if !hasMarker(elems, want.class, want.text) {
			t.Errorf("no element of class %q with text %q in\n%s", want.class, want.text, svg)
		}
	}
	if hasMarker(elems, "fault", "fault reset") {
		t.Error("a skipped fault is marked as injected")
	}
	tiers := 0
	for _, e := range elems {
		if e.class == "tier" {
			tiers++
		}
	}
	if tiers != 4 { // one rect per tier with allocations in each row
		t.Errorf("%d per-tier bars, want 4", tiers)
	}
}

// TestWriteHgrm: the .hgrm of a known distribution has its percentiles at
// the right values, in milliseconds.
func TestWriteHgrm(t *testing.T) {
	h := newHistogram()
	for i := int64(1); i <= 1000; i++ {
		record(h, time.Duration(i)*time.Microsecond) // 1 µs … 1 ms, uniform
	}
	path := filepath.Join(t.TempDir(), "x.hgrm")
	if err := writeHgrmFile(path, h); err != nil {
		t.Fatal(err)
	}
	vals, ps := readHgrm(t, path)
	for i, p := range ps {
		// Uniform 1..1000 µs: the value at percentile p is about p ms.
		if want := p; vals[i] < want-0.01 || vals[i] > want+0.01 {
			t.Fatalf("value at percentile %v: %v ms, want about %v", p, vals[i], want)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestScenarioConnsEndToEnd: the conns scenario holds every connection of
// a phase open at the daemon while it measures (its /metrics agrees, none
// cut or refused), and reports the RSS per connection beyond the first
// phase's.
func TestScenarioConnsEndToEnd(t *testing.T) {
	bins := scenarioBins(t)
	out := filepath.Join(t.TempDir(), "report")
	r := sbbench(t, scenarioCtx(t), "scenario", "conns", "-out", out, "-bin", bins,
		"-duration", "500ms", "-warmup", "200ms", "-conns-list", "1,80")
	if r.code != exitOK || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q, stdout %q", r.code, r.stderr, r.stdout)
	}
	rep := readReport(t, out, "conns")
	if len(rep.Phases) != 2 {
		t.Fatalf("%d phases, want 2", len(rep.Phases))
	}
	for _, p := range rep.Phases {
		if p.DaemonConns != p.Conns || p.DaemonRSSKB <= 0 || p.Summary.OK == 0 {
			t.Fatalf("phase %s: daemon counted %d connections open of %d, RSS %d KiB, %d ok", p.Name, p.DaemonConns, p.Conns, p.DaemonRSSKB, p.Summary.OK)
		}
	}
	if rep.Phases[1].RSSPerConnKB == 0 {
		t.Fatal("no RSS per connection for the second phase")
	}
	n := 0
	for _, c := range rep.Checks {
		if strings.Contains(c.Name, "open at the daemon") || strings.Contains(c.Name, "cut or refused") {
			n++
			if !c.Met {
				t.Fatalf("check %q not met: %v", c.Name, c.Value)
			}
		}
	}
	if n != 4 {
		t.Fatalf("%d connection checks, want 2 per phase", n)
	}
}

func TestParseFrontConns(t *testing.T) {
	text := `# HELP switchboard_connections Front-end connections open.
# TYPE switchboard_connections gauge
switchboard_connections 10000
switchboard_connection_read_pauses_total 7
switchboard_connections_cut_total{reason="evicted"} 2
switchboard_connections_cut_total{reason="idle"} 1
switchboard_connections_not_allowed_total 5
switchboard_connections_refused_total 3
`
	fc, err := parseFrontConns(text)
	if err != nil || fc.open != 10000 || fc.cutOrRefused != 6 {
		t.Fatalf("got %+v, %v; want 10000 open, 6 cut or refused", fc, err)
	}
	if _, err := parseFrontConns("switchboard_connections_cut_total{reason=\"idle\"} 1\n"); err == nil {
		t.Fatal("no error without the switchboard_connections gauge")
	}
}
