package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"switchboard/internal/etcdtest"
	"switchboard/internal/testsupport"
	"switchboard/keygen"
	"switchboard/keygen/etcdstore"
)

// The restores of a whole etcd snapshot while a fleet runs. Daemon A
// leased [0, 64), the snapshot was taken at mark 64, daemon B leased
// [64, 128), and the snapshot comes back whole: mark and fence both 64,
// written by one lease, so the fence cannot tell. A's own lease ends at
// 64, where the restored mark stands: only what A saw of B's lease (the
// watch of the mark key) can stop it from leasing [64, 128) again.

// leaseRetry leases, retrying while etcd does not answer (a member just
// restarted).
func leaseRetry(t *testing.T, s *etcdstore.Store, n uint64) (start, end uint64, err error) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		start, end, err = s.Lease(ctx(t), n)
		if !errors.Is(err, keygen.ErrUnavailable) || time.Now().After(deadline) {
			return start, end, err
		}
	}
}

// bindRetry binds a new store, retrying while etcd does not answer.
func bindRetry(t *testing.T, s *etcdstore.Store, b keygen.Binding) error {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, err := s.Bind(ctx(t), b)
		if !errors.Is(err, keygen.ErrUnavailable) || time.Now().After(deadline) {
			return err
		}
	}
}

// freshRefuses checks that a daemon started on an empty data directory
// (no record, nothing seen) refuses the restored mark: the fence that the
// daemons which saw past it raised tells it.
func freshRefuses(t *testing.T, cli *clientv3.Client) {
	t.Helper()
	fresh := newStore(t, cli, etcdstore.Config{Prefix: "/sb/", MinBlock: 64, MaxBlock: 64, RecordFile: filepath.Join(t.TempDir(), "fresh.etcdmark")}, nil)
	if err := bindRetry(t, fresh, binding(9, testSecret)); !errors.Is(err, keygen.ErrStateStale) {
		t.Fatalf("a daemon started on an empty data directory after the restore: %v, want ErrStateStale (the fence raised by the others)", err)
	}
}

// skipRetry moves the mark forward by n, as switchboard -skip-keys does.
func skipRetry(t *testing.T, cli *clientv3.Client, n uint64) {
	t.Helper()
	cfg := keygen.Config{Digits: 9, BlockSize: 64, Secret: testSecret}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, err := keygen.Skip(cfg, newStore(t, cli, etcdstore.Config{Prefix: "/sb/", MinBlock: 1, MaxBlock: 1, Retire: true}, nil), n)
		if err == nil {
			return
		}
		if !errors.Is(err, keygen.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("skip %d: %v", n, err)
		}
	}
}

// fleetBeforeRestore creates the key space under /sb/, lets A lease
// [0, 64), calls snapshot, lets B lease [64, 128) and waits until A's
// watch saw B's lease. The stores keep their marks in dir.
func fleetBeforeRestore(t *testing.T, cli *clientv3.Client, dir string, snapshot func()) (a, bs *etcdstore.Store, cfgA etcdstore.Config) {
	t.Helper()
	b := binding(9, testSecret)
	cfgA = etcdstore.Config{Prefix: "/sb/", MinBlock: 64, MaxBlock: 64, RecordFile: filepath.Join(dir, "a.etcdmark")}
	cfgB := etcdstore.Config{Prefix: "/sb/", MinBlock: 64, MaxBlock: 64, RecordFile: filepath.Join(dir, "b.etcdmark")}
	if _, err := newStore(t, cli, etcdstore.Config{Prefix: "/sb/"}, nil).Create(ctx(t), b); err != nil {
		t.Fatal(err)
	}
	a = newStore(t, cli, cfgA, nil)
	if _, err := a.Bind(ctx(t), b); err != nil {
		t.Fatal(err)
	}
	if start, end, err := a.Lease(ctx(t), 64); err != nil || start != 0 || end != 64 {
		t.Fatalf("A's lease: [%d, %d) %v", start, end, err)
	}
	snapshot()
	bs = newStore(t, cli, cfgB, nil)
	if err := bindRetry(t, bs, b); err != nil {
		t.Fatal(err)
	}
	if start, end, err := leaseRetry(t, bs, 64); err != nil || start != 64 || end != 128 {
		t.Fatalf("B's lease: [%d, %d) %v", start, end, err)
	}
	testsupport.WaitFor(t, "A's watch to see B's lease (mark 128)", func() bool { return a.Status().Seen >= 128 })
	return a, bs, cfgA
}

// TestWholeRestoreWhileFleetRuns: the snapshot is put back whole (mark and
// fence, in one transaction, as a restore writes them) while A and B run.
// Both refuse (ErrStateStale), A restarted on its data directory refuses,
// so does a daemon started on an empty one (the others raised the fence),
// and once the operator's skip moves the mark past B's lease both lease
// again, above it, with no restart.
func TestWholeRestoreWhileFleetRuns(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(map[bool]string{false: "running", true: "restarted"}[restart], func(t *testing.T) {
			srv := etcdtest.Start(t)
			cli := dial(t, srv)
			var backup map[string]string
			a, bs, cfgA := fleetBeforeRestore(t, cli, t.TempDir(), func() {
				backup = map[string]string{}
				for _, k := range []string{etcdstore.MarkKey, etcdstore.FenceKey} {
					resp, err := cli.Get(ctx(t), "/sb/"+k)
					if err != nil || len(resp.Kvs) != 1 {
						t.Fatalf("backup of %s: %v %v", k, resp, err)
					}
					backup[k] = string(resp.Kvs[0].Value)
				}
			})
			if restart {
				a.Close() // A's last record is written by then
			}
			if _, err := cli.Txn(ctx(t)).Then(
				clientv3.OpPut("/sb/"+etcdstore.MarkKey, backup[etcdstore.MarkKey]),
				clientv3.OpPut("/sb/"+etcdstore.FenceKey, backup[etcdstore.FenceKey])).Commit(); err != nil {
				t.Fatal(err)
			}
			if restart {
				a = newStore(t, cli, cfgA, nil)
				if _, err := a.Bind(ctx(t), binding(9, testSecret)); !errors.Is(err, keygen.ErrStateStale) {
					t.Fatalf("A restarted on the restored etcd: %v, want ErrStateStale", err)
				}
			} else if start, end, err := a.Lease(ctx(t), 64); !errors.Is(err, keygen.ErrStateStale) {
				t.Fatalf("A after the restore: [%d, %d) %v, want ErrStateStale (B leased [64, 128))", start, end, err)
			}
			if start, end, err := bs.Lease(ctx(t), 64); !errors.Is(err, keygen.ErrStateStale) {
				t.Fatalf("B after the restore: [%d, %d) %v, want ErrStateStale", start, end, err)
			}
			freshRefuses(t, cli)
			skipRetry(t, cli, 64) // mark 128: past B's lease
			if restart {
				if err := bindRetry(t, a, binding(9, testSecret)); err != nil {
					t.Fatalf("A bound after the skip: %v", err)
				}
			}
			for name, s := range map[string]*etcdstore.Store{"A": a, "B": bs} {
				if start, end, err := s.Lease(ctx(t), 64); err != nil || start < 128 {
					t.Errorf("%s after the skip: [%d, %d) %v, want a lease from 128 up", name, start, end, err)
				}
			}
		})
	}
}

// TestColdRestoreWhileFleetRuns: the same fleet, and a real whole restore:
// etcd's member is stopped, its data directory put back from a cold copy
// taken at mark 64, and started, so that every key and the cluster's
// revision go back together (the mark even carries the mod revision A
// last leased at, so A's compare-and-swap alone would succeed). Both
// daemons refuse, so does a daemon started on an empty data directory,
// and the two resume after the skip.
func TestColdRestoreWhileFleetRuns(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := dial(t, srv)
	backup := t.TempDir()
	a, bs, _ := fleetBeforeRestore(t, cli, t.TempDir(), func() {
		srv.BackupCold(t, backup)
	})
	srv.RestoreCold(t, backup)
	if start, end, err := leaseRetry(t, a, 64); !errors.Is(err, keygen.ErrStateStale) {
		t.Fatalf("A after the restore: [%d, %d) %v, want ErrStateStale (B leased [64, 128))", start, end, err)
	}
	if start, end, err := leaseRetry(t, bs, 64); !errors.Is(err, keygen.ErrStateStale) {
		t.Fatalf("B after the restore: [%d, %d) %v, want ErrStateStale", start, end, err)
	}
	freshRefuses(t, cli)
	skipRetry(t, cli, 64)
	for name, s := range map[string]*etcdstore.Store{"A": a, "B": bs} {
		if start, end, err := leaseRetry(t, s, 64); err != nil || start < 128 {
			t.Errorf("%s after the skip: [%d, %d) %v, want a lease from 128 up", name, start, end, err)
		}
	}
}

// TestRevisionWentBackRefused: a daemon that bound after a cold copy was
// taken, and saw nothing but a later revision of etcd (other writes), finds
// the mark where it left it once the copy is restored: only etcd's
// revision going back tells. It refuses its lease, which its compare-and-
// swap would have let through, and uses none of it; a daemon started on an
// empty data directory refuses too (the fence it raised); the operator's
// skip lets it lease again.
func TestRevisionWentBackRefused(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := dial(t, srv)
	b := binding(9, testSecret)
	if _, err := newStore(t, cli, etcdstore.Config{Prefix: "/sb/"}, nil).Create(ctx(t), b); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	backup := t.TempDir()
	if err := srv.Backup(backup); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // the cluster's revision moves on
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			c, cancel := context.WithTimeout(ctx(t), 2*time.Second)
			_, err := cli.Put(c, "/other/"+fmt.Sprint(i), "x")
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
		}
	}
	c := newStore(t, cli, etcdstore.Config{Prefix: "/sb/", MinBlock: 64, MaxBlock: 64}, nil)
	if err := bindRetry(t, c, b); err != nil {
		t.Fatal(err)
	}
	srv.RestoreCold(t, backup)
	if start, end, err := leaseRetry(t, c, 64); !errors.Is(err, keygen.ErrStateStale) {
		t.Fatalf("lease after etcd went back in time: [%d, %d) %v, want ErrStateStale", start, end, err)
	}
	if start, end, err := c.Lease(ctx(t), 64); !errors.Is(err, keygen.ErrStateStale) {
		t.Fatalf("second lease after etcd went back in time: [%d, %d) %v, want ErrStateStale until the mark moves", start, end, err)
	}
	seen := c.Status().Seen
	resp, err := cli.Get(ctx(t), "/sb/"+etcdstore.MarkKey)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("mark: %v %v", resp, err)
	}
	mark := markValue(t, resp.Kvs[0].Value)
	if seen <= mark {
		t.Fatalf("seen %d after etcd went back, mark %d: want seen above the mark (a skip needed)", seen, mark)
	}
	freshRefuses(t, cli)
	skipRetry(t, cli, seen-mark)
	if start, end, err := leaseRetry(t, c, 64); err != nil || start < seen {
		t.Fatalf("lease after the skip: [%d, %d) %v, want a lease from %d up", start, end, err, seen)
	}
}

func markValue(t *testing.T, v []byte) uint64 {
	t.Helper()
	var m uint64
	if _, err := fmt.Sscan(string(v), &m); err != nil {
		t.Fatalf("mark %q: %v", v, err)
	}
	return m
}

// TestIdleFleetFencesRestore: the whole snapshot put back while A and B
// run but lease nothing (their blocks last): their watches see the mark go
// back below what they saw and raise the fence at once, so a daemon
// started on an empty data directory refuses before any of them leases.
func TestIdleFleetFencesRestore(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := dial(t, srv)
	fleetBeforeRestore(t, cli, t.TempDir(), func() {})
	if _, err := cli.Txn(ctx(t)).Then(
		clientv3.OpPut("/sb/"+etcdstore.MarkKey, "64"),
		clientv3.OpPut("/sb/"+etcdstore.FenceKey, "64")).Commit(); err != nil {
		t.Fatal(err)
	}
	testsupport.WaitFor(t, "the fence raised to 128 by the watching daemons", func() bool {
		resp, err := cli.Get(ctx(t), "/sb/"+etcdstore.FenceKey)
		return err == nil && len(resp.Kvs) == 1 && string(resp.Kvs[0].Value) == "128"
	})
	freshRefuses(t, cli)
}
