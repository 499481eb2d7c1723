package etcdstore_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"switchboard/internal/etcdtest"
	"switchboard/internal/testsupport"
	"switchboard/keygen"
	"switchboard/keygen/etcdstore"
)

// TestMigrateFromFileStore: a file store's key space moves into etcd with
// its binding and mark; keys issued from etcd afterwards never repeat the
// file store's; the file store can no longer start; a second, different
// key space is refused.
func TestMigrateFromFileStore(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := dial(t, srv)
	dir := t.TempDir()
	cfg := keygen.Config{Digits: 9, BlockSize: 64, Dir: dir}
	if _, err := keygen.Init(cfg, nil, 0); err != nil {
		t.Fatal(err)
	}
	g, err := keygen.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	issued := map[uint64]bool{}
	for range 100 {
		testsupport.WaitFor(t, "a file-store key", func() bool {
			k, err := g.Next()
			if err == nil {
				issued[k] = true
			}
			return err == nil
		})
	}
	fileMark := g.Stats().Blocks * 64 // every leased block, issued or not
	g.Close()

	s := newStore(t, cli, etcdstore.Config{MinBlock: 64}, nil)
	part, err := keygen.Migrate(keygen.Config{Digits: 9, BlockSize: 64}, dir, s)
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if part.Next < fileMark {
		t.Fatalf("etcd mark after migration %d, below the file store's %d", part.Next, fileMark)
	}
	if _, err := os.Stat(filepath.Join(dir, keygen.StateFile+keygen.MigratedSuffix)); err != nil {
		t.Fatalf("the file store's state was not retired: %v", err)
	}
	if _, err := keygen.New(cfg, nil); !errors.Is(err, keygen.ErrStateMissing) {
		t.Fatalf("a daemon on the migrated file store: %v, want ErrStateMissing", err)
	}

	secret, err := os.ReadFile(filepath.Join(dir, keygen.SecretFile))
	if err != nil {
		t.Fatal(err)
	}
	sec, err := keygen.DecodeSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	eg, err := keygen.New(keygen.Config{Digits: 9, BlockSize: 64, Secret: sec}, newStore(t, cli, etcdstore.Config{MinBlock: 64}, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer eg.Close()
	for range 500 {
		testsupport.WaitFor(t, "an etcd key", func() bool {
			k, err := eg.Next()
			if err == nil && issued[k] {
				t.Fatalf("key %d issued by the file store and again from etcd", k)
			}
			return err == nil
		})
	}

	other := t.TempDir()
	if _, err := keygen.Init(keygen.Config{Digits: 9, Dir: other}, nil, 0); err != nil {
		t.Fatal(err)
	}
	_, err = keygen.Migrate(keygen.Config{Digits: 9, BlockSize: 64}, other, newStore(t, cli, etcdstore.Config{MinBlock: 64}, nil))
	if !errors.Is(err, keygen.ErrBindingChanged) {
		t.Fatalf("migrating another key space into the same prefix: %v, want ErrBindingChanged", err)
	}
	if _, err := os.Stat(filepath.Join(other, keygen.StateFile)); err != nil {
		t.Fatalf("the refused file store was retired anyway: %v", err)
	}
}

// TestRestoredEtcdRefusedUntilSkipped: etcd put back from an older backup
// (the mark rolled back) is refused by a daemon that recorded a higher mark
// (keygen.ErrStateStale), never leased from; a skip of at least the
// difference makes it start, above every key it leased before.
func TestRestoredEtcdRefusedUntilSkipped(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := dial(t, srv)
	record := filepath.Join(t.TempDir(), "keygen.etcdmark")
	cfg := keygen.Config{Digits: 9, BlockSize: 64, Secret: testSecret}
	scfg := etcdstore.Config{Prefix: "/sb/", MinBlock: 64, MaxBlock: 64, RecordFile: record}
	if _, err := keygen.Init(cfg, newStore(t, cli, etcdstore.Config{Prefix: "/sb/"}, nil), 0); err != nil {
		t.Fatal(err)
	}
	backup, err := cli.Get(ctx(t), "/sb/mark") // the backup, taken early
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(t, cli, scfg, nil)
	if _, err := s.Bind(ctx(t), binding(9, testSecret)); err != nil {
		t.Fatal(err)
	}
	var leased uint64
	for range 10 {
		_, end, err := s.Lease(ctx(t), 64)
		if err != nil {
			t.Fatal(err)
		}
		leased = end
	}
	s.Close()
	if _, err := cli.Put(ctx(t), "/sb/mark", string(backup.Kvs[0].Value)); err != nil { // the restore
		t.Fatal(err)
	}
	old, _ := strconv.ParseUint(string(backup.Kvs[0].Value), 10, 64)

	if _, err := newStore(t, cli, scfg, nil).Bind(ctx(t), binding(9, testSecret)); !errors.Is(err, keygen.ErrStateStale) {
		t.Fatalf("Bind on the restored etcd: %v, want ErrStateStale", err)
	}
	if _, err := keygen.New(cfg, newStore(t, cli, scfg, nil), keygen.WithLateBind()); !errors.Is(err, keygen.ErrStateStale) {
		t.Fatalf("a generator on the restored etcd: %v, want ErrStateStale", err)
	}
	// The operator's skip (no record, and Retire: it is how the mark moves
	// forward past the fence).
	if _, err := keygen.Skip(cfg, newStore(t, cli, etcdstore.Config{Prefix: "/sb/", MinBlock: 64, MaxBlock: 64, Retire: true}, nil), leased-old); err != nil {
		t.Fatal(err)
	}
	s2 := newStore(t, cli, scfg, nil)
	if _, err := s2.Bind(ctx(t), binding(9, testSecret)); err != nil {
		t.Fatalf("Bind after the skip: %v", err)
	}
	if start, _, err := s2.Lease(ctx(t), 64); err != nil || start < leased {
		t.Fatalf("lease after the skip starts at %d (%v), below %d leased before the restore", start, err, leased)
	}
}
