package daemon

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"switchboard/telsim"
	"switchboard/wire"
)

// The daemon does not host simulators: without a SimHost a sim:// tier does
// not start (and nothing is left running); tcp:// servers need none.
func TestSimTierNeedsSimHost(t *testing.T) {
	cfg := testConfig(t)
	ensureKeys(t, cfg)
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = d.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "sim://primary-large: no simulator host") {
		t.Fatalf("Run: %v, want the sim:// server refused for want of a simulator host", err)
	}
	if addrs, err := d.resolve([]string{"tcp://127.0.0.1:7"}); err != nil || addrs[0] != "127.0.0.1:7" {
		t.Errorf("tcp:// resolved to %v, %v", addrs, err)
	}
}

// mapResolver resolves the servers it lists and no other.
type mapResolver map[string]string

func (m mapResolver) Resolve(server string) (string, error) {
	if a, ok := m[server]; ok {
		return a, nil
	}
	return "", fmt.Errorf("%s: not known to this resolver", server)
}

// A daemon given only a Resolver (no SimHost) dials what it resolves a
// sim:// server to (a simulator running elsewhere) and tcp:// servers as
// they are.
func TestResolverAloneServesTiers(t *testing.T) {
	elsewhere, err := telsim.New(telsim.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	addr, err := elsewhere.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer elsewhere.Close()
	direct, err := telsim.New(telsim.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	daddr, err := direct.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()

	cfg := testConfig(t)
	cfg.Tiers = cfg.Tiers[:2]
	cfg.Tiers[0].Servers = []string{"sim://elsewhere"}
	cfg.Tiers[1].Servers = []string{"tcp://" + daddr.String()}
	mustInitKeys(t, cfg)
	d, err := New(cfg, WithLogger(zaptest.NewLogger(t)), WithResolver(mapResolver{"sim://elsewhere": addr.String()}))
	if err != nil {
		t.Fatal(err)
	}
	c := serveWithClient(t, d, cfg.Socket)
	if _, err := c.Allocate(ctxT(t), &wire.AllocateRequest{Spec: spec("resolved")}); err != nil {
		t.Fatal(err)
	}
	if got := elsewhere.Stats().Reservations; got != 1 {
		t.Fatalf("%d reservations on the resolved simulator, want 1", got)
	}
	if err := d.Drain(cfg.Tiers[0].Name, true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Allocate(ctxT(t), &wire.AllocateRequest{Spec: spec("direct")}); err != nil {
		t.Fatal(err)
	}
	if got := direct.Stats().Reservations; got != 1 {
		t.Fatalf("%d reservations on the tcp:// server, want 1", got)
	}
}

// The simulators belong to their host: Run's end leaves them running (the
// host's creator closes it), and a Run that fails to start stops those its
// start began (the plan is aborted).
func TestSimHostOwnsItsSimulators(t *testing.T) {
	host := testSimHost(t)
	cfg := testConfig(t)
	mustInitKeys(t, cfg)
	d, err := New(cfg, WithLogger(zaptest.NewLogger(t)), WithSimHost(host))
	if err != nil {
		t.Fatal(err)
	}
	stop := runUntilReady(t, d)
	before := host.Sims()
	if len(before) != 3 {
		t.Fatalf("simulators %v, want the default config's three", before)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := host.Sims(); !slices.Equal(got, before) {
		t.Errorf("simulators %v after Run returned, want %v (the host's to close)", got, before)
	}

	cfg = testConfig(t) // no key space: Run fails after the simulators started
	failing := testSimHost(t)
	d, err = New(cfg, WithLogger(zaptest.NewLogger(t)), WithSimHost(failing))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Run(ctx); err == nil {
		t.Fatal("Run without a key space succeeded")
	}
	if got := failing.Sims(); len(got) != 0 {
		t.Errorf("simulators %v still run after a failed start, want none", got)
	}
}
