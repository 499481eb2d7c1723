package etcdstore_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"switchboard/internal/etcdtest"
	"switchboard/internal/testsupport"
	"switchboard/keygen/etcdstore"
)

// TestFleetRegistration: a registered daemon is listed with its details;
// one that closes its registration is removed at once; one that dies (its
// client gone, nothing revoked) drops out when its lease expires.
func TestFleetRegistration(t *testing.T) {
	srv := etcdtest.Start(t)
	reader := dial(t, srv)
	list := fleetLister(t, reader)
	started := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	a := etcdstore.Register(dial(t, srv), "/sb/", etcdstore.Member{Instance: "a", Version: "v1", Host: "h1", Socket: "/run/sb.sock", Started: started}, 2*time.Second, time.Second, nil, nil)
	defer a.Close()
	dying := dial(t, srv)
	b := etcdstore.Register(dying, "/sb/", etcdstore.Member{Instance: "b", Version: "v1", Host: "h2", Socket: "/run/sb.sock", Started: started}, 2*time.Second, time.Second, nil, nil)
	defer b.Close()
	testsupport.WaitFor(t, "both daemons listed", func() bool { return len(list()) == 2 })
	if m := list()[0]; m.Instance != "a" || m.Host != "h1" || m.Version != "v1" || !m.Started.Equal(started) {
		t.Fatalf("entry a = %+v", m)
	}
	dying.Close() // b dies: no revoke reaches etcd
	testsupport.WaitFor(t, "the dead daemon dropped out", func() bool { ms := list(); return len(ms) == 1 && ms[0].Instance == "a" })
	a.Close()
	if ms := list(); len(ms) != 0 {
		t.Fatalf("after a closed its registration: %+v", ms)
	}
}

// TestFleetInstanceTakeover: a daemon restarted on the same host and socket
// (its earlier run killed, the entry not yet expired) takes its entry over
// at once; a daemon refused for another daemon's name (CheckInstance and
// Err name the holder) registers once that daemon has stopped.
func TestFleetInstanceTakeover(t *testing.T) {
	srv := etcdtest.Start(t)
	reader := dial(t, srv)
	list := fleetLister(t, reader)
	killed := dial(t, srv)
	first := etcdstore.Register(killed, "/sb/", etcdstore.Member{Instance: "x", Host: "h1", Socket: "/s", Version: "v1"}, 10*time.Second, time.Second, nil, nil)
	defer first.Close()
	testsupport.WaitFor(t, "the first run listed", func() bool { return first.Err() == nil && len(list()) == 1 })
	killed.Close() // killed: its entry stays for its lease's 10 s

	me := etcdstore.Member{Instance: "x", Host: "h1", Socket: "/s", Version: "v2"}
	if err := etcdstore.CheckInstance(ctx(t), reader, "/sb/", me); err != nil {
		t.Fatalf("CheckInstance of the same daemon's restart: %v", err)
	}
	other := etcdstore.Member{Instance: "x", Host: "h2", Socket: "/s"}
	if err := etcdstore.CheckInstance(ctx(t), reader, "/sb/", other); !errors.Is(err, etcdstore.ErrInstanceTaken) || !strings.Contains(err.Error(), `"h1"`) {
		t.Fatalf("CheckInstance of another host: %v, want ErrInstanceTaken naming h1", err)
	}
	restarted := etcdstore.Register(dial(t, srv), "/sb/", me, 10*time.Second, time.Second, nil, nil)
	testsupport.WaitFor(t, "the restart's entry", func() bool { ms := list(); return len(ms) == 1 && ms[0].Version == "v2" })

	second := etcdstore.Register(dial(t, srv), "/sb/", other, 2*time.Second, time.Second, nil, nil)
	defer second.Close()
	testsupport.WaitFor(t, "h2 refused", func() bool { return errors.Is(second.Err(), etcdstore.ErrInstanceTaken) })
	restarted.Close()
	testsupport.WaitFor(t, "h2 registered once h1 stopped", func() bool { ms := list(); return len(ms) == 1 && ms[0].Host == "h2" })
	if err := second.Err(); err != nil {
		t.Fatalf("h2's registration: %v", err)
	}
}

// fleetLister returns a function listing the fleet under /sb/ through cli,
// failing the test on error.
func fleetLister(t *testing.T, cli *clientv3.Client) func() []etcdstore.Member {
	return func() []etcdstore.Member {
		ms, err := etcdstore.Fleet(ctx(t), cli, "/sb/")
		if err != nil {
			t.Fatal(err)
		}
		return ms
	}
}
