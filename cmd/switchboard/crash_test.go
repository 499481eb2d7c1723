package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"switchboard/client"
	"switchboard/internal/testsupport"
	"switchboard/wire"
)

// TestKillNineNeverRepeatsAKey is the crash proof of the session-key scheme:
// the real daemon is killed with SIGKILL at random moments while clients
// allocate through its socket, restarted on the same data directory each
// time, and no acknowledged key may ever be issued twice, nor fall outside
// the 9-digit domain.
func TestKillNineNeverRepeatsAKey(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the daemon binary")
	}
	dir := testsupport.ShortTempDir(t)
	bin := daemonBin
	sock := filepath.Join(dir, "sb.sock")
	data := filepath.Join(dir, "data")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	seed := rng.Uint64()
	t.Logf("seed %d", seed)
	rng = rand.New(rand.NewPCG(seed, 7))

	seen := map[uint64]int{}
	const kills = 20
	total := 0
	for round := 0; round < kills; round++ {
		p := start(t, bin, sock, data)
		keys := loadUntilKilled(t, sock, p, time.Duration(20+rng.IntN(180))*time.Millisecond)
		for _, k := range keys {
			if k < 100_000_000 || k > 999_999_999 {
				t.Fatalf("round %d: key %d outside the 9-digit domain", round, k)
			}
			if prev, dup := seen[k]; dup {
				t.Fatalf("key %d acknowledged in round %d and again in round %d", k, prev, round)
			}
			seen[k] = round
		}
		total += len(keys)
	}
	if total < kills {
		t.Fatalf("only %d keys acknowledged over %d rounds: the load did not run", total, kills)
	}
	t.Logf("%d kills, %d acknowledged keys, no duplicate", kills, total)
}

// loadUntilKilled allocates from 8 goroutines over 2 connections, kills the
// daemon with SIGKILL after d, and returns every key the daemon acknowledged.
func loadUntilKilled(t *testing.T, sock string, p *proc, d time.Duration) []uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, sock, client.WithConns(2))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var (
		mu   sync.Mutex
		keys []uint64
		wg   sync.WaitGroup
	)
	stop := make(chan struct{})
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				a, err := c.Allocate(ctx, &wire.AllocateRequest{Spec: wire.Spec{Name: []byte(fmt.Sprint("crash ", w, i))}})
				if err != nil {
					// Expected once the daemon dies: the request's fate is
					// unknown to us and its key, if any, was never ours.
					if errors.Is(err, wire.StatusBadRequest) {
						t.Errorf("allocation refused: %v", err)
					}
					select {
					case <-stop:
						return
					case <-time.After(time.Millisecond):
					}
					continue
				}
				mu.Lock()
				keys = append(keys, a.Key)
				mu.Unlock()
			}
		}(w)
	}
	time.Sleep(d)
	p.kill9(t)
	close(stop)
	wg.Wait()
	return keys
}

// TestSIGTERMExitsZero checks the graceful path of the real binary.
func TestSIGTERMExitsZero(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the daemon binary")
	}
	dir := testsupport.ShortTempDir(t)
	bin := daemonBin
	sock := filepath.Join(dir, "sb.sock")
	p := start(t, bin, sock, filepath.Join(dir, "data"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Allocate(ctx, &wire.AllocateRequest{Spec: wire.Spec{Name: []byte("bye")}}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit 15s after SIGTERM")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left behind after SIGTERM: %v", err)
	}
}

func TestCheckConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the daemon binary")
	}
	dir := testsupport.ShortTempDir(t)
	bin := daemonBin
	good := filepath.Join("..", "..", "configs", "default.yaml")
	out, err := exec.Command(bin, "-check-config", good).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("check of the default: %v %q", err, out)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("tiers: []\nbogus: true\nlog: {levle: info}\n"), 0o600)
	out, err = exec.Command(bin, "-check-config", bad).CombinedOutput()
	var ee *exec.ExitError
	want := bad + ": line 2: bogus: unknown field; valid fields here: instance, socket, data_dir, log, admin, metrics, server, keys, cache, pool, breaker, tiers, simulators\n" +
		bad + ": line 3: log.levle: unknown field (did you mean level?); valid fields here: level, format\n" +
		bad + ": line 1: tiers: at least one tier is required\n" +
		bad + ": 3 errors\n"
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || string(out) != want {
		t.Fatalf("check of a bad file: %v\n%s\nwant\n%s", err, out, want)
	}
}
