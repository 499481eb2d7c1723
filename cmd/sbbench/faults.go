package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"switchboard/telsim"
)

// errBadFaultSpec marks a -fault value that cannot be parsed.
var errBadFaultSpec = errors.New("bad -fault")

// faultSpec is one -fault ADDR=MODE[:K=V,…]@SECONDS: inject fault into the
// telsim control API at addr, at seconds after the end of warmup.
type faultSpec struct {
	text  string        // as given on the command line
	addr  string        // control API: host:port or http:// URL
	fault telsim.Fault  // what to inject
	at    time.Duration // when, after the end of warmup
}

// faultArgs lists, per mode, the K=V arguments it takes.
var faultArgs = map[telsim.Mode][]string{
	telsim.ModeSlow:   {"latency", "jitter"},
	telsim.ModeErrors: {"fraction"},
	telsim.ModeFlap:   {"period"},
}

// parseFaultSpec parses ADDR=MODE[:K=V[,K=V…]]@SECONDS, e.g.
// "127.0.0.1:7201=slow:latency=5ms,jitter=1ms@3". MODE is a telsim mode
// name; the arguments are those of its control API (latency, jitter and
// period are Go durations, fraction a number in [0, 1]) and only those the
// mode uses. SECONDS is a non-negative number of seconds ("2.5") or a Go
// duration ("2500ms").
func parseFaultSpec(s string) (faultSpec, error) {
	spec := faultSpec{text: s}
	bad := func(format string, a ...any) (faultSpec, error) {
		return spec, fmt.Errorf("%w %q: "+format, append([]any{errBadFaultSpec, s}, a...)...)
	}
	addr, rest, ok := strings.Cut(s, "=")
	at := strings.LastIndexByte(rest, '@')
	if !ok || at < 0 {
		return bad("want ADDR=MODE@SECONDS")
	}
	mode, when := rest[:at], rest[at+1:]
	if addr == "" {
		return bad("empty control address")
	}
	if !strings.Contains(addr, "://") {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return bad("control address: want host:port")
		}
	}
	spec.addr = addr

	name, args, hasArgs := strings.Cut(mode, ":")
	m, err := telsim.ParseMode(name)
	if err != nil {
		return bad("unknown mode %q (want none, down, refuse, reset, blackhole, slow, errors, garbage, cut, full or flap)", name)
	}
	spec.fault.Mode = m
	if hasArgs {
		seen := map[string]bool{}
		for _, kv := range strings.Split(args, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || v == "" {
				return bad("argument %q: want K=V", kv)
			}
			if !slices.Contains(faultArgs[m], k) {
				if len(faultArgs[m]) == 0 {
					return bad("mode %s takes no arguments", m)
				}
				return bad("mode %s takes %s, not %q", m, strings.Join(faultArgs[m], " and "), k)
			}
			if seen[k] {
				return bad("argument %s given twice", k)
			}
			seen[k] = true
			if k == "fraction" {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil || !(f >= 0 && f <= 1) {
					return bad("fraction %q: want a number in [0, 1]", v)
				}
				spec.fault.Fraction = f
				continue
			}
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return bad("%s %q: want a non-negative duration such as 5ms", k, v)
			}
			switch k {
			case "latency":
				spec.fault.Latency = d
			case "jitter":
				spec.fault.Jitter = d
			case "period":
				spec.fault.Period = d
			}
		}
	}

	d, err := parseAt(when)
	if err != nil {
		return bad("time %q: want seconds (3, 2.5) or a duration (2500ms), not negative", when)
	}
	spec.at = d
	return spec, nil
}

// parseAt parses a number of seconds or a Go duration, not negative.
func parseAt(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || f < 0 || f > 1e6 {
			return 0, errBadFaultSpec
		}
		return time.Duration(math.Round(f * float64(time.Second))), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, errBadFaultSpec
	}
	return d, nil
}

// faultList is the repeatable -fault flag.
type faultList []faultSpec

func (l *faultList) String() string {
	if l == nil {
		return ""
	}
	parts := make([]string, len(*l))
	for i, f := range *l {
		parts[i] = f.text
	}
	return strings.Join(parts, " ")
}

func (l *faultList) Set(s string) error {
	f, err := parseFaultSpec(s)
	if err != nil {
		return err
	}
	*l = append(*l, f)
	return nil
}

// Results of an injection.
const (
	resultOK      = "ok"      // the server accepted the fault
	resultFailed  = "failed"  // the control call failed; the run went on
	resultSkipped = "skipped" // not issued: the run ended first
)

// injection is one scheduled fault and what became of it, as reported in
// the summary (text and -json).
type injection struct {
	Addr    string  `json:"addr"`
	Mode    string  `json:"mode"`
	Fault   string  `json:"fault"`              // the fault asked for, e.g. "slow latency=5ms"
	AtS     float64 `json:"at_s"`               // due, seconds after the end of warmup
	IssuedS float64 `json:"issued_s"`           // the control call was made (skipped: 0)
	TookUS  float64 `json:"took_us"`            // the control call's round trip
	Result  string  `json:"result"`             // ok, failed or skipped
	InForce string  `json:"in_force,omitempty"` // ok: the fault the server reports in force
	Error   string  `json:"error,omitempty"`    // failed, skipped: why
}

// injectionObserver is told of every fault injection once its control call
// returned (skipped faults are not injections). Implementations are safe
// for concurrent use.
type injectionObserver interface {
	injected(inj *injection)
}

// faultScheduler injects a run's faults at their times: one goroutine per
// control address (so a hung address cannot delay another's faults) issues
// that address's faults in time order. A failed injection is recorded and
// the run goes on. Each control call is bounded by timeout and by the run's
// context; stop cancels only the waiting, never a call in progress. A
// faultScheduler is used by one goroutine (start, then stop); its workers
// synchronise among themselves.
type faultScheduler struct {
	specs   []faultSpec // sorted by time, stably
	clk     clock       // for waiting and timestamps; not the pinned load clock
	hc      *http.Client
	timeout time.Duration
	from    time.Time // end of warmup: the origin of every spec's time
	obs     injectionObserver

	cancel context.CancelFunc // ends the waiting
	wg     sync.WaitGroup     // the workers

	mu      sync.Mutex
	results []injection // by index in specs
}

// newFaultScheduler returns a scheduler of specs; nothing runs before start.
func newFaultScheduler(specs []faultSpec, clk clock, hc *http.Client, timeout time.Duration, from time.Time, obs injectionObserver) *faultScheduler {
	sorted := slices.Clone(specs)
	slices.SortStableFunc(sorted, func(a, b faultSpec) int { return cmp.Compare(a.at, b.at) })
	s := &faultScheduler{specs: sorted, clk: clk, hc: hc, timeout: timeout, from: from, obs: obs}
	s.results = make([]injection, len(sorted))
	for i, f := range sorted {
		s.results[i] = injection{
			Addr:   f.addr,
			Mode:   f.fault.Mode.String(),
			Fault:  f.fault.String(),
			AtS:    f.at.Seconds(),
			Result: resultSkipped,
			Error:  "the run ended before it was due",
		}
	}
	return s
}

// start launches one worker per control address. ctx is the run's: when
// it ends (a signal), waiting ends and calls in progress are cancelled.
func (s *faultScheduler) start(ctx context.Context) {
	wctx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	byAddr := map[string][]int{}
	var addrs []string
	for i, f := range s.specs {
		if _, ok := byAddr[f.addr]; !ok {
			addrs = append(addrs, f.addr)
		}
		byAddr[f.addr] = append(byAddr[f.addr], i)
	}
	for _, a := range addrs {
		s.wg.Add(1)
		go s.work(ctx, wctx, telsim.NewControlClient(a, s.hc), byAddr[a])
	}
}

// work issues the faults idx (of one address, in time order).
func (s *faultScheduler) work(ctx, wctx context.Context, cc *telsim.ControlClient, idx []int) {
	defer s.wg.Done()
	for _, i := range idx {
		f := s.specs[i]
		if err := s.clk.SleepUntil(wctx, s.from.Add(f.at)); err != nil || wctx.Err() != nil {
			return // the rest stay skipped
		}
		issued := s.clk.Now()
		cctx, cancel := context.WithTimeout(ctx, s.timeout)
		got, err := cc.SetFault(cctx, f.fault)
		cancel()
		took := s.clk.Now().Sub(issued)

		s.mu.Lock()
		inj := &s.results[i]
		inj.IssuedS = issued.Sub(s.from).Seconds()
		inj.TookUS = micros(int64(took))
		inj.Error = ""
		if err != nil {
			inj.Result, inj.Error = resultFailed, err.Error()
		} else {
			inj.Result, inj.InForce = resultOK, got.String()
		}
		copied := *inj
		s.mu.Unlock()
		if s.obs != nil {
			s.obs.injected(&copied)
		}
	}
}

// stop ends the waiting (faults not yet due are skipped), waits for the
// calls in progress and the workers, and returns every fault's outcome in
// time order. It may be called again (it returns the same outcomes).
func (s *faultScheduler) stop() []injection {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.results)
}

// newControlHTTPClient returns the HTTP client of the control calls: its
// own transport (so the caller can close its idle connections when the run
// ends), never a proxy (the control API is on loopback), each call bounded
// by timeout.
func newControlHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     30 * time.Second,
		},
	}
}
