package daemon

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"switchboard/breaker"
	"switchboard/frontend"
	"switchboard/internal/strictyaml"
	"switchboard/keygen"
	"switchboard/keygen/etcdstore"
	"switchboard/pool"
)

// The defaults of the sections that configure a lower package are that
// package's own.
func TestDefaultsAreTheLowerPackages(t *testing.T) {
	c, err := ParseConfig([]byte("tiers: [{name: a, servers: [\"tcp://127.0.0.1:1\"]}]\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pd := pool.DefaultConfig()
	pc := poolConfig("a", c.Instance, []string{"127.0.0.1:1"}, c.Tiers[0].Pool)
	pd.Tier, pd.Client, pd.Servers = pc.Tier, pc.Client, pc.Servers
	if pc.MinConns != pd.MinConns || pc.MaxInFlight != pd.MaxInFlight || pc.DialTimeout != pd.DialTimeout ||
		pc.HeartbeatInterval != pd.HeartbeatInterval || pc.HeartbeatTimeout != pd.HeartbeatTimeout ||
		pc.BackoffBase != pd.BackoffBase || pc.BackoffMax != pd.BackoffMax || pc.MaxAge != pd.MaxAge {
		t.Errorf("tier pool %+v, pool's defaults %+v", pc, pd)
	}
	if got, want := c.Tiers[0].Breaker.settings(), breaker.DefaultSettings(); got != want {
		t.Errorf("breaker %+v, breaker's defaults %+v", got, want)
	}
	kd := keygen.DefaultConfig()
	if k := c.Keys; k.Digits != kd.Digits || k.BlockSize != kd.BlockSize || k.Node.Count != kd.Node.Count || k.Node.ID != kd.Node.ID {
		t.Errorf("keys %+v, keygen's defaults %+v", k, kd)
	}
	e := c.Keys.Etcd
	if e.Prefix != etcdstore.DefaultPrefix || e.DialTimeout != etcdstore.DefaultDialTimeout ||
		e.RequestTimeout != etcdstore.DefaultRequestTimeout || e.MaxBlock != etcdstore.DefaultMaxBlock ||
		e.BlockPeriod != etcdstore.DefaultPeriod {
		t.Errorf("keys.etcd %+v, etcdstore's defaults", e)
	}
	if got, want := frontendConfig(c.Server), frontend.DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("server %+v, frontend's defaults %+v", got, want)
	}
}

// A problem only a lower package's rules see (keygen: more nodes than it
// allows) is reported at the section's path by -check-config, not found at
// start.
func TestLowerValidateReported(t *testing.T) {
	_, err := ParseConfig([]byte("keys: {node: {id: 0, count: 70000}}\ntiers: [{name: a, servers: [\"tcp://127.0.0.1:1\"]}]\n"), "t.yaml")
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("err %v, want ErrConfig", err)
	}
	list := strictyaml.List(err)
	if len(list) != 1 || !strings.Contains(list[0].Error(), "keys: ") || !strings.Contains(list[0].Error(), "node count is 70000") {
		t.Fatalf("problems %q, want one at keys naming the node count", list)
	}
}

// With keys.store etcd, etcdstore's own rules apply too: a prefix with a
// space passes neither; one problem only, the daemon's (it says it better).
func TestEtcdLowerValidateNotDoubled(t *testing.T) {
	_, err := ParseConfig([]byte("keys: {store: etcd, etcd: {endpoints: [\"http://127.0.0.1:2379\"], prefix: \"a b\"}}\ntiers: [{name: a, servers: [\"tcp://127.0.0.1:1\"]}]\n"), "t.yaml")
	list := strictyaml.List(err)
	if len(list) != 1 || !strings.Contains(list[0].Error(), "keys.etcd.prefix") {
		t.Fatalf("problems %q, want one at keys.etcd.prefix", list)
	}
}
