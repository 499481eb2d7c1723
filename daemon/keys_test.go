package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"switchboard/keygen"
)

// TestRunNeverCreatesKeySpace: Run on a data directory without a key space
// fails with keygen.ErrStateMissing and writes none; InitKeys creates it
// once, and SkipKeys moves its mark forward.
func TestRunNeverCreatesKeySpace(t *testing.T) {
	cfg := testConfig(t)
	cfg.Keys.BlockSize = 64
	d, err := New(cfg, WithLogger(zaptest.NewLogger(t)), WithSimHost(testSimHost(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Run(ctx); !errors.Is(err, keygen.ErrStateMissing) {
		t.Fatalf("Run without a key space = %v, want ErrStateMissing", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, keygen.StateFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Run wrote %s: %v", keygen.StateFile, err)
	}

	p, err := InitKeys(cfg, 0)
	if err != nil || !p.Created || p.Next != 0 {
		t.Fatalf("InitKeys = %+v, %v", p, err)
	}
	if _, err := InitKeys(cfg, 0); !errors.Is(err, keygen.ErrKeySpaceExists) {
		t.Fatalf("second InitKeys = %v, want ErrKeySpaceExists", err)
	}
	if p, err := SkipKeys(cfg, 1000); err != nil || p.Next != 1000 {
		t.Fatalf("SkipKeys(1000) = %+v, %v", p, err)
	}
	if _, err := SkipKeys(cfg, 0); !errors.Is(err, keygen.ErrInvalidConfig) {
		t.Fatalf("SkipKeys(0) = %v, want ErrInvalidConfig", err)
	}
}
