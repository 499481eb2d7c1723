package daemon

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"switchboard/internal/testsupport"
	"switchboard/route"
	"switchboard/telsim"
	"switchboard/wire"
)

// TestOrphansSurviveRestart: a release deferred because its tier is down
// is an acknowledged one: the front end was told it succeeded. The daemon
// stops with it pending; a new daemon on the same data directory, with the
// tier (an external telsim that outlived the first daemon) back up, must
// release the bridge.
func TestOrphansSurviveRestart(t *testing.T) {
	ts, err := telsim.New(telsim.Config{Tier: "primary-large"})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := ts.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	dataDir := filepath.Join(testsupport.ShortTempDir(t), "data")
	mutate := func(c *Config) {
		chaosConfig(c)
		c.DataDir = dataDir
		c.Tiers[0].Servers = []string{"tcp://" + addr.String()}
	}

	var key uint64
	t.Run("first daemon", func(t *testing.T) {
		h := startDaemon(t, mutate)
		ctx := ctxT(t)
		a, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("kept")})
		if err != nil || a.Tier != "primary-large" {
			t.Fatalf("allocate: %+v %v", a, err)
		}
		key = a.Key
		if err := ts.SetFault(telsim.Fault{Mode: telsim.ModeDown}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "primary's connections gone", 5*time.Second, func() bool { return h.d.rt.Current().Tiers[0].Pool.Live() == 0 })
		if err := h.c.Release(ctx, key); err != nil {
			t.Fatalf("release on a down tier: %v", err)
		}
		if n := h.d.rt.Stats().Orphans; n != 1 {
			t.Fatalf("%d releases deferred, want 1", n)
		}
	})
	if n := ts.Stats().Reservations; n != 1 {
		t.Fatalf("primary holds %d reservations after the first daemon, want the 1 deferred release", n)
	}

	if err := ts.SetFault(telsim.Fault{Mode: telsim.ModeNone}); err != nil {
		t.Fatal(err)
	}
	t.Run("second daemon", func(t *testing.T) {
		h := startDaemon(t, mutate)
		waitFor(t, "the deferred release done after restart", 10*time.Second, func() bool {
			return h.d.rt.Stats().Orphans == 0 && ts.Stats().Reservations == 0
		})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := h.c.Lookup(ctx, key); err == nil {
			t.Fatalf("session %d still found after its deferred release", key)
		}
	})
	b, err := os.ReadFile(filepath.Join(dataDir, route.OrphanJournalName))
	if err != nil || len(b) != 0 {
		t.Fatalf("journal after everything was released: %q %v", b, err)
	}
}
