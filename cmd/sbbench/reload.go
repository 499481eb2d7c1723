package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// reloadURL is what a reload POSTs to. The host is a placeholder: the admin
// client dials the admin Unix socket whatever the URL says.
const reloadURL = "http://switchboard/reload"

// errReloadRefused marks a reload the daemon answered with an error status.
var errReloadRefused = errors.New("reload refused")

// reloadCall is one POST /reload and what became of it.
type reloadCall struct {
	IssuedS float64 // seconds after the end of warmup
	TookS   float64 // round trip
	OK      bool
	Version uint64 // ok: the config version the daemon reports in force
	Error   string // failed: why
}

// reloadObserver is told of every reload once its call returned.
// Implementations are safe for concurrent use.
type reloadObserver interface {
	reloaded(c *reloadCall)
}

// reloadSummary is what -reload-every did, as reported in the summary
// (text and -json), with the latency of the timeline rows during which a
// reload was in progress against the latency of the other rows.
type reloadSummary struct {
	AdminSocket string  `json:"admin_socket"`
	EveryS      float64 `json:"every_s"`
	OK          int64   `json:"ok"`
	Failed      int64   `json:"failed"`
	// Skipped counts reload times that passed while the previous reload
	// was still running (reloads never overlap).
	Skipped     int64   `json:"skipped"`
	FirstError  string  `json:"first_error,omitempty"`
	LastVersion uint64  `json:"last_config_version,omitempty"`
	TookP50US   float64 `json:"took_p50_us"`
	TookMaxUS   float64 `json:"took_max_us"`

	// Rows with ok allocations, split by whether a reload was in progress
	// during the row; p99 of all their ok allocations (µs), and the ratio
	// p99_with / p99_without (0 when either side has no row).
	RowsWith    int     `json:"rows_with"`
	RowsWithout int     `json:"rows_without"`
	P99With     float64 `json:"p99_with_us"`
	P99Without  float64 `json:"p99_without_us"`
	P99Ratio    float64 `json:"p99_ratio"`
}

// reloadScheduler POSTs /reload to the daemon's admin socket every `every`
// during the measured window (at from+every, from+2·every, … before end),
// from one goroutine off the load loop. Calls never overlap: a reload still
// running when the next is due delays it to the next tick, and the missed
// tick is counted as skipped. Each call is bounded by timeout and by the
// run's context; a failed call is recorded and the run goes on. It is used
// by one goroutine (start, then stop).
type reloadScheduler struct {
	every    time.Duration
	clk      clock
	hc       *http.Client
	timeout  time.Duration
	from     time.Time
	end      time.Time
	obs      reloadObserver
	socket   string
	cancel   context.CancelFunc
	done     chan struct{}
	calls    []reloadCall // owned by the worker until done closes
	skipped  int64
	stopOnce sync.Once
}

// newReloadScheduler returns a scheduler; nothing runs before start.
func newReloadScheduler(socket string, every time.Duration, clk clock, hc *http.Client, timeout time.Duration,
	from, end time.Time, obs reloadObserver) *reloadScheduler {
	return &reloadScheduler{socket: socket, every: every, clk: clk, hc: hc, timeout: timeout, from: from, end: end, obs: obs,
		done: make(chan struct{})}
}

// start launches the worker. ctx is the run's: when it ends (a signal),
// waiting ends and a call in progress is cancelled.
func (s *reloadScheduler) start(ctx context.Context) {
	wctx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	go s.work(ctx, wctx)
}

func (s *reloadScheduler) work(ctx, wctx context.Context) {
	defer close(s.done)
	for next := s.from.Add(s.every); next.Before(s.end); {
		if err := s.clk.SleepUntil(wctx, next); err != nil || wctx.Err() != nil {
			return
		}
		issued := s.clk.Now()
		cctx, cancel := context.WithTimeout(ctx, s.timeout)
		version, err := postReload(cctx, s.hc)
		cancel()
		c := reloadCall{IssuedS: issued.Sub(s.from).Seconds(), TookS: s.clk.Now().Sub(issued).Seconds(), OK: err == nil, Version: version}
		if err != nil {
			c.Error = err.Error()
		}
		s.calls = append(s.calls, c)
		if s.obs != nil {
			s.obs.reloaded(&c)
		}
		next = next.Add(s.every)
		for now := s.clk.Now(); next.Before(now) && next.Before(s.end); next = next.Add(s.every) {
			s.skipped++
		}
	}
}

// stop ends the waiting (reloads not yet due are not made), waits for a
// call in progress, and returns what the reloads did. It is idempotent.
func (s *reloadScheduler) stop() reloadSummary {
	s.stopOnce.Do(func() {
		if s.cancel != nil {
			s.cancel()
		} else {
			close(s.done) // never started
		}
	})
	<-s.done
	r := reloadSummary{AdminSocket: s.socket, EveryS: s.every.Seconds(), Skipped: s.skipped}
	took := make([]float64, 0, len(s.calls))
	for _, c := range s.calls {
		took = append(took, c.TookS)
		if !c.OK {
			r.Failed++
			if r.FirstError == "" {
				r.FirstError = c.Error
			}
			continue
		}
		r.OK++
		r.LastVersion = c.Version
	}
	if len(took) > 0 {
		slices.Sort(took)
		r.TookP50US = micros(int64(took[(len(took)-1)/2] * 1e9))
		r.TookMaxUS = micros(int64(took[len(took)-1] * 1e9))
	}
	return r
}

// postReload makes one POST /reload and returns the config version the
// daemon reports in force, or why the reload failed: the daemon's error
// (wrapping errReloadRefused, with the HTTP status) or the transport's.
func postReload(ctx context.Context, hc *http.Client) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, reloadURL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, fmt.Errorf("reading the answer: %w", err)
	}
	var ans struct {
		OK      bool   `json:"ok"`
		Version uint64 `json:"config_version"`
		Error   string `json:"error"`
	}
	jerr := json.Unmarshal(body, &ans)
	if resp.StatusCode != http.StatusOK {
		msg := ans.Error
		if jerr != nil || msg == "" {
			msg = strings.TrimSpace(string(body))
		}
		return 0, fmt.Errorf("%w: HTTP %d: %s", errReloadRefused, resp.StatusCode, msg)
	}
	if jerr != nil || !ans.OK {
		return 0, fmt.Errorf("%w: HTTP 200 with an unexpected answer %q", errReloadRefused, strings.TrimSpace(string(body)))
	}
	return ans.Version, nil
}

// newAdminHTTPClient returns the HTTP client of the reload calls: it dials
// the admin Unix socket for every URL, never through a proxy, and bounds
// each call by timeout. The caller closes its idle connections when the run
// ends.
func newAdminHTTPClient(socket string, timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: timeout}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy: nil,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "unix", socket)
			},
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     30 * time.Second,
		},
	}
}
