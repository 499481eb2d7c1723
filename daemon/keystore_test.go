package daemon

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap/zaptest"

	"switchboard/internal/etcdtest"
	"switchboard/internal/strictyaml"
	"switchboard/internal/testsupport"
	"switchboard/keygen"
	"switchboard/keygen/etcdstore"
	"switchboard/wire"
)

// downKeys is a key source whose store is known to fail.
type downKeys struct{ lateKeys }

func (k *downKeys) Next() (uint64, error) {
	k.fails.Add(1)
	return 0, fmt.Errorf("%w: %w: etcd lease: connection refused", keygen.ErrUnavailable, keygen.ErrStoreDown)
}

// TestAllocationFailsAtOnceWhenStoreDown: with the lease store known to be
// failing and no key buffered, an ALLOCATE is answered KEYS_EXHAUSTED at
// once: the key source is asked once, not polled for keyWaitMax.
func TestAllocationFailsAtOnceWhenStoreDown(t *testing.T) {
	keys := &downKeys{}
	h := startDaemon(t, nil, withKeySource(keys))
	_, err := h.c.Allocate(ctxT(t), &wire.AllocateRequest{Spec: spec("store down")})
	if !errors.Is(err, wire.StatusKeysExhausted) {
		t.Fatalf("allocation with the store down: %v, want KEYS_EXHAUSTED", err)
	}
	if n := keys.fails.Load(); n != 1 {
		t.Fatalf("the key source was asked %d times, want once (no waiting for a store known to fail)", n)
	}
}

// etcdConfig returns the embedded default in a short temporary directory
// with the etcd key store on srv.
func etcdConfig(t *testing.T, srv *etcdtest.Server) *Config {
	t.Helper()
	cfg, err := DefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	dir := testsupport.ShortTempDir(t)
	cfg.Socket = filepath.Join(dir, "sb.sock")
	cfg.Admin.Socket = ""
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Keys.BlockSize = 256
	cfg.Keys.Secret = "00112233445566778899aabbccddeeff"
	cfg.Keys.Store = KeyStoreEtcd
	cfg.Keys.Etcd.Endpoints = []string{srv.Endpoint()}
	cfg.Keys.Etcd.RequestTimeout = 500 * time.Millisecond
	cfg.Cache.SizeMB = 32
	cfg.Server.ShutdownTimeout = 5 * time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestEtcdDaemonStartsWhileEtcdDown: a daemon on the etcd store started
// while etcd is down starts, answers ALLOCATE with KEYS_EXHAUSTED and says
// in its status that keys are not ready and why; once etcd is back it
// issues keys without a restart.
func TestEtcdDaemonStartsWhileEtcdDown(t *testing.T) {
	srv := etcdtest.Start(t)
	cfg := etcdConfig(t, srv)
	if _, err := InitKeys(cfg, 0); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	d, err := New(cfg, WithLogger(zaptest.NewLogger(t)), WithSimHost(testSimHost(t)))
	if err != nil {
		t.Fatal(err)
	}
	c := serveWithClient(t, d, cfg.Socket)
	if _, err := c.Allocate(ctxT(t), &wire.AllocateRequest{Spec: spec("etcd down")}); !errors.Is(err, wire.StatusKeysExhausted) {
		t.Fatalf("allocation with etcd down: %v, want KEYS_EXHAUSTED", err)
	}
	st, err := d.Status()
	if err != nil {
		t.Fatal(err)
	}
	if k := st.Keys; k.Store != "etcd" || k.Ready || k.Bound || !k.Failing || !strings.Contains(k.Reason, "etcd") || len(k.Endpoints) != 1 {
		t.Fatalf("keys status with etcd down: %+v", k)
	}
	if k := st.Keys; !strings.HasPrefix(k.Fleet, "not listed: ") {
		t.Fatalf("fleet entry status with etcd down: %q, want not listed and why", k.Fleet)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := c.Allocate(ctxT(t), &wire.AllocateRequest{Spec: spec("etcd back")})
		if err == nil {
			break
		}
		if !errors.Is(err, wire.StatusKeysExhausted) || time.Now().After(deadline) {
			t.Fatalf("allocation after etcd came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	st, _ = d.Status()
	if k := st.Keys; !k.Ready || !k.Bound || k.LastLease.IsZero() || k.LastLeaseEnd == 0 || k.Seen < k.LastLeaseEnd || k.Rollbacks != 0 {
		t.Fatalf("keys status after etcd came back: %+v (want the last lease, the mark seen at least its end, no rollback)", k)
	}
	// The daemon registers in the fleet once etcd answers.
	for deadline := time.Now().Add(30 * time.Second); ; {
		ms, err := d.Fleet(ctxT(t))
		if err == nil && len(ms) == 1 && ms[0].Instance == cfg.Instance && ms[0].Socket == cfg.Socket {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fleet after etcd came back: %+v, %v", ms, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, _ := d.Status()
		if st.Keys.Fleet == "registered" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fleet entry status once listed: %q", st.Keys.Fleet)
		}
	}
}

// TestEtcdConfigValidation: the etcd store's fields are checked, each
// error naming its field.
func TestEtcdConfigValidation(t *testing.T) {
	base := "tiers: [{name: t, servers: [\"tcp://127.0.0.1:1\"]}]\n"
	for _, tc := range []struct{ yaml, field string }{
		{"keys: {store: consul}", "keys.store"},
		{"keys: {store: etcd}", "keys.etcd.endpoints"},
		{"keys: {etcd: {endpoints: [\"http://127.0.0.1:2379\"]}}", "keys.etcd.endpoints"},
		{"keys: {store: etcd, node: {id: 1, count: 2}, etcd: {endpoints: [\"http://127.0.0.1:2379\"]}}", "keys.node"},
		{"keys: {store: etcd, etcd: {endpoints: [\"127.0.0.1:2379\"]}}", "keys.etcd.endpoints"},
		{"keys: {store: etcd, etcd: {endpoints: [\"http://127.0.0.1:2379\"], ca_file: /etc/ca.pem}}", "keys.etcd.endpoints"},
		{"keys: {store: etcd, etcd: {endpoints: [\"http://127.0.0.1:2379\"], prefix: switchboard}}", "keys.etcd.prefix"},
		{"keys: {store: etcd, etcd: {endpoints: [\"http://127.0.0.1:2379\"], request_timeout: -1s}}", "keys.etcd.request_timeout"},
		{"keys: {store: etcd, block_size: 4096, etcd: {endpoints: [\"http://127.0.0.1:2379\"], max_block: 100}}", "keys.etcd.max_block"},
		{"keys: {store: etcd, etcd: {endpoints: [\"http://127.0.0.1:2379\"], block_period: 10ms}}", "keys.etcd.block_period"},
		{"keys: {store: etcd, etcd: {endpoints: [\"https://127.0.0.1:2379\"], cert_file: /etc/c.pem}}", "keys.etcd.cert_file"},
		{"keys: {store: etcd, etcd: {endpoints: [\"https://127.0.0.1:2379\"], ca_file: ca.pem}}", "keys.etcd.ca_file"},
		{"keys: {store: etcd, etcd: {endpoints: [\"http://127.0.0.1:2379\"], username: sb}}", "keys.etcd.username"},
	} {
		_, err := ParseConfig([]byte(base+tc.yaml+"\n"), "test.yaml")
		var es strictyaml.Errors
		if !errors.As(err, &es) {
			t.Errorf("%s: %v, want field errors", tc.yaml, err)
			continue
		}
		found := false
		for _, e := range es {
			found = found || e.Field == tc.field
		}
		if !found {
			t.Errorf("%s: %v, want an error on %s", tc.yaml, err, tc.field)
		}
	}
	ok := base + "keys: {store: etcd, etcd: {endpoints: [\"https://10.0.0.1:2379\", \"https://10.0.0.2:2379\"], ca_file: /etc/ca.pem, cert_file: /etc/c.pem, key_file: /etc/k.pem, username: sb, password_file: /etc/pw}}\n"
	if _, err := ParseConfig([]byte(ok), "ok.yaml"); err != nil {
		t.Fatalf("a full etcd section: %v", err)
	}
}

// TestEtcdReloadRequiresRestart: every keys.etcd field and keys.store are
// restart-only.
func TestEtcdReloadRequiresRestart(t *testing.T) {
	old := &Config{}
	old.Keys.Etcd.Endpoints = []string{"http://127.0.0.1:1"}
	for name, mutate := range map[string]func(c *Config){
		"keys.store": func(c *Config) { c.Keys.Store = KeyStoreEtcd },
		"keys.etcd":  func(c *Config) { c.Keys.Etcd.Endpoints = []string{"http://127.0.0.1:2"} },
	} {
		nc := *old
		nc.Keys.Etcd.Endpoints = append([]string(nil), old.Keys.Etcd.Endpoints...)
		mutate(&nc)
		if got := restartFields(old, &nc); len(got) != 1 || got[0] != name {
			t.Errorf("%s changed: restart fields %v", name, got)
		}
	}
}

// TestEtcdSkipKeysPastFence: after etcd's mark was put back below its
// fence (the highest mark ever leased), every daemon refuses it, and the
// operator's -skip-keys (SkipKeys) is what moves it forward: it must not be
// refused like a daemon. Once past the fence a daemon binds again.
func TestEtcdSkipKeysPastFence(t *testing.T) {
	srv := etcdtest.Start(t)
	cfg := etcdConfig(t, srv)
	if _, err := InitKeys(cfg, 1000); err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint()}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Put(ctxT(t), cfg.Keys.Etcd.Prefix+etcdstore.MarkKey, "10"); err != nil { // the restore
		t.Fatal(err)
	}
	kc := keygenConfig(cfg)
	perm, err := keygen.NewPermutation(kc.Secret, kc.Digits)
	if err != nil {
		t.Fatal(err)
	}
	bind := func() error {
		st, err := etcdstore.New(cli, etcdstore.Config{Prefix: cfg.Keys.Etcd.Prefix}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		_, err = st.Bind(ctxT(t), keygen.Binding{Digits: kc.Digits, Fingerprint: perm.Fingerprint()})
		return err
	}
	if err := bind(); !errors.Is(err, keygen.ErrStateStale) {
		t.Fatalf("a daemon's Bind on the mark put back: %v, want ErrStateStale", err)
	}
	part, err := SkipKeys(cfg, 990)
	if err != nil {
		t.Fatalf("-skip-keys past the fence: %v", err)
	}
	if part.Next != 1000 {
		t.Fatalf("mark after the skip: %d, want 1000", part.Next)
	}
	if err := bind(); err != nil {
		t.Fatalf("a daemon's Bind after the skip: %v", err)
	}
}
