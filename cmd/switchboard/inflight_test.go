package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"switchboard/internal/testsupport"
	"switchboard/telsim"
	"switchboard/wire"
)

// startTelsim runs the telsim binary (built by TestMain) with args, and
// returns its telephony address and a client of its control API. The
// process is stopped at the end of the test.
func startTelsim(t *testing.T, dir string, args ...string) (string, *telsim.ControlClient) {
	t.Helper()
	cmd := exec.Command(telsimBin, append([]string{"-listen", "127.0.0.1:0", "-control", "127.0.0.1:0", "-log-level", "warn"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var addr, control string
	timeout := time.After(10 * time.Second)
	for addr == "" || control == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("telsim exited before printing its addresses")
			}
			if a, ok := strings.CutPrefix(l, "listen "); ok {
				addr = a
			}
			if a, ok := strings.CutPrefix(l, "control "); ok {
				control = a
			}
		case <-timeout:
			t.Fatal("telsim printed no addresses in 10s")
		}
	}
	go func() {
		for range lines { // drain until telsim exits
		}
	}()
	return addr, telsim.NewControlClient(control, nil)
}

func telStats(t *testing.T, cc *telsim.ControlClient) telsim.Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := cc.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// waitStats polls telsim's stats until ok holds, for at most d.
func waitStats(t *testing.T, cc *telsim.ControlClient, d time.Duration, what string, ok func(telsim.Stats) bool) telsim.Stats {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		st := telStats(t, cc)
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; telsim stats %+v", what, d, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKillNineDuringReserveOneBridgePerToken is issue 10's point 3 against
// real processes: a telephony server (the telsim binary) that takes 600 ms
// to answer a RESERVE; the daemon binary is killed with SIGKILL while one is
// on its way; after the restart the client retries with the same token. The
// server must end up holding exactly one bridge for the token — the one the
// client was told about — within a bounded time, not two with the first
// leaked.
func TestKillNineDuringReserveOneBridgePerToken(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the daemon and telsim binaries")
	}
	dir := testsupport.ShortTempDir(t)
	addr, cc := startTelsim(t, dir, "-tier", "primary-large", "-latency", "600ms")
	cfg := fmt.Sprintf(`log: {level: warn}
server: {request_timeout: 5s}
pool: {min_conns: 1, heartbeat_interval: 1s, heartbeat_timeout: 2s}
tiers:
  - name: primary-large
    servers: [tcp://%s]
    attempt_timeout: 3s
`, addr)
	req := &wire.AllocateRequest{Token: []byte("issue-10-point-3"), Spec: wire.Spec{Name: []byte("crash between RESERVE and answer")}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := startCrashRun(ctx, t, dir, cfg, req)
	// The RESERVE has reached the server (which executes it at once and
	// answers 600 ms later): kill the daemon now.
	waitStats(t, cc, 10*time.Second, "the first RESERVE to arrive", func(st telsim.Stats) bool { return st.Reserves >= 1 })
	r.kill9(t)
	if st := telStats(t, cc); st.Reservations != 1 {
		t.Fatalf("before the restart the server holds %d reservations, want the 1 of the killed request", st.Reservations)
	}

	c := r.restart(ctx, t)
	a, err := c.Allocate(ctx, req)
	if err != nil {
		t.Fatalf("retry after the restart: %v", err)
	}
	// Bounded: the first reservation is released by the orphan releaser
	// once the tier has a live connection (a sweep every 500 ms) and the
	// RELEASE's 600 ms: well under 10 s.
	waitStats(t, cc, 10*time.Second, "exactly one reservation for the token", func(st telsim.Stats) bool { return st.Reservations == 1 })
	// And it is the client's: the server still knows the key it was told.
	if r, err := c.Lookup(ctx, a.Key); err != nil || r.Key != a.Key {
		t.Fatalf("lookup of the key the client holds (%d): %+v, %v", a.Key, r, err)
	}
	// A further retry replays the same bridge.
	again, err := c.Allocate(ctx, req)
	if err != nil || again.Key != a.Key || !again.Replayed {
		t.Fatalf("second retry: %+v, %v; want a replay of key %d", again, err, a.Key)
	}
	if st := telStats(t, cc); st.Reservations != 1 || st.Reserves != 2 {
		t.Fatalf("server holds %d reservations after %d RESERVEs; want 1 after 2", st.Reservations, st.Reserves)
	}
}
