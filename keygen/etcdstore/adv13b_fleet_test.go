package etcdstore_test

import (
	"testing"
	"time"

	"switchboard/internal/etcdtest"
	"switchboard/internal/testsupport"
	"switchboard/keygen/etcdstore"
)

// TestAdv13bKilledDaemonListedPastTTL: a daemon killed just before etcd
// went down (a SIGKILL, etcd stopped for longer than the entry's TTL).
// etcd renews every lease's TTL when it elects a leader, so the dead
// daemon's entry outlives the TTL counted from its death: the documented
// bound (docs/operations.md, the fleet) is its TTL counted from etcd being
// back and led. The test checks that bound, with a margin for a loaded
// machine (etcd's lease expiry is checked every 500 ms, and the revoke
// goes through raft).
func TestAdv13bKilledDaemonListedPastTTL(t *testing.T) {
	const ttl = 5 * time.Second
	const margin = 10 * time.Second
	srv := etcdtest.Start(t)
	dying := dial(t, srv)
	r := etcdstore.Register(dying, "/sb/", etcdstore.Member{Instance: "dead", Version: "v1", Host: "h1", Socket: "/run/sb.sock"}, ttl, time.Second, nil, nil)
	defer r.Close()
	reader := dial(t, srv)
	testsupport.WaitFor(t, "the daemon listed", func() bool {
		ms, err := etcdstore.Fleet(ctx(t), reader, "/sb/")
		return err == nil && len(ms) == 1
	})
	dying.Close() // SIGKILL: no revoke reaches etcd
	srv.Stop()
	time.Sleep(2 * ttl) // etcd down longer than the TTL
	// Taken before the start: etcd is led at the earliest once Start
	// returns, so the bound below is never too tight.
	back := time.Now()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	reader = dial(t, srv)
	for {
		ms, err := etcdstore.Fleet(ctx(t), reader, "/sb/")
		if err == nil && len(ms) == 0 {
			return
		}
		if time.Since(back) > ttl+margin {
			t.Fatalf("%v after etcd came back (TTL %v) the dead daemon is still listed: %+v (%v); want it gone within its TTL of etcd being led", time.Since(back).Round(100*time.Millisecond), ttl, ms, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
