package daemon

import (
	"encoding/hex"
	"fmt"

	"go.uber.org/zap"

	"switchboard/keygen"
)

// InitKeys creates the key space cfg describes in cfg.DataDir (the keygen
// file store), with its high-water mark skip counters past the start of
// this node's partition, and returns the partition created. It is the only
// way a daemon's key space comes into being: New and Run attach to an
// existing one and fail with an error wrapping keygen.ErrStateMissing where
// there is none. cmd/switchboard calls it for -init-keys (and for the
// embedded developer default only); test harnesses call it explicitly before
// starting a daemon on a new data directory. It refuses an existing key space
// (keygen.ErrKeySpaceExists). The daemon must not be running on cfg.DataDir
// (keygen.ErrLocked).
func InitKeys(cfg *Config, skip uint64, opts ...Option) (keygen.Partition, error) {
	kc, log, err := keysFor(cfg, opts)
	if err != nil {
		return keygen.Partition{}, err
	}
	return keygen.Init(kc, nil, skip, keygen.WithLogger(log))
}

// SkipKeys durably moves the high-water mark of the existing key space in
// cfg.DataDir forward by n counters, so that no key issued before (for
// instance since the backup the directory was restored from) is issued
// again, and returns the partition with the new mark. The daemon must not be
// running on cfg.DataDir.
func SkipKeys(cfg *Config, n uint64, opts ...Option) (keygen.Partition, error) {
	kc, log, err := keysFor(cfg, opts)
	if err != nil {
		return keygen.Partition{}, err
	}
	return keygen.Skip(kc, nil, n, keygen.WithLogger(log))
}

// keysFor validates cfg and returns its keygen configuration and the
// logger opts set.
func keysFor(cfg *Config, opts []Option) (keygen.Config, *zap.Logger, error) {
	if cfg == nil {
		return keygen.Config{}, nil, fmt.Errorf("%w: nil config", ErrConfig)
	}
	if err := cfg.Validate(); err != nil {
		return keygen.Config{}, nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	d := &Daemon{log: zap.NewNop()}
	for _, o := range opts {
		o(d)
	}
	return keygenConfig(cfg), d.log.Named("keygen"), nil
}

// keygenConfig maps the keys section and data directory of a validated cfg
// onto keygen's configuration.
func keygenConfig(cfg *Config) keygen.Config {
	kc := keygen.DefaultConfig()
	kc.Digits = cfg.Keys.Digits
	kc.BlockSize = cfg.Keys.BlockSize
	kc.Dir = cfg.DataDir
	kc.Node = keygen.NodeConfig{ID: cfg.Keys.Node.ID, Count: cfg.Keys.Node.Count}
	if cfg.Keys.Secret != "" {
		kc.Secret, _ = hex.DecodeString(cfg.Keys.Secret) // validated
	}
	return kc
}
