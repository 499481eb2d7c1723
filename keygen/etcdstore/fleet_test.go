package etcdstore_test

import (
	"testing"
	"time"

	"switchboard/internal/etcdtest"
	"switchboard/keygen/etcdstore"
)

// TestFleetRegistration: a registered daemon is listed with its details;
// one that closes its registration is removed at once; one that dies (its
// client gone, nothing revoked) drops out when its lease expires.
func TestFleetRegistration(t *testing.T) {
	srv := etcdtest.Start(t)
	reader := dial(t, srv)
	list := func() []etcdstore.Member {
		ms, err := etcdstore.Fleet(ctx(t), reader, "/sb/")
		if err != nil {
			t.Fatal(err)
		}
		return ms
	}
	started := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	a := etcdstore.Register(dial(t, srv), "/sb/", etcdstore.Member{Instance: "a", Version: "v1", Host: "h1", Socket: "/run/sb.sock", Started: started}, 2*time.Second, time.Second, nil, nil)
	defer a.Close()
	dying := dial(t, srv)
	b := etcdstore.Register(dying, "/sb/", etcdstore.Member{Instance: "b", Version: "v1", Host: "h2", Socket: "/run/sb.sock", Started: started}, 2*time.Second, time.Second, nil, nil)
	defer b.Close()
	waitFor(t, "both daemons listed", func() bool { return len(list()) == 2 })
	if m := list()[0]; m.Instance != "a" || m.Host != "h1" || m.Version != "v1" || !m.Started.Equal(started) {
		t.Fatalf("entry a = %+v", m)
	}
	dying.Close() // b dies: no revoke reaches etcd
	waitFor(t, "the dead daemon dropped out", func() bool { ms := list(); return len(ms) == 1 && ms[0].Instance == "a" })
	a.Close()
	if ms := list(); len(ms) != 0 {
		t.Fatalf("after a closed its registration: %+v", ms)
	}
}
