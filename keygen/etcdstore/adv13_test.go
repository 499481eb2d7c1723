package etcdstore_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"switchboard/internal/etcdtest"
	"switchboard/internal/testsupport"
	"switchboard/keygen"
	"switchboard/keygen/etcdstore"
)

// TestAdvRestoreBelowAnotherDaemonsLease (adversarial review of issue 13):
// etcd's mark put back to an older value (a restore from a backup, here by
// rewriting the mark with the client) while a fleet runs. Daemon A leased
// [0, 64), the backup was taken at mark 64, then daemon B leased [64, 128).
// After the restore the mark is 64 again: A's own record and A's last
// lease both say 64, so neither check fires, and A leases [64, 128) a
// second time, the very counters B already issued. The same holds for A
// restarted on its record file. Promise 4 says a restore never rolls the
// mark back silently; here it does, and counters are leased twice.
func TestAdvRestoreBelowAnotherDaemonsLease(t *testing.T) {
	for _, restart := range []bool{false, true} {
		name := map[bool]string{false: "running", true: "restarted"}[restart]
		t.Run(name, func(t *testing.T) { advRestore(t, restart) })
	}
}

func advRestore(t *testing.T, restart bool) {
	srv := etcdtest.Start(t)
	cli := dial(t, srv)
	dir := t.TempDir()
	b := binding(9, testSecret)
	cfgA := etcdstore.Config{Prefix: "/sb/", MinBlock: 64, MaxBlock: 64, RecordFile: filepath.Join(dir, "a.etcdmark")}
	cfgB := etcdstore.Config{Prefix: "/sb/", MinBlock: 64, MaxBlock: 64, RecordFile: filepath.Join(dir, "b.etcdmark")}
	if _, err := newStore(t, cli, etcdstore.Config{Prefix: "/sb/"}, nil).Create(ctx(t), b); err != nil {
		t.Fatal(err)
	}
	a := newStore(t, cli, cfgA, nil)
	if _, err := a.Bind(ctx(t), b); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Lease(ctx(t), 64); err != nil {
		t.Fatal(err)
	}
	backup, err := cli.Get(ctx(t), "/sb/mark") // the snapshot, taken now
	if err != nil {
		t.Fatal(err)
	}
	bs := newStore(t, cli, cfgB, nil)
	if _, err := bs.Bind(ctx(t), b); err != nil {
		t.Fatal(err)
	}
	bStart, bEnd, err := bs.Lease(ctx(t), 64)
	if err != nil {
		t.Fatal(err)
	}
	if restart {
		a.Close() // the whole fleet restarted after the restore, as the docs say
		bs.Close()
	}
	if _, err := cli.Put(ctx(t), "/sb/mark", string(backup.Kvs[0].Value)); err != nil { // the restore
		t.Fatal(err)
	}
	if restart {
		a = newStore(t, cli, cfgA, nil)
		if _, err := a.Bind(ctx(t), b); err != nil {
			if !errors.Is(err, keygen.ErrStateStale) {
				t.Errorf("restarted daemon A on the restored etcd: %v, want ErrStateStale", err)
			}
			return
		}
	}
	start, end, err := a.Lease(ctx(t), 64)
	switch {
	case err == nil && start < bEnd && bStart < end:
		t.Errorf("daemon A leased [%d, %d) after the restore: B already leased [%d, %d) (no ErrStateStale, counters leased twice)", start, end, bStart, bEnd)
	case err != nil && !errors.Is(err, keygen.ErrStateStale):
		t.Errorf("daemon A after the restore: %v, want ErrStateStale", err)
	}
}

// TestAdvRebindUnderABoundDaemon (adversarial review of issue 13): a key
// space whose mark is still 0 is replaced by a Create under another binding
// (a second -init-keys, or -migrate-keys, with another secret), but a
// daemon already bound to the first binding keeps leasing from it: the
// lease transaction compares only the mark's revision, which the rebind
// does not touch. That daemon then issues keys under the old secret's
// permutation while the rest of the fleet issues under the new one, and
// two permutations of one domain collide. Promise 2: every daemon checks
// the binding; promise 4: a different key space is refused.
func TestAdvRebindUnderABoundDaemon(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := dial(t, srv)
	old := binding(9, testSecret)
	other := binding(9, []byte("another-secret-of-another-operator"))
	if _, err := newStore(t, cli, etcdstore.Config{Prefix: "/sb/"}, nil).Create(ctx(t), old); err != nil {
		t.Fatal(err)
	}
	// A daemon on the first binding binds (its first lease not sent yet, or
	// failed on an etcd blip).
	d := newStore(t, cli, etcdstore.Config{Prefix: "/sb/", MinBlock: 64, MaxBlock: 64}, nil)
	if _, err := d.Bind(ctx(t), old); err != nil {
		t.Fatal(err)
	}
	part, err := newStore(t, cli, etcdstore.Config{Prefix: "/sb/"}, nil).Create(ctx(t), other)
	if err != nil {
		t.Logf("second Create refused: %v", err)
		return // the promise holds: a bound key space is not replaced
	}
	t.Logf("second Create under another secret: %+v (rebound)", part)
	start, end, err := d.Lease(ctx(t), 64)
	if err == nil {
		t.Errorf("daemon bound to the replaced binding leased [%d, %d): etcd's binding is now another secret's, keys of two permutations mix in one key space", start, end)
	}
}

// TestAdvSameInstanceName (adversarial review of issue 13): two daemons
// registered under the same instance name share one fleet entry; when one
// of them stops, the entry is revoked and the other, still running, is no
// longer listed by sbctl fleet (it rewrites its entry only when its last
// lease changes, never here). Promise 5: every daemon registers and
// disappears only when it dies.
func TestAdvSameInstanceName(t *testing.T) {
	srv := etcdtest.Start(t)
	reader := dial(t, srv)
	list := fleetLister(t, reader)
	first := etcdstore.Register(dial(t, srv), "/sb/", etcdstore.Member{Instance: "x", Host: "h1"}, 2e9, 1e9, nil, nil)
	defer first.Close()
	testsupport.WaitFor(t, "the first daemon listed", func() bool { ms := list(); return len(ms) == 1 && ms[0].Host == "h1" })
	second := etcdstore.Register(dial(t, srv), "/sb/", etcdstore.Member{Instance: "x", Host: "h2"}, 2e9, 1e9, nil, nil)
	// The second daemon is refused (it must not take the live daemon's
	// entry): its registration says why, and the fleet still lists h1.
	testsupport.WaitFor(t, "the second daemon refused", func() bool { return errors.Is(second.Err(), etcdstore.ErrInstanceTaken) })
	if ms := list(); len(ms) != 1 || ms[0].Host != "h1" {
		t.Errorf("fleet while h2 is refused: %+v, want h1's entry", ms)
	}
	second.Close() // the second daemon stops; the first still runs
	// The live daemon's entry must be back within a few TTLs (2 s): poll
	// for 20 s, far more than any keep-alive period, and judge the state.
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if ms := list(); len(ms) == 1 && ms[0].Host == "h1" {
			break
		}
	}
	if ms := list(); len(ms) != 1 || ms[0].Host != "h1" {
		t.Errorf("fleet while daemon h1 (instance x) still runs: %+v; want its entry (or the duplicate instance refused)", ms)
	}
}

// TestAdvMigrateOntoAnotherFreshKeySpace (adversarial review of issue 13):
// -migrate-keys onto a prefix where the fleet's operator already ran
// -init-keys under another secret (mark still 0) does not refuse: Create
// rebinds the prefix to the file store's secret, and the fleet's daemons,
// configured with the first secret, are refused from then on (or, already
// bound, keep leasing under the old secret: TestAdvRebindUnderABoundDaemon).
// Promise 4: the migration refuses if etcd already holds a different key
// space.
func TestAdvMigrateOntoAnotherFreshKeySpace(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := dial(t, srv)
	fleetSecret := []byte("the-fleet-secret-of-its-init-keys")
	if _, err := keygen.Init(keygen.Config{Digits: 9, Secret: fleetSecret}, newStore(t, cli, etcdstore.Config{}, nil), 0); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := keygen.Init(keygen.Config{Digits: 9, Dir: dir}, nil, 0); err != nil { // a file store with its generated secret
		t.Fatal(err)
	}
	part, err := keygen.Migrate(keygen.Config{Digits: 9, BlockSize: 64}, dir, newStore(t, cli, etcdstore.Config{MinBlock: 64}, nil))
	if err == nil {
		t.Errorf("migrating a file store onto a prefix that -init-keys created under another secret succeeded (%+v): the fleet's key space was replaced", part)
	} else if !errors.Is(err, keygen.ErrBindingChanged) && !errors.Is(err, keygen.ErrKeySpaceExists) {
		t.Errorf("Migrate: %v, want a refusal naming the other key space", err)
	}
	if _, err := newStore(t, cli, etcdstore.Config{}, nil).Bind(ctx(t), binding(9, fleetSecret)); err != nil {
		t.Errorf("the fleet's own daemons after the migration: %v", err)
	}
}
