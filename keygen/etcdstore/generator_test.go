package etcdstore_test

import (
	"errors"
	"testing"
	"time"

	"switchboard/internal/etcdtest"
	"switchboard/internal/testsupport"
	"switchboard/keygen"
	"switchboard/keygen/etcdstore"
)

// TestGeneratorStartsWhileEtcdDown: a generator opened WithLateBind while
// etcd is down starts, reports itself unbound and fails Next at once with
// ErrUnavailable; once etcd answers it binds and issues keys, with no
// restart.
func TestGeneratorStartsWhileEtcdDown(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := dial(t, srv)
	cfg := keygen.Config{Digits: 9, BlockSize: 64, Secret: testSecret}
	if _, err := keygen.Init(cfg, newStore(t, cli, etcdstore.Config{}, nil), 0); err != nil {
		t.Fatal(err)
	}
	srv.Stop()

	store2 := newStore(t, cli, etcdstore.Config{MinBlock: 64, RequestTimeout: 300 * time.Millisecond}, nil)
	if _, err := keygen.New(cfg, store2); !errors.Is(err, keygen.ErrUnavailable) {
		t.Fatalf("New without WithLateBind while etcd is down: %v, want ErrUnavailable", err)
	}
	store3 := newStore(t, cli, etcdstore.Config{MinBlock: 64, RequestTimeout: 300 * time.Millisecond}, nil)
	g, err := keygen.New(cfg, store3, keygen.WithLateBind())
	if err != nil {
		t.Fatalf("New WithLateBind while etcd is down: %v", err)
	}
	defer g.Close()
	t0 := time.Now()
	if _, err := g.Next(); !errors.Is(err, keygen.ErrUnavailable) {
		t.Fatalf("Next before etcd answered: %v, want ErrUnavailable", err)
	}
	if took := time.Since(t0); took > time.Second {
		t.Fatalf("Next took %v: it must not wait for etcd", took)
	}
	if st := g.Stats(); st.Bound || st.Left != 0 {
		t.Fatalf("stats before etcd answered: %+v", st)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	testsupport.WaitFor(t, "a key once etcd is back", func() bool { _, err := g.Next(); return err == nil })
	if st := g.Stats(); !st.Bound || st.Failing {
		t.Fatalf("stats after etcd answered: %+v", st)
	}
}

// TestGeneratorRefusedBindingStillFails: WithLateBind only waits for a
// store that does not answer; a daemon with another secret is refused at
// once.
func TestGeneratorRefusedBindingStillFails(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := dial(t, srv)
	cfg := keygen.Config{Digits: 9, BlockSize: 64, Secret: testSecret}
	if _, err := keygen.Init(cfg, newStore(t, cli, etcdstore.Config{}, nil), 0); err != nil {
		t.Fatal(err)
	}
	cfg.Secret = []byte("a-secret-that-is-not-the-fleet-one")
	if _, err := keygen.New(cfg, newStore(t, cli, etcdstore.Config{}, nil), keygen.WithLateBind()); !errors.Is(err, keygen.ErrBindingChanged) {
		t.Fatalf("New with another secret: %v, want ErrBindingChanged", err)
	}
}

// TestGeneratorsShareKeySpace: three generators on one key space issue
// disjoint keys.
func TestGeneratorsShareKeySpace(t *testing.T) {
	srv := etcdtest.Start(t)
	cfg := keygen.Config{Digits: 9, BlockSize: 32, Secret: testSecret}
	if _, err := keygen.Init(cfg, newStore(t, dial(t, srv), etcdstore.Config{}, nil), 0); err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]int{}
	var gens []*keygen.Generator
	for i := range 3 {
		g, err := keygen.New(cfg, newStore(t, dial(t, srv), etcdstore.Config{MinBlock: 32, MaxBlock: 256}, nil))
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		gens = append(gens, g)
		_ = i
	}
	for round := range 2000 {
		g := gens[round%3]
		var k uint64
		testsupport.WaitFor(t, "a key", func() bool {
			var err error
			k, err = g.Next()
			return err == nil
		})
		if prev, dup := seen[k]; dup {
			t.Fatalf("key %d issued by generator %d and %d", k, prev, round%3)
		}
		seen[k] = round % 3
	}
}
