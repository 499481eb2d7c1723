package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/client"
	"switchboard/internal/etcdtest"
	"switchboard/internal/testsupport"
	"switchboard/wire"
)

// fleetConfig is a daemon of the fleet: the etcd key store on endpoint and
// the three shared telsim tiers. Small blocks that grow to last about a
// second keep the buffered keys to a second or two of load, so that the
// etcd outage outlasts them.
func fleetConfig(instance, endpoint string, tiers [3]string) string {
	return fmt.Sprintf(`instance: %s
log:
  level: warn
keys:
  digits: 9
  block_size: 64
  secret: 00112233445566778899aabbccddeeff0011223344556677
  store: etcd
  etcd:
    endpoints: [%q]
    prefix: /fleet-test/keys/
    request_timeout: 500ms
    max_block: 4096
    block_period: 1s
pool:
  min_conns: 1
  backoff_max: 500ms
tiers:
  - name: primary-large
    servers: [tcp://%s]
    attempt_timeout: 500ms
  - name: nextgen
    servers: [tcp://%s]
    attempt_timeout: 500ms
  - name: backup2-large
    servers: [tcp://%s]
    attempt_timeout: 500ms
`, instance, endpoint, tiers[0], tiers[1], tiers[2])
}

// fleetEvent is one allocation's outcome, timed from the start of the run.
type fleetEvent struct {
	daemon int
	at     time.Duration
	key    uint64
	err    error
}

// TestFleetOnEtcd: three switchboard processes share one key space in
// etcd (hosted by this test process) and three telsim processes. Under
// load through all three, one daemon is killed with SIGKILL and restarted,
// and etcd is stopped for 5 s. No key is acknowledged twice across the
// fleet; every failure is either the killed daemon's connection or, while
// etcd is down and a daemon's buffered keys are used up, KEYS_EXHAUSTED;
// every daemon serves from its buffer after etcd stopped and again once it
// is back.
func TestFleetOnEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three daemons, three telsims and etcd for about 25 s")
	}
	srv := etcdtest.Start(t)
	var tiers [3]string
	for i, name := range []string{"primary-large", "nextgen", "backup2-large"} {
		tiers[i] = startTelsimProc(t, "-tier", name, "-capacity", "1000000", "-log-level", "warn").listen
	}
	dir := testsupport.ShortTempDir(t)
	type member struct {
		cfg, sock, data string
		p               atomic.Pointer[proc]
		down            atomic.Bool // killed, not yet restarted
	}
	var ms [3]*member
	for i := range ms {
		m := &member{cfg: filepath.Join(dir, fmt.Sprintf("sb%d.yaml", i)), sock: filepath.Join(dir, fmt.Sprintf("sb%d.sock", i)), data: filepath.Join(dir, fmt.Sprintf("data%d", i))}
		if err := os.WriteFile(m.cfg, []byte(fleetConfig(fmt.Sprintf("fleet-%d", i), srv.Endpoint(), tiers)), 0o600); err != nil {
			t.Fatal(err)
		}
		ms[i] = m
	}
	initKeys(t, ms[0].cfg, ms[0].data)
	if code, _, errOut := runBin(t, "-init-keys", "-config", ms[1].cfg, "-data-dir", ms[1].data); code != 2 {
		t.Fatalf("a second -init-keys on the fleet's key space: exit %d, want 2 (refused)\n%s", code, errOut)
	}
	for _, m := range ms {
		m.p.Store(start(t, daemonBin, m.sock, m.data, "-config", m.cfg))
	}

	t0 := time.Now()
	var (
		mu     sync.Mutex
		events []fleetEvent
		wg     sync.WaitGroup
	)
	stop := make(chan struct{})
	for i, m := range ms {
		for w := range 3 {
			wg.Go(func() {
				var c *client.Client
				defer func() {
					if c != nil {
						c.Close()
					}
				}()
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					if c == nil {
						ctx, cancel := context.WithTimeout(context.Background(), time.Second)
						var err error
						c, err = client.Dial(ctx, m.sock)
						cancel()
						if err != nil {
							c = nil
							time.Sleep(20 * time.Millisecond)
							continue
						}
					}
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					a, err := c.Allocate(ctx, &wire.AllocateRequest{Spec: wire.Spec{Name: []byte(fmt.Sprint("fleet ", i, w, n))}})
					if err == nil {
						_ = c.Release(ctx, a.Key)
					}
					cancel()
					ev := fleetEvent{daemon: i, at: time.Since(t0), err: err}
					if err == nil {
						ev.key = a.Key
					}
					mu.Lock()
					events = append(events, ev)
					mu.Unlock()
					if err != nil && !errors.Is(err, wire.StatusKeysExhausted) {
						// The connection is gone (the daemon was killed):
						// dial again.
						c.Close()
						c = nil
						time.Sleep(20 * time.Millisecond)
					} else if err != nil {
						time.Sleep(5 * time.Millisecond)
					}
				}
			})
		}
	}

	// The timeline: kill daemon 1 at 3 s and restart it; stop etcd at 7 s
	// for 5 s; run 6 s more once it serves again (its start may take a few
	// seconds on a loaded machine).
	var killAt, restartedAt, etcdStop, etcdBack time.Duration
	time.Sleep(3 * time.Second)
	ms[1].down.Store(true)
	killAt = time.Since(t0)
	ms[1].p.Load().kill9(t)
	ms[1].p.Store(start(t, daemonBin, ms[1].sock, ms[1].data, "-config", ms[1].cfg))
	restartedAt = time.Since(t0)
	ms[1].down.Store(false)
	time.Sleep(time.Until(t0.Add(7 * time.Second)))
	etcdStop = time.Since(t0)
	srv.Stop()
	time.Sleep(5 * time.Second)
	if err := srv.Start(); err != nil {
		close(stop)
		wg.Wait()
		t.Fatal(err)
	}
	etcdBack = time.Since(t0)
	time.Sleep(6 * time.Second)
	close(stop)
	wg.Wait()
	t.Logf("killed daemon 1 at %v, serving again at %v; etcd down from %v to %v", killAt, restartedAt, etcdStop, etcdBack)

	seen := map[uint64]int{}
	var ok, exhausted, connErrs [3]int
	var servedInOutage, servedAfter [3]int
	lastExhausted := time.Duration(0)
	for _, ev := range events {
		switch {
		case ev.err == nil:
			if prev, dup := seen[ev.key]; dup {
				t.Fatalf("key %d acknowledged by daemon %d and by daemon %d", ev.key, prev, ev.daemon)
			}
			if ev.key < 100_000_000 || ev.key > 999_999_999 {
				t.Fatalf("key %d outside the 9-digit domain", ev.key)
			}
			seen[ev.key] = ev.daemon
			ok[ev.daemon]++
			if ev.at > etcdStop && ev.at < etcdBack {
				servedInOutage[ev.daemon]++
			}
			if ev.at > etcdBack {
				servedAfter[ev.daemon]++
			}
		case errors.Is(ev.err, wire.StatusKeysExhausted):
			exhausted[ev.daemon]++
			if !strings.Contains(ev.err.Error(), "no session keys available") {
				t.Errorf("daemon %d: %v, want the keys-unavailable message (the key space is not used up)", ev.daemon, ev.err)
			}
			lastExhausted = max(lastExhausted, ev.at)
			// Keys run out only while etcd is down (and until the daemon
			// has leased again after it came back: bounded below).
			if ev.at < etcdStop {
				t.Errorf("daemon %d: KEYS_EXHAUSTED at %v, before etcd stopped (%v): %v", ev.daemon, ev.at, etcdStop, ev.err)
			}
		default:
			connErrs[ev.daemon]++
			// Only the killed daemon's clients may lose their connection,
			// and only around the kill.
			if ev.daemon != 1 || ev.at < killAt || ev.at > restartedAt+time.Second {
				t.Errorf("daemon %d: client error at %v (kill at %v, restarted at %v): %v", ev.daemon, ev.at, killAt, restartedAt, ev.err)
			}
		}
	}
	t.Logf("acknowledged keys %v (all distinct: %d), KEYS_EXHAUSTED %v (last at %v), connection errors %v; served while etcd was down %v, after it came back %v",
		ok, len(seen), exhausted, lastExhausted, connErrs, servedInOutage, servedAfter)
	for i := range ms {
		if servedInOutage[i] == 0 || testing.Verbose() {
			var around []string
			for _, ev := range events {
				if ev.daemon == i && ev.at > etcdStop-200*time.Millisecond && len(around) < 12 {
					around = append(around, fmt.Sprintf("%v:%v", ev.at.Round(time.Millisecond), ev.err))
				}
			}
			t.Logf("daemon %d from etcd's stop: %v", i, around)
		}
		if servedInOutage[i] == 0 {
			t.Errorf("daemon %d served no buffered key while etcd was down", i)
		}
		if servedAfter[i] == 0 {
			t.Errorf("daemon %d served no key after etcd came back", i)
		}
	}
	if exhausted[0]+exhausted[1]+exhausted[2] == 0 {
		t.Errorf("no KEYS_EXHAUSTED while etcd was down: the buffers outlasted the outage, the test proves nothing about it")
	}
	if lastExhausted > etcdBack+5*time.Second {
		t.Errorf("KEYS_EXHAUSTED until %v, more than 5 s after etcd came back at %v", lastExhausted, etcdBack)
	}
}
