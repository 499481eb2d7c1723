package main

import (
	"errors"
	"fmt"
	"os"

	"switchboard/daemon"
	"switchboard/keygen"
)

// migrateCommand runs -migrate-keys and returns the exit code: 0 when the
// key space is in etcd, 2 when refused (bad flags or config, another key
// space in etcd, the file store in use or without a key space), 1 when
// etcd failed.
func migrateCommand(cfg *daemon.Config, fromDir string) int {
	if fromDir == "" {
		fmt.Fprintln(os.Stderr, "switchboard: -migrate-keys needs -from-dir, the file store's data directory")
		return 2
	}
	part, err := daemon.MigrateKeys(cfg, fromDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "switchboard: migrate keys:", err)
		if keySpaceRefused(err) || errors.Is(err, keygen.ErrKeySpaceExists) || errors.Is(err, keygen.ErrInvalidConfig) || errors.Is(err, keygen.ErrLocked) {
			return 2
		}
		return 1
	}
	fmt.Printf("key space of %s moved to etcd %v under %s: next counter %d; its lease state is retired (%s%s)\n",
		fromDir, cfg.Keys.Etcd.Endpoints, cfg.Keys.Etcd.Prefix, part.Next, keygen.StateFile, keygen.MigratedSuffix)
	if cfg.Keys.Secret == "" {
		fmt.Printf("copy %s/%s (mode 0600) to the data directory of every daemon of the fleet\n", fromDir, keygen.SecretFile)
	}
	return 0
}
