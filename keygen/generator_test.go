package keygen

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"switchboard/internal/testsupport"
)

// The tests in this file run against both implementations (forEachImpl).

func TestUniqueUnderConcurrency(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im impl) {
		for _, tc := range []struct {
			name  string
			block uint64
			file  bool
		}{
			{"file store", 4096, true},
			{"small blocks", 64, false}, // many refills and chunk swaps
			{"block of 1", 1, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cfg := Config{Digits: 9, BlockSize: tc.block, Secret: testSecret, Dir: t.TempDir()}
				var store LeaseStore
				mem := newMemStore()
				if !tc.file {
					store = mem
				} else {
					mustInit(t, cfg, WithFS(newFastFS()))
				}
				g := mustOpen(t, im, cfg, store, WithFS(newFastFS()))
				const workers = 8
				per := 12_000
				if tc.block == 1 {
					per = 2_000
				}
				got := make([][]uint64, workers)
				var wg sync.WaitGroup
				for w := range workers {
					wg.Go(func() {
						keys := make([]uint64, 0, per)
						for range per {
							keys = append(keys, nextRetry(t, g))
						}
						got[w] = keys
					})
				}
				wg.Wait()
				seen := newKeySet()
				p := g.Permutation()
				for _, keys := range got {
					seen.add(t, keys...)
					for _, k := range keys {
						if _, ok := p.Counter(k); !ok {
							t.Fatalf("key %d is not a 9-digit key", k)
						}
					}
				}
				if seen.len() != workers*per {
					t.Fatalf("%d unique keys, want %d", seen.len(), workers*per)
				}
				if st := g.Stats(); st.Issued != uint64(workers*per) {
					t.Fatalf("Stats.Issued = %d, want %d", st.Issued, workers*per)
				}
			})
		}
	})
}

func TestRestartNeverReissues(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im impl) {
		dir := t.TempDir()
		cfg := Config{Digits: 6, BlockSize: 100, Dir: dir}
		mustInit(t, cfg, WithFS(newFastFS()))
		seen := newKeySet()
		var lastCounter uint64
		for restart := range 6 {
			g, err := im.open(cfg, nil, WithFS(newFastFS()))
			if err != nil {
				t.Fatalf("start %d: %v", restart, err)
			}
			// Use only part of a block: the rest is lost, never reissued.
			for i := 0; i < 7+restart*40; i++ {
				k := nextRetry(t, g)
				seen.add(t, k)
				c, _ := g.Permutation().Counter(k)
				lastCounter = max(lastCounter, c)
			}
			if err := g.Close(); err != nil {
				t.Fatal(err)
			}
		}
		// A restart costs at most the buffered window: counters stay low.
		if lastCounter >= 6*3*100 {
			t.Fatalf("counter %d after 6 restarts with blocks of 100", lastCounter)
		}
	})
}

// TestCrashSnapshot simulates a crash at an arbitrary moment: while keys are
// being issued concurrently, the data directory is copied; a generator started
// on the copy (what a restart after a crash at that moment would see) must not
// issue any key issued before the copy was taken.
func TestCrashSnapshot(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im impl) {
		dir := t.TempDir()
		cfg := Config{Digits: 7, BlockSize: 512, Dir: dir}
		mustInit(t, cfg)
		g := mustOpen(t, im, cfg, nil)
		var (
			mu     sync.Mutex
			issued []uint64
			stop   atomic.Bool
			wg     sync.WaitGroup
		)
		for range 4 {
			wg.Go(func() {
				for !stop.Load() {
					k := nextRetry(t, g)
					mu.Lock()
					issued = append(issued, k)
					mu.Unlock()
				}
			})
		}
		testsupport.WaitForStep(t, "keys issued", nil, func() bool { mu.Lock(); defer mu.Unlock(); return len(issued) > 3000 })
		mu.Lock()
		before := append([]uint64(nil), issued...) // issued before the snapshot...
		mu.Unlock()
		snap := t.TempDir()
		copyFile(t, filepath.Join(dir, SecretFile), filepath.Join(snap, SecretFile))
		copyFile(t, filepath.Join(dir, StateFile), filepath.Join(snap, StateFile)) // ...so covered by this mark
		stop.Store(true)
		wg.Wait()

		cfg.Dir = snap
		g2 := mustOpen(t, im, cfg, nil)
		old := newKeySet()
		old.add(t, before...)
		for range 5000 {
			k := nextRetry(t, g2)
			if _, dup := old.seen[k]; dup {
				t.Fatalf("key %d reissued after the simulated crash", k)
			}
		}
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestExhaustionAllKeysOnce issues the whole 6-digit domain: every key exactly
// once, then ErrExhausted, never a wrap.
func TestExhaustionAllKeysOnce(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im impl) {
		mem := newMemStore()
		g := mustOpen(t, im, Config{Digits: 6, BlockSize: 1000, Secret: testSecret}, mem, fullDomainFill())
		seen := make([]bool, 900_000)
		var (
			mu    sync.Mutex
			count int
			wg    sync.WaitGroup
		)
		for range 3 {
			wg.Go(func() {
				for {
					k, err := g.Next()
					if errors.Is(err, errNotReady) {
						runtime.Gosched()
						continue
					}
					if errors.Is(err, ErrExhausted) {
						return
					}
					if err != nil {
						t.Errorf("Next: %v", err)
						return
					}
					if k < 100_000 || k > 999_999 {
						t.Errorf("key %d outside the 6-digit domain", k)
						return
					}
					mu.Lock()
					if seen[k-100_000] {
						mu.Unlock()
						t.Errorf("duplicate key %d", k)
						return
					}
					seen[k-100_000] = true
					count++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if count != 900_000 {
			// ErrExhausted may reach one caller while another still holds
			// the last chunk (documented); all keys must still come out.
			for {
				k, err := g.Next()
				if err != nil {
					break
				}
				if seen[k-100_000] {
					t.Fatalf("duplicate key %d", k)
				}
				seen[k-100_000] = true
				count++
			}
		}
		if count != 900_000 {
			t.Fatalf("issued %d keys, want all 900000", count)
		}
		for range 10 {
			if _, err := g.Next(); !errors.Is(err, ErrExhausted) {
				t.Fatalf("Next after the last key = %v, want ErrExhausted", err)
			}
		}
		st := g.Stats()
		if !st.Exhausted || st.Left != 0 || st.Used != 1 || st.Buffered != 0 || st.Issued != 900_000 {
			t.Fatalf("Stats after exhaustion = %+v", st)
		}
	})
}

// TestExhaustionFileStoreWarnings runs a small partition through the file
// store to its end, checking the low-space warnings and Stats on the way.
func TestExhaustionFileStoreWarnings(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im impl) {
		core, logs := observer.New(zap.InfoLevel)
		node := NodeConfig{ID: 3, Count: 100} // 9000 counters
		lo, hi := NodePartition(6, node)
		// Blocks of 0.5 % of the partition, so that every percent has a lease.
		cfg := Config{Digits: 6, BlockSize: 45, Secret: testSecret, Dir: t.TempDir(), Node: node, WarnAt: 0.8}
		mustInit(t, cfg, WithFS(newFastFS()))
		g := mustOpen(t, im, cfg, nil, WithLogger(zap.New(core)), WithFS(newFastFS()))
		seen := newKeySet()
		p := g.Permutation()
		prevLeft := g.Stats().Left
		for {
			k, err := g.Next()
			if errors.Is(err, errNotReady) {
				runtime.Gosched()
				continue
			}
			if errors.Is(err, ErrExhausted) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			seen.add(t, k)
			if c, _ := p.Counter(k); c < lo || c >= hi {
				t.Fatalf("counter %d outside node %d's partition [%d, %d)", c, node.ID, lo, hi)
			}
			if left := g.Stats().Left; left > prevLeft {
				t.Fatalf("Stats.Left grew from %d to %d", prevLeft, left)
			} else {
				prevLeft = left
			}
		}
		if seen.len() != int(hi-lo) {
			t.Fatalf("issued %d keys, want %d", seen.len(), hi-lo)
		}
		warns := logs.FilterMessage("session keys: key space running low").All()
		if len(warns) < 15 || len(warns) > 21 { // one per percent from 80 to 100
			t.Fatalf("%d low-space warnings, want one per percent from 80%%", len(warns))
		}
		if used := warns[0].ContextMap()["used"].(float64); used < 0.8 || used > 0.82 {
			t.Fatalf("first warning at %.3f used", used)
		}
		if logs.FilterMessage("session keys: key space exhausted; ALLOCATE fails once the buffered keys are used").Len() != 1 {
			t.Fatal("exhaustion not logged once")
		}
		// Restart: exhausted from the start, New still succeeds.
		_ = g.Close()
		g2 := mustOpen(t, im, cfg, nil, WithFS(newFastFS()))
		if _, err := g2.Next(); !errors.Is(err, ErrExhausted) {
			t.Fatalf("Next after restart on an exhausted partition = %v", err)
		}
	})
}

func TestMultiNodeDisjoint(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im impl) {
		const nodes = 3
		seen := make([]atomic.Bool, 900_000)
		var wg sync.WaitGroup
		var total atomic.Int64
		for id := range nodes {
			cfg := Config{Digits: 6, BlockSize: 4096, Secret: testSecret, Dir: t.TempDir(), Node: NodeConfig{ID: id, Count: nodes}}
			mustInit(t, cfg, WithFS(newFastFS()))
			g := mustOpen(t, im, cfg, nil, WithFS(newFastFS()), fullDomainFill())
			wg.Go(func() {
				for {
					k, err := g.Next()
					if errors.Is(err, errNotReady) {
						runtime.Gosched()
						continue
					}
					if errors.Is(err, ErrExhausted) {
						return
					}
					if err != nil {
						t.Errorf("node %d: %v", id, err)
						return
					}
					if seen[k-100_000].Swap(true) {
						t.Errorf("node %d issued key %d, already issued", id, k)
						return
					}
					total.Add(1)
				}
			})
		}
		wg.Wait()
		if total.Load() != 900_000 {
			t.Fatalf("nodes issued %d keys together, want the whole domain", total.Load())
		}
	})
}

// TestDiskFaults: a failing lease store stops new keys once the buffer runs
// dry, with ErrUnavailable wrapping the OS error; keys resume when the fault
// clears; no key is ever issued twice and every issued key lies below the
// durable high-water mark.
func TestDiskFaults(t *testing.T) {
	faults := []struct {
		op  string
		err syscall.Errno
	}{
		{opCreate, syscall.EROFS}, // read-only directory
		{opWrite, syscall.ENOSPC},
		{opSync, syscall.EIO},
		{opRename, syscall.EIO},
		{opSyncDir, syscall.EIO},
	}
	forEachImpl(t, func(t *testing.T, im impl) {
		for _, f := range faults {
			t.Run(f.op+"/"+f.err.Error(), func(t *testing.T) {
				dir := t.TempDir()
				fsys := newFastFS()
				clock := newFakeClock()
				cfg := Config{Digits: 6, BlockSize: 64, Secret: testSecret, Dir: dir}
				mustInit(t, cfg, WithFS(fsys))
				g := mustOpen(t, im, cfg, nil, WithFS(fsys), WithClock(clock))
				seen := newKeySet()
				issue := func(n int) {
					for range n {
						seen.add(t, nextRetry(t, g))
					}
				}
				issue(100)
				fsys.set(f.op, f.err)
				var err error
				deadline := time.Now().Add(10 * time.Second)
				for {
					var k uint64
					k, err = g.Next()
					if err != nil && !errors.Is(err, errNotReady) {
						break
					}
					if err == nil {
						seen.add(t, k)
					}
					if time.Now().After(deadline) {
						t.Fatal("keys kept coming with the disk failing")
					}
					runtime.Gosched()
				}
				if !errors.Is(err, ErrUnavailable) || !errors.Is(err, f.err) {
					t.Fatalf("Next with %s failing = %v, want ErrUnavailable wrapping %v", f.op, err, f.err)
				}
				st := g.Stats()
				if !st.Failing || st.LeaseErrors == 0 || !errors.Is(st.LastLeaseError, f.err) || st.Buffered != 0 {
					t.Fatalf("Stats while failing = %+v", st)
				}
				// Still failing after retries.
				clock.Advance(retryMax)
				if _, err := g.Next(); !errors.Is(err, ErrUnavailable) {
					t.Fatalf("Next = %v, want ErrUnavailable", err)
				}
				fsys.clear()
				testsupport.WaitForStep(t, "recovery", func() { clock.Advance(retryMax) }, func() bool {
					k, err := g.Next()
					if err == nil {
						seen.add(t, k)
					}
					return err == nil
				})
				issue(300)
				if g.Stats().Failing {
					t.Fatal("Stats.Failing after recovery")
				}
				// Every issued key's counter is below the durable mark.
				g.Close()
				s := openStore(t, dir)
				part, err := s.Bind(t.Context(), Binding{Digits: 6, Node: NodeConfig{Count: 1}, Fingerprint: FingerprintOf(testSecret)})
				if err != nil {
					t.Fatal(err)
				}
				for k := range seen.seen {
					if c, _ := g.Permutation().Counter(k); c >= part.Next {
						t.Fatalf("issued key %d (counter %d) is not covered by the durable mark %d", k, c, part.Next)
					}
				}
			})
		}
	})
}

// TestSlowStoreNeverBlocks: with the lease stuck (a slow disk), Next returns
// ErrUnavailable at once instead of waiting, and resumes when the lease ends.
func TestSlowStoreNeverBlocks(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im impl) {
		mem := newMemStore()
		g := mustOpen(t, im, Config{Digits: 9, BlockSize: 32, Secret: testSecret}, mem)
		gate := make(chan struct{})
		testsupport.WaitForStep(t, "read-ahead block", nil, func() bool { return g.Stats().Buffered >= 32 })
		mem.setGate(gate)
		seen := newKeySet()
		done := make(chan error, 1)
		go func() {
			for {
				k, err := g.Next()
				if err != nil {
					done <- err
					return
				}
				seen.add(t, k)
			}
		}()
		select {
		case err := <-done:
			if !errors.Is(err, ErrUnavailable) || !errors.Is(err, errNotReady) {
				t.Fatalf("Next with the lease stuck = %v, want ErrUnavailable (not ready)", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Next blocked on a stuck lease")
		}
		if n := seen.len(); n < 32 {
			t.Fatalf("only %d keys before running dry, want the buffered ones", n)
		}
		close(gate) // the disk catches up
		testsupport.WaitForStep(t, "keys after the slow lease", nil, func() bool {
			k, err := g.Next()
			if err == nil {
				seen.add(t, k)
			}
			return err == nil
		})
	})
}

// TestBadLeaseRefused: a store that returns an overlapping range (a bug) is
// treated as failing; the range is never used.
func TestBadLeaseRefused(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im impl) {
		mem := newMemStore()
		g := mustOpen(t, im, Config{Digits: 9, BlockSize: 16, Secret: testSecret}, mem, WithClock(newFakeClock()))
		seen := newKeySet()
		for range 40 {
			seen.add(t, nextRetry(t, g))
		}
		mem.mu.Lock()
		mem.override = func(start, end uint64) (uint64, uint64) { return start - 16, end - 16 }
		mem.mu.Unlock()
		var err error
		deadline := time.Now().Add(10 * time.Second)
		for err == nil || errors.Is(err, errNotReady) {
			var k uint64
			if k, err = g.Next(); err == nil {
				seen.add(t, k)
			}
			if time.Now().After(deadline) {
				t.Fatal("overlapping lease accepted")
			}
			runtime.Gosched()
		}
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrBadLease) {
			t.Fatalf("Next after a bad lease = %v, want ErrUnavailable wrapping ErrBadLease", err)
		}
	})
}

func TestCloseIdempotentAndConcurrent(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im impl) {
		cfg := Config{Digits: 9, BlockSize: 64, Dir: t.TempDir()}
		mustInit(t, cfg, WithFS(newFastFS()))
		g, err := im.open(cfg, nil, WithFS(newFastFS()))
		if err != nil {
			t.Fatal(err)
		}
		seen := newKeySet()
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					k, err := g.Next()
					if errors.Is(err, ErrClosed) {
						return
					}
					if err == nil {
						seen.add(t, k)
					} else if !errors.Is(err, errNotReady) {
						t.Errorf("Next: %v", err)
						return
					}
				}
			})
		}
		testsupport.WaitForStep(t, "keys", nil, func() bool { return seen.len() > 1000 })
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if err := g.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := g.Next(); !errors.Is(err, ErrClosed) {
			t.Fatalf("Next after Close = %v", err)
		}
	})
}

func TestNewFailures(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im impl) {
		if _, err := im.open(Config{Digits: 4, Dir: t.TempDir()}, nil); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("invalid config: %v", err)
		}
		if _, err := im.open(Config{Secret: testSecret}, nil); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("no store and no dir: %v", err)
		}
		// A broken disk at start fails New with the OS error, and releases
		// the directory.
		dir := t.TempDir()
		mustInit(t, Config{Dir: dir, Secret: testSecret})
		fsys := newFaultFS()
		fsys.set(opSync, syscall.EIO)
		if _, err := im.open(Config{Dir: dir, Secret: testSecret}, nil, WithFS(fsys)); !errors.Is(err, syscall.EIO) {
			t.Fatalf("New on a failing disk = %v", err)
		}
		openStore(t, dir).Close()
		// The first lease failing (after a good bind).
		mem := newMemStore()
		mem.setFail(fmt.Errorf("etcd: %w", syscall.ECONNREFUSED))
		if _, err := im.open(Config{Secret: testSecret}, mem); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("New with the first lease failing = %v", err)
		}
		// Two generators on one directory.
		dir = t.TempDir()
		mustInit(t, Config{Dir: dir})
		g := mustOpen(t, im, Config{Dir: dir}, nil)
		_ = g
		if _, err := im.open(Config{Dir: dir}, nil); !errors.Is(err, ErrLocked) {
			t.Fatalf("second generator on one directory = %v, want ErrLocked", err)
		}
	})
}

func TestStatsAccounting(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im impl) {
		mem := newMemStore()
		g := mustOpen(t, im, Config{Digits: 6, BlockSize: 100, Secret: testSecret}, mem)
		for range 250 {
			nextRetry(t, g)
		}
		testsupport.WaitForStep(t, "read-ahead", nil, func() bool { return g.Stats().Buffered >= 100 })
		st := g.Stats()
		if st.Issued != 250 {
			t.Fatalf("Issued = %d, want 250", st.Issued)
		}
		if leased := mem.hwm(); st.Buffered != leased-250 || st.Blocks != uint64(mem.leaseCount()) {
			t.Fatalf("Buffered = %d, Blocks = %d; leased %d in %d leases", st.Buffered, st.Blocks, leased, mem.leaseCount())
		}
		if st.Left != 900_000-250 || math.Abs(st.Used-250.0/900_000) > 1e-12 {
			t.Fatalf("Left = %d, Used = %v", st.Left, st.Used)
		}
		if st.Failing || st.Exhausted || st.LastLeaseError != nil || st.LeaseErrors != 0 {
			t.Fatalf("Stats = %+v", st)
		}
	})
}

// The remaining tests concern the lock-free Generator only.

func TestNextDoesNotAllocate(t *testing.T) {
	g, err := New(Config{Digits: 9, BlockSize: 1 << 16, Secret: testSecret}, newMemStore())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	nextRetry(t, g) // install a chunk
	if a := testing.AllocsPerRun(100, func() { _, _ = g.Next() }); a != 0 {
		t.Fatalf("Next allocates %v times per call", a)
	}
	// The error path does not allocate either.
	g.Close()
	if a := testing.AllocsPerRun(100, func() { _, _ = g.Next() }); a != 0 {
		t.Fatalf("Next after Close allocates %v times per call", a)
	}
}

func TestPadding(t *testing.T) {
	if s := unsafe.Sizeof(stripe{}); s != cacheLinePad {
		t.Errorf("stripe is %d bytes, want %d", s, cacheLinePad)
	}
	if s := unsafe.Sizeof(chunk{}); s != cacheLinePad {
		t.Errorf("chunk is %d bytes, want %d", s, cacheLinePad)
	}
	for procs, want := range map[int]int{1: 4, 2: 8, 3: 16, 16: 64, 64: 64} {
		if got := stripeCount(procs); got != want {
			t.Errorf("stripeCount(%d) = %d, want %d", procs, got, want)
		}
	}
}

// TestStrandedKeysAreStolen: keys left in a stripe whose goroutine went quiet
// are handed to others once the queue is empty, before any error.
func TestStrandedKeysAreStolen(t *testing.T) {
	mem := newMemStore()
	g, err := New(Config{Digits: 9, BlockSize: 4096, Secret: testSecret}, mem, WithClock(newFakeClock()))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	// Install chunks in other stripes from goroutines of their own.
	var wg sync.WaitGroup
	seen := newKeySet()
	for range 8 {
		wg.Go(func() { seen.add(t, nextRetry(t, g)) })
	}
	wg.Wait()
	testsupport.WaitForStep(t, "read-ahead", nil, func() bool { return g.Stats().Buffered >= 4096 })
	mem.setFail(syscall.EIO)
	for {
		k, err := g.Next()
		if err != nil {
			if !errors.Is(err, syscall.EIO) && !errors.Is(err, errNotReady) {
				t.Fatalf("Next = %v", err)
			}
			if errors.Is(err, syscall.EIO) {
				break
			}
			runtime.Gosched()
			continue
		}
		seen.add(t, k)
	}
	if st := g.Stats(); st.Buffered != 0 {
		t.Fatalf("%d keys stranded when Next failed", st.Buffered)
	}
	if want := int(mem.hwm()); seen.len() != want {
		t.Fatalf("issued %d keys, leased %d", seen.len(), want)
	}
}
