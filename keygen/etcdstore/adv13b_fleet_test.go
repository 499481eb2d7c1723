package etcdstore_test

import (
	"testing"
	"time"

	"switchboard/internal/etcdtest"
	"switchboard/keygen/etcdstore"
)

// TestAdv13bKilledDaemonListedPastTTL: issue 13 point 5 says a daemon
// that dies disappears from the fleet (docs: within its lease's 10 s). A
// daemon killed just before etcd went down (the fleet test's own
// scenario: a SIGKILL, etcd stopped for a few seconds) is still listed
// after etcd comes back although more than its TTL has passed since it
// died: etcd renews every lease's TTL when a leader is elected, so the
// entry of a dead daemon lives a full TTL past each etcd restart. The
// verdict is the entry's presence after a downtime longer than the TTL,
// not a timing bound.
func TestAdv13bKilledDaemonListedPastTTL(t *testing.T) {
	const ttl = 5 * time.Second
	srv := etcdtest.Start(t)
	dying := dial(t, srv)
	r := etcdstore.Register(dying, "/sb/", etcdstore.Member{Instance: "dead", Version: "v1", Host: "h1", Socket: "/run/sb.sock"}, ttl, time.Second, nil, nil)
	defer r.Close()
	reader := dial(t, srv)
	waitFor(t, "the daemon listed", func() bool {
		ms, err := etcdstore.Fleet(ctx(t), reader, "/sb/")
		return err == nil && len(ms) == 1
	})
	dying.Close() // SIGKILL: no revoke reaches etcd
	killed := time.Now()
	srv.Stop()
	time.Sleep(2 * ttl) // etcd down longer than the TTL
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	// A new client: the first listing does not wait for a reconnection
	// backoff of the old one (the entry's renewed TTL runs meanwhile).
	reader = dial(t, srv)
	var ms []etcdstore.Member
	waitFor(t, "etcd answering", func() bool {
		var err error
		ms, err = etcdstore.Fleet(ctx(t), reader, "/sb/")
		return err == nil
	})
	if len(ms) != 0 {
		t.Fatalf("%v after the SIGKILL (TTL %v) the dead daemon is still listed: %+v; want it gone within its TTL", time.Since(killed).Round(100*time.Millisecond), ttl, ms)
	}
}
