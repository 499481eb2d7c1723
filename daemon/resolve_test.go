package daemon

import (
	"context"
	"strings"
	"testing"
	"time"
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
