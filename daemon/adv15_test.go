package daemon

import (
	"fmt"
	"net"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"switchboard/telsim"
)

// Issue 15 point 6 (adversarial review): the daemon must not run on
// simulated tiers without a word. A daemon started on tcp:// servers only
// and then reloaded (sbctl reload, SIGHUP) with a file whose tiers are
// sim:// — the embedded default copied into production.yaml — serves every
// allocation from in-process simulators, reserving no real bridge, and
// logs no warning: the warning is only written at start.
func TestAdv15ReloadOntoSimulatedTiersWarns(t *testing.T) {
	var tcp [3]string
	names := [3]string{"primary-large", "nextgen", "backup2-large"}
	for i, name := range names {
		cfg := telsim.DefaultConfig()
		cfg.Tier = name
		cfg.ServerID = "adv15-" + name
		s, err := telsim.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		addr, err := s.Start("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		tcp[i] = fmt.Sprintf("tcp://127.0.0.1:%d", addr.(*net.TCPAddr).Port)
	}
	core, logs := observer.New(zapcore.WarnLevel)
	var simCfg *Config
	h := startDaemon(t, func(c *Config) {
		cp := *c
		cp.Tiers = append([]TierConfig(nil), c.Tiers...)
		simCfg = &cp
		c.Tiers = append([]TierConfig(nil), c.Tiers...)
		for i := range c.Tiers {
			c.Tiers[i].Servers = []string{tcp[i]}
		}
	}, WithLogger(zap.New(core)))
	if n := logs.FilterMessageSnippet("in-process simulators").Len(); n != 0 {
		t.Fatalf("%d warnings of simulated tiers at start on tcp:// tiers, want 0: %v", n, logs.All())
	}
	if err := h.d.Reload(reloadCtx(t), simCfg); err != nil {
		t.Fatalf("reload onto sim:// tiers: %v", err)
	}
	if got := h.d.Config().SimulatedTiers(); len(got) != 3 {
		t.Fatalf("after the reload SimulatedTiers() = %v, want all three", got)
	}
	if n := logs.FilterMessageSnippet("in-process simulators").Len(); n != 1 {
		t.Errorf("the daemon now serves every tier from in-process simulators (no real bridge is reserved), and logged %d warnings of it, want 1", n)
	}
}
