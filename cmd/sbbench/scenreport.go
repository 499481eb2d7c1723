package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"switchboard/internal/buildinfo"
)

// scenarioReport is NAME.json: what ran, where, and what came of it.
type scenarioReport struct {
	Scenario string            `json:"scenario"`
	Started  time.Time         `json:"started"`
	Finished time.Time         `json:"finished"`
	Build    string            `json:"build"` // sbbench's version and revision
	Machine  machine           `json:"machine"`
	Params   map[string]string `json:"params"`
	// Phases are the sbbench load runs, in order (one for most scenarios,
	// one per connection count for conns); each is sbbench -json's summary.
	Phases []*phaseReport `json:"phases"`
	// Peers are the throughput scenario's peerbench load runs, in order.
	Peers []peerRun `json:"peers,omitempty"`
	// Checks are the design's budgets this scenario measures, each with
	// its value and whether it is met.
	Checks    []check      `json:"checks"`
	Processes []procRecord `json:"processes"`
}

// machine describes the host, for the reader of a report.
type machine struct {
	CPU        string `json:"cpu"`
	CPUs       int    `json:"cpus"`
	Kernel     string `json:"kernel"`
	Go         string `json:"go"`
	LoadStart  string `json:"load_average_start"`
	LoadFinish string `json:"load_average_end"`
}

// phaseReport is one load phase.
type phaseReport struct {
	Name         string            `json:"name,omitempty"`
	Conns        int               `json:"conns,omitempty"`           // conns: front-end connections open
	DaemonRSSKB  int64             `json:"daemon_rss_kb,omitempty"`   // conns: the daemon's RSS when the load ended, its connections open
	RSSPerConnKB float64           `json:"rss_per_conn_kb,omitempty"` // conns: (RSS − RSS of the first phase) / extra connections
	DaemonConns  int               `json:"daemon_conns,omitempty"`    // conns: front-end connections the daemon's /metrics counted open
	Breakers     map[string]string `json:"breakers,omitempty"`        // overload: tier → breaker state after the load
	Hgrm         string            `json:"hgrm"`                      // the latency distribution's file, in the report directory
	Summary      summary           `json:"summary"`

	lat *hdrhistogram.Histogram
}

// check is one budget measured by a scenario, or (Limit empty) a figure
// the design asks to be measured without a bound.
type check struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Limit string  `json:"limit"`
	Met   bool    `json:"met"`
}

func newScenarioReport(cfg *scenarioConfig) *scenarioReport {
	return &scenarioReport{
		Scenario: cfg.name,
		Started:  time.Now().UTC().Truncate(time.Second),
		Build:    buildinfo.Read().String(),
		Machine: machine{
			CPU:       cpuModel(),
			CPUs:      runtime.NumCPU(),
			Kernel:    firstLine("/proc/sys/kernel/osrelease"),
			Go:        runtime.Version(),
			LoadStart: loadAverage(),
		},
		Params: map[string]string{
			"duration": cfg.duration.String(), "warmup": cfg.warmup.String(),
			"rate": fmt.Sprint(cfg.rate), "concurrency": fmt.Sprint(cfg.concurrency),
			"conns_list": strings.Trim(strings.Join(strings.Fields(fmt.Sprint(cfg.connsList)), ","), "[]"),
			"transport":  cfg.transport, "rounds": fmt.Sprint(cfg.rounds),
		},
		Phases: []*phaseReport{},
		Checks: []check{},
	}
}

// check records a budget's measured value.
func (r *scenarioReport) check(name string, value float64, limit string, met bool) {
	r.Checks = append(r.Checks, check{Name: name, Value: value, Limit: limit, Met: met})
}

func (r *scenarioReport) finish() {
	r.Finished = time.Now().UTC().Truncate(time.Second)
	r.Machine.LoadFinish = loadAverage()
}

// write writes BASE.json, BASE.svg and the .hgrm files into dir and lists
// them on w.
//
// hide maps strings of this machine that the files must not hold (the
// temporary directory, the absolute path of -bin) to what is written
// instead: reports get committed.
func (r *scenarioReport) write(dir, base string, hide map[string]string, w io.Writer) error {
	var files []string
	for _, p := range r.Phases {
		name := base
		if p.Name != "" {
			name += "-" + p.Name
		}
		p.Hgrm = name + ".hgrm"
		if err := writeHgrmFile(filepath.Join(dir, p.Hgrm), p.lat); err != nil {
			return err
		}
		files = append(files, p.Hgrm)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	for from, to := range hide {
		b = bytes.ReplaceAll(b, []byte(from), []byte(to))
	}
	if err := os.WriteFile(filepath.Join(dir, base+".json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	svg := renderSVG(r)
	if err := os.WriteFile(filepath.Join(dir, base+".svg"), []byte(svg), 0o644); err != nil {
		return err
	}
	files = append([]string{base + ".json", base + ".svg"}, files...)
	for _, c := range r.Checks {
		verdict := "met"
		if !c.Met {
			verdict = "NOT met"
		}
		fmt.Fprintf(w, "check  %s\n", c.text(verdict))
	}
	fmt.Fprintf(w, "wrote  %s in %s\n", strings.Join(files, ", "), dir)
	return nil
}

// text renders the check: "NAME: VALUE (budget LIMIT): VERDICT", or
// "NAME: VALUE (measured)" without a limit.
func (c check) text(verdict string) string {
	if c.Limit == "" {
		return fmt.Sprintf("%s: %s (measured)", c.Name, num(round3(c.Value)))
	}
	return fmt.Sprintf("%s: %s (budget %s): %s", c.Name, num(round3(c.Value)), c.Limit, verdict)
}

func round3(v float64) float64 {
	return float64(int64(v*1000+0.5)) / 1000
}

func firstLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	l, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(l)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// loadAverage is the 1, 5 and 15 minute load averages, as /proc/loadavg
// says them.
func loadAverage() string {
	f := strings.Fields(firstLine("/proc/loadavg"))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
