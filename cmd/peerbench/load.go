package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"switchboard/bench/grpcpeer"
	pb "switchboard/bench/grpcpeer/peerpb"
	"switchboard/bench/httpbaseline"
	"switchboard/client"
	"switchboard/wire"
)

// The request every target gets, the same as package bench's: a realistic
// conference name, a weekly recurrence and a 256-byte meta.
const (
	sampleName  = "EMEA Sales Pipeline Review — Q3 planning (weekly)"
	metaSize    = 256
	tokenPrefix = "peerbench-5f1c9a2e-"
	tokenDigits = 18
)

func sampleSpec() wire.Spec {
	return wire.Spec{
		Name: []byte(sampleName), Start: 1_790_000_000, TimeZone: 22, Duration: 60, Tone: wire.ToneAnnounceName,
		Repeat:        wire.Recurrence{Kind: wire.RepeatWeekly, Interval: 1, Until: 1_800_000_000, Days: 1 << 2},
		FullAttendees: 25, LimitedAttendees: 100,
	}
}

func sampleMeta() []byte {
	m := make([]byte, metaSize)
	for i := range m {
		m[i] = 'a' + byte(i*7%26)
	}
	return m
}

// tokens hands out unique tokens: a fixed prefix and a fixed-width counter
// started at the clock's nanoseconds, so no token repeats across runs
// against one long-running service.
type tokens struct{ n atomic.Uint64 }

func (t *tokens) next() string {
	return fmt.Sprintf("%s%0*d", tokenPrefix, tokenDigits, t.n.Add(1)%1_000_000_000_000_000_000)
}

// cycleFunc allocates once and releases the key; it returns the time each
// call took.
type cycleFunc func(ctx context.Context) (alloc, release time.Duration, err error)

// target opens a client of one service and returns the cycle of one
// caller (every caller shares the client) and the client's closer.
func target(ctx context.Context, name, socket string, callers, conns int) (func() cycleFunc, func(), error) {
	tk := &tokens{}
	tk.n.Store(uint64(time.Now().UnixNano()))
	spec, meta := sampleSpec(), sampleMeta()
	switch name {
	case "switchboard":
		c, err := client.Dial(ctx, socket, client.WithConns(conns))
		if err != nil {
			return nil, nil, err
		}
		return func() cycleFunc {
			req := wire.AllocateRequest{Spec: spec, Meta: meta}
			return func(ctx context.Context) (time.Duration, time.Duration, error) {
				req.Token = []byte(tk.next())
				t0 := time.Now()
				a, err := c.Allocate(ctx, &req)
				t1 := time.Now()
				if err == nil && a.Replayed {
					err = fmt.Errorf("token %q replayed", req.Token)
				}
				if err != nil {
					return 0, 0, err
				}
				err = releaseError(c.Release(ctx, a.Key))
				return t1.Sub(t0), time.Since(t1), err
			}
		}, func() { _ = c.Close() }, nil
	case "http":
		// HTTP/1.1 carries one request at a time per connection: one
		// keep-alive connection per caller.
		c := httpbaseline.NewClient(socket, callers)
		hs := httpbaseline.Spec{
			Name: sampleName, Start: spec.Start, TimeZone: spec.TimeZone, Duration: spec.Duration, Tone: uint8(spec.Tone),
			Repeat: httpbaseline.Recurrence{Kind: uint8(spec.Repeat.Kind), Interval: spec.Repeat.Interval,
				Until: spec.Repeat.Until, Days: spec.Repeat.Days},
			FullAttendees: spec.FullAttendees, LimitedAttendees: spec.LimitedAttendees,
		}
		return func() cycleFunc {
			req := httpbaseline.AllocateRequest{Spec: hs, Meta: meta}
			return func(ctx context.Context) (time.Duration, time.Duration, error) {
				req.Token = tk.next()
				t0 := time.Now()
				a, err := c.Allocate(ctx, &req)
				t1 := time.Now()
				if err == nil && a.Replayed {
					err = fmt.Errorf("token %q replayed", req.Token)
				}
				if err != nil {
					return 0, 0, err
				}
				err = releaseError(c.Release(ctx, a.Key))
				return t1.Sub(t0), time.Since(t1), err
			}
		}, c.Close, nil
	case "grpc", "grpc-tuned":
		c, err := grpcpeer.NewClient(socket, conns, grpcpeer.Options{Tuned: name == "grpc-tuned"})
		if err != nil {
			return nil, nil, err
		}
		ps := &pb.Spec{
			Name: sampleName, Start: spec.Start, TimeZone: int32(spec.TimeZone), Duration: spec.Duration, Tone: uint32(spec.Tone),
			Repeat: &pb.Recurrence{Kind: uint32(spec.Repeat.Kind), Interval: uint32(spec.Repeat.Interval),
				Until: spec.Repeat.Until, Days: uint32(spec.Repeat.Days)},
			FullAttendees: spec.FullAttendees, LimitedAttendees: spec.LimitedAttendees,
		}
		return func() cycleFunc {
			req := &pb.AllocateRequest{Spec: ps, Meta: meta}
			return func(ctx context.Context) (time.Duration, time.Duration, error) {
				req.Token = tk.next()
				t0 := time.Now()
				a, err := c.Allocate(ctx, req)
				t1 := time.Now()
				if err == nil && a.Replayed {
					err = fmt.Errorf("token %q replayed", req.Token)
				}
				if err != nil {
					return 0, 0, err
				}
				err = releaseError(c.Release(ctx, a.Key))
				return t1.Sub(t0), time.Since(t1), err
			}
		}, c.Close, nil
	}
	return nil, nil, fmt.Errorf("unknown target %q (switchboard, http, grpc, grpc-tuned)", name)
}

// errRelease marks the error of a cycle whose allocation succeeded and
// whose release failed.
var errRelease = errors.New("release")

func releaseError(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", errRelease, err)
}

// Result is what load prints, one JSON object.
type Result struct {
	Label      string  `json:"label"`
	Target     string  `json:"target"`
	Callers    int     `json:"callers"`
	Conns      int     `json:"conns"`
	Cycles     int     `json:"cycles"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"cycles_per_s"`
	AllocP50   float64 `json:"alloc_p50_us"`
	AllocP99   float64 `json:"alloc_p99_us"`
	ReleaseP50 float64 `json:"release_p50_us"`
	ReleaseP99 float64 `json:"release_p99_us"`
	// CPUPerCycle is the CPU time of every measured process (-pids and
	// the load itself) in the window, over the cycles.
	CPUPerCycle float64 `json:"cpu_us_per_cycle"`
	// CPUByPID is each process's share of CPUPerCycle ("self": the load).
	CPUByPID map[string]float64 `json:"cpu_us_per_cycle_by_pid"`
	// Failed allocations and failed releases in the window (not counted
	// in Cycles; their CPU is in CPUPerCycle), and the first error.
	AllocErrors   int64  `json:"alloc_errors"`
	ReleaseErrors int64  `json:"release_errors"`
	FirstError    string `json:"first_error,omitempty"`
}

// window phases.
const (
	warming   = 0
	measuring = 1
	stopping  = 2
)

func loadRole(ctx context.Context, fs *flag.FlagSet, args []string, out io.Writer) error {
	tgt := fs.String("target", "", "the service: switchboard, http, grpc, grpc-tuned")
	socket := fs.String("socket", "", "the service's Unix socket `path`")
	callers := fs.Int("callers", 64, "concurrent callers (closed loop)")
	conns := fs.Int("conns", 2, "client connections (switchboard, grpc; http has one per caller)")
	warmup := fs.Duration("warmup", 2*time.Second, "unmeasured `period` first")
	duration := fs.Duration("duration", 5*time.Second, "measured `period`")
	pids := fs.String("pids", "", "`PID,...` of the service's processes, for CPU per cycle")
	label := fs.String("label", "", "a label copied to the result (summarize groups by it)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *callers < 1 || *conns < 1 || *duration <= 0 {
		return fmt.Errorf("-callers and -conns must be at least 1 and -duration positive")
	}
	var procs []int
	if *pids != "" {
		for _, p := range strings.Split(*pids, ",") {
			n, err := strconv.Atoi(p)
			if err != nil {
				return fmt.Errorf("-pids: %q: %w", p, err)
			}
			procs = append(procs, n)
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	mk, closeClient, err := target(dctx, *tgt, *socket, *callers, *conns)
	cancel()
	if err != nil {
		return err
	}
	defer closeClient()

	// Every call is bounded, so a stuck service cannot hang the run.
	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var phase atomic.Int32
	var allocErrs, relErrs atomic.Int64
	var firstErr atomic.Pointer[error]
	type tally struct {
		alloc, release []time.Duration
	}
	tallies := make([]tally, *callers)
	var wg, ready sync.WaitGroup
	for i := range *callers {
		cycle := mk()
		tl := &tallies[i]
		tl.alloc = make([]time.Duration, 0, 1<<14)
		tl.release = make([]time.Duration, 0, 1<<14)
		ready.Add(1)
		wg.Go(func() {
			// One successful cycle before the warm-up starts, so every
			// connection is up before the clock runs, however slow the
			// first dial: tried for up to 10 s, as a loaded machine can
			// make a first call miss a service's attempt timeout.
			err := firstCycle(runCtx, cycle, 10*time.Second)
			ready.Done()
			if err != nil {
				stop(err)
				return
			}
			for runCtx.Err() == nil {
				p0 := phase.Load()
				if p0 == stopping {
					return
				}
				cctx, cancel := context.WithTimeout(runCtx, 10*time.Second)
				a, r, err := cycle(cctx)
				cancel()
				if err != nil {
					if runCtx.Err() != nil {
						return
					}
					// A failed call is data, not the end of the run: the
					// caller goes on, as a front end would.
					if p0 == measuring {
						if errors.Is(err, errRelease) {
							relErrs.Add(1)
						} else {
							allocErrs.Add(1)
						}
						firstErr.CompareAndSwap(nil, &err)
					}
					continue
				}
				if p0 == measuring && phase.Load() == measuring {
					tl.alloc = append(tl.alloc, a)
					tl.release = append(tl.release, r)
				}
			}
		})
	}
	ready.Wait()
	sleep(runCtx, *warmup)
	cpu0, err := cpuTicks(procs)
	if err != nil {
		stop(err)
	}
	t0 := time.Now()
	phase.Store(measuring)
	sleep(runCtx, *duration)
	phase.Store(stopping)
	el := time.Since(t0)
	cpu1, err1 := cpuTicks(procs)
	wg.Wait()
	if err := context.Cause(runCtx); err != nil {
		return err
	}
	if err1 != nil {
		return err1
	}

	var alloc, release []time.Duration
	for _, tl := range tallies {
		alloc = append(alloc, tl.alloc...)
		release = append(release, tl.release...)
	}
	if len(alloc) == 0 {
		return errors.New("no cycle completed in the measured window")
	}
	slices.Sort(alloc)
	slices.Sort(release)
	n := len(alloc)
	if *tgt == "http" {
		*conns = *callers // one keep-alive connection per caller
	}
	res := Result{
		Label: *label, Target: *tgt, Callers: *callers, Conns: *conns, Cycles: n, Seconds: el.Seconds(),
		PerSecond: float64(n) / el.Seconds(),
		AllocP50:  us(pct(alloc, 0.50)), AllocP99: us(pct(alloc, 0.99)),
		ReleaseP50: us(pct(release, 0.50)), ReleaseP99: us(pct(release, 0.99)),
		CPUByPID:    map[string]float64{},
		AllocErrors: allocErrs.Load(), ReleaseErrors: relErrs.Load(),
	}
	if e := firstErr.Load(); e != nil {
		res.FirstError = (*e).Error()
	}
	for k, t1 := range cpu1 {
		d := float64(t1-cpu0[k]) * tickMicros / float64(n)
		res.CPUByPID[k] = d
		res.CPUPerCycle += d
	}
	return json.NewEncoder(out).Encode(&res)
}

// firstCycle runs cycle until it succeeds, for up to limit; it returns the
// last error when none did.
func firstCycle(ctx context.Context, cycle cycleFunc, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		_, _, err := cycle(ctx)
		if err == nil || ctx.Err() != nil {
			return err
		}
		sleep(ctx, 10*time.Millisecond)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func pct(s []time.Duration, q float64) time.Duration {
	return s[min(int(q*float64(len(s))), len(s)-1)]
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// tickMicros is a clock tick of /proc/PID/stat in µs: Linux reports
// utime and stime in USER_HZ, 100 per second on every architecture Go
// supports.
const tickMicros = 1e6 / 100

// cpuTicks returns utime + stime of each pid and of this process ("self"),
// all threads included.
func cpuTicks(pids []int) (map[string]uint64, error) {
	out := map[string]uint64{}
	read := func(name, path string) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		// The command name (field 2) may hold spaces: fields are counted
		// after its closing parenthesis, from field 3 (state).
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			return fmt.Errorf("%s: no command name", path)
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			return fmt.Errorf("%s: %d fields", path, len(f))
		}
		ut, err1 := strconv.ParseUint(f[11], 10, 64) // field 14, utime
		st, err2 := strconv.ParseUint(f[12], 10, 64) // field 15, stime
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		out[name] = ut + st
		return nil
	}
	if err := read("self", "/proc/self/stat"); err != nil {
		return nil, err
	}
	for _, p := range pids {
		if err := read(strconv.Itoa(p), fmt.Sprintf("/proc/%d/stat", p)); err != nil {
			return nil, err
		}
	}
	return out, nil
}
