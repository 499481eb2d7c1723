package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"switchboard/client"
	"switchboard/internal/etcdtest"
	"switchboard/internal/testsupport"
	"switchboard/wire"
)

// Adversarial review (adv13b) of the restore defence with the real
// binaries: two daemons, each talking to etcd through its own loopback
// proxy that the test can cut (a partition, or a member that went away,
// as seen from that daemon). Every acknowledged key is collected.

// allocN allocates (and releases) through the daemon on sock until n keys
// were acknowledged or the deadline passes, and returns the keys.
func allocN(t *testing.T, sock string, n int, deadline time.Duration) []uint64 {
	t.Helper()
	var keys []uint64
	var last error
	end := time.Now().Add(deadline)
	var c *client.Client
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for i := 0; len(keys) < n && time.Now().Before(end); i++ {
		if c == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			var err error
			c, err = client.Dial(ctx, sock)
			cancel()
			if err != nil {
				c, last = nil, err
				time.Sleep(50 * time.Millisecond)
				continue
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		a, err := c.Allocate(ctx, &wire.AllocateRequest{Spec: wire.Spec{Name: []byte(fmt.Sprint("adv13b ", sock, i))}})
		if err == nil {
			keys = append(keys, a.Key)
			_ = c.Release(ctx, a.Key)
		}
		cancel()
		if err != nil {
			last = err
			if !errors.Is(err, wire.StatusKeysExhausted) {
				c.Close()
				c = nil
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if len(keys) < n {
		t.Logf("%s: %d of %d keys acknowledged by the deadline (last error: %v)", sock, len(keys), n, last)
	}
	return keys
}

// TestAdv13bRestoreWhileWatchBrokenReissues: daemons A and B on one key
// space. A issues keys; the etcd snapshot is taken (mark and fence, as
// `etcdctl snapshot save` holds them); A's path to etcd is cut and B
// issues keys (leased above the snapshot's mark); B's path is cut (its
// watch broken, reconnecting) and the snapshot is put back whole; A's path
// comes back (etcd's history compacted meanwhile, as its auto-compaction
// does) and A issues keys. B is running and saw past the snapshot, so
// the documented promise is that the fleet refuses the restored mark: no
// key B acknowledged may be acknowledged again by A.
func TestAdv13bRestoreWhileWatchBrokenReissues(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two daemons, three telsims and etcd")
	}
	srv := etcdtest.Start(t)
	var tiers [3]string
	for i, name := range []string{"primary-large", "nextgen", "backup2-large"} {
		tiers[i] = startTelsimProc(t, "-tier", name, "-capacity", "1000000", "-log-level", "warn").listen
	}
	dir := testsupport.ShortTempDir(t)
	pa, pb := etcdtest.NewProxy(t, srv.Endpoint()), etcdtest.NewProxy(t, srv.Endpoint())
	type member struct{ cfg, sock, data string }
	mk := func(name string, p *etcdtest.Proxy) member {
		m := member{cfg: filepath.Join(dir, name+".yaml"), sock: filepath.Join(dir, name+".sock"), data: filepath.Join(dir, name)}
		if err := os.WriteFile(m.cfg, []byte(fleetConfig("adv13b-"+name, p.Endpoint(), tiers)), 0o600); err != nil {
			t.Fatal(err)
		}
		return m
	}
	a, b := mk("a", pa), mk("b", pb)
	initKeys(t, a.cfg, a.data)
	start(t, daemonBin, a.sock, a.data, "-config", a.cfg)
	start(t, daemonBin, b.sock, b.data, "-config", b.cfg)

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint()}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const prefix = "/fleet-test/keys/"

	before := allocN(t, a.sock, 100, 30*time.Second)
	snap, err := cli.Txn(ctx).Then(clientv3.OpGet(prefix+"mark"), clientv3.OpGet(prefix+"fence")).Commit()
	if err != nil {
		t.Fatal(err)
	}
	mark := string(snap.Responses[0].GetResponseRange().Kvs[0].Value)
	fence := string(snap.Responses[1].GetResponseRange().Kvs[0].Value)

	pa.SetCut(true)
	fromB := allocN(t, b.sock, 300, 30*time.Second)
	if len(fromB) == 0 {
		t.Fatal("B acknowledged no key")
	}
	pb.SetCut(true)
	put, err := cli.Txn(ctx).Then(clientv3.OpPut(prefix+"mark", mark), clientv3.OpPut(prefix+"fence", fence)).Commit()
	if err != nil {
		t.Fatal(err)
	}
	// History compacted (etcd's auto-compaction): A's watch cannot resume
	// from its last revision, so it never sees B's leases late.
	if _, err := cli.Compact(ctx, put.Header.Revision); err != nil {
		t.Fatal(err)
	}
	pa.SetCut(false)
	after := allocN(t, a.sock, 400, 20*time.Second)

	byB := map[uint64]bool{}
	for _, k := range fromB {
		byB[k] = true
	}
	var dups []uint64
	for _, k := range append(before, after...) {
		if byB[k] {
			dups = append(dups, k)
		}
	}
	t.Logf("snapshot mark %s; A acknowledged %d keys before, %d after the restore; B %d", mark, len(before), len(after), len(fromB))
	if len(dups) > 0 {
		t.Fatalf("%d keys acknowledged by B were acknowledged again by A after the restore (first: %v); want 0: B runs and saw past the snapshot", len(dups), dups[:min(5, len(dups))])
	}
}
