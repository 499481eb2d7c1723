package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/client"
	"switchboard/internal/testsupport"
	"switchboard/wire"
)

// TestBurstOverManyConnectionsIsShedNotFailedOver: issue 11, "overload is
// shed, never failed over ... a burst of any size gets successes and
// OVERLOADED ... and the breakers stay closed". TestBurstIsShedNeverFailedOver
// and bench/results/burst.txt put 3,000 callers on 4 connections. Here the
// same 3,000 callers use 64 connections (one Go client, as a front end with
// a larger pool has), so each connection has about 47 requests unanswered,
// under the 128 (half of server.max_conn_unanswered) from which admission
// sheds: no request is ever shed, each that waited 50 ms takes a slot past
// the adaptive limit up to the pool's whole capacity (2,048 calls), the
// tier's queue grows past its attempt_timeout (250 ms), the timeouts count
// against its breaker, it opens and the burst is served by the next tiers.
// The real binary on the embedded default's tiers and timeouts, metrics on
// a Unix socket.
//
// Robustness: the verdict counts allocations served by a tier other than
// primary-large and attempts that timed out; it depends on the host being
// too slow for 2,048 queued calls to finish within 250 ms. On this shared
// 2-core machine that is so in every run tried (sbbench -concurrency 3000
// -conns 64 against bin/switchboard opened the primary's and nextgen's
// breakers too); on an idle fast host it may pass, which does not clear the
// admission rule. The same test with client.WithConns(4) passes here (no
// failover, no timeout): only the number of connections differs.
func TestBurstOverManyConnectionsIsShedNotFailedOver(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon binary under a burst")
	}
	dir := testsupport.ShortTempDir(t)
	sock := filepath.Join(dir, "sb.sock")
	msock := filepath.Join(dir, "m.sock")
	cfgPath := filepath.Join(dir, "sb.yaml")
	cfg := fmt.Sprintf(`log:
  level: info
  format: json
metrics:
  addr: unix:%s
tiers:
  - name: primary-large
    servers: [sim://primary-large]
  - name: nextgen
    servers: [sim://nextgen]
  - name: backup2-large
    servers: [sim://backup2-large]
`, msock)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	initKeys(t, cfgPath, filepath.Join(dir, "data"))
	startLogged(t, sock, filepath.Join(dir, "data"), "-config", cfgPath)
	m := &scraper{c: &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", msock)
	}}}}
	defer m.c.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	burst, err := client.Dial(ctx, sock, client.WithConns(64))
	if err != nil {
		t.Fatal(err)
	}
	defer burst.Close()
	const callers, runFor = 3000, 4 * time.Second
	var ok, overloaded, unavailable, other atomic.Int64
	var mu sync.Mutex
	byTier := map[string]int{}
	var firstOther error
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				a, err := burst.Allocate(ctx, &wire.AllocateRequest{Spec: wire.Spec{Name: []byte("burst")}})
				switch {
				case err == nil:
					ok.Add(1)
					mu.Lock()
					byTier[string(a.Tier)]++
					mu.Unlock()
					burst.Release(ctx, a.Key)
				case errors.Is(err, wire.StatusOverloaded), errors.Is(err, client.ErrBusy):
					overloaded.Add(1)
					time.Sleep(50 * time.Millisecond) // "busy, retry" after a pause
				case errors.Is(err, wire.StatusUnavailable):
					unavailable.Add(1)
				default:
					other.Add(1)
					mu.Lock()
					if firstOther == nil {
						firstOther = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(runFor)
	close(stop)
	wg.Wait()
	timeouts := m.value(t, `switchboard_tier_attempts_total{outcome="timeout",tier="primary-large"}`)
	t.Logf("%d callers on 64 connections for %v: ok %d %v, overloaded %d, unavailable %d, other %d (first %v); primary-large attempts timed out: %.0f",
		callers, runFor, ok.Load(), byTier, overloaded.Load(), unavailable.Load(), other.Load(), firstOther, timeouts)
	if n := ok.Load() - int64(byTier["primary-large"]); n > 0 {
		t.Errorf("%d allocations of a burst against healthy tiers were served by a lower tier (failed over): %v", n, byTier)
	}
	if timeouts > 0 {
		t.Errorf("%.0f attempts on the healthy primary-large timed out (counted against its breaker): the burst was queued at the tier, not shed", timeouts)
	}
	if n := unavailable.Load(); n > 0 {
		t.Errorf("%d UNAVAILABLE answers while every tier was healthy", n)
	}
}
