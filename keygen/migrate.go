package keygen

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"go.uber.org/zap"
)

// MigratedSuffix is appended to a file store's StateFile once Migrate has
// carried its key space into another store: no daemon can start on the
// file store again (it holds no key space), and the old state stays for
// the record.
const MigratedSuffix = ".migrated"

// Migrate carries the key space of the file store in dir (one node: Node
// must be the whole space) into store, which must hold no key space or
// this same one: it creates the binding there and moves the store's mark
// to at least the file store's, then renames dir's StateFile with
// MigratedSuffix so that the file store can never issue keys again. cfg
// gives the digits and the secret (Config.Secret, else dir's
// keygen.secret); the file store's recorded binding must match it. Where
// store already holds the same key space, its mark is only moved forward
// (a re-run after an interruption is safe); where it holds another, or the
// file store is in use by a daemon, Migrate refuses. It returns the
// partition of store with its new mark.
func Migrate(cfg Config, dir string, store LeaseStore, opts ...Option) (Partition, error) {
	cfg.Dir = dir
	if err := cfg.Validate(); err != nil {
		return Partition{}, err
	}
	cfg = cfg.withDefaults()
	if cfg.Node.Count != 1 {
		return Partition{}, fmt.Errorf("%w: migrating a key space split among %d nodes is not supported: one mark cannot hold every node's slice", ErrInvalidConfig, cfg.Node.Count)
	}
	o := buildOptions(opts)
	from, err := NewFileStore(dir, WithFS(o.fs))
	if err != nil {
		return Partition{}, err
	}
	defer from.Close()
	secret, _, err := resolveSecret(cfg, o.fs, false)
	if errors.Is(err, errNoSecretFile) {
		return Partition{}, missingSecret(cfg, from, o.fs)
	}
	if err != nil {
		return Partition{}, err
	}
	perm, err := NewPermutation(secret, cfg.Digits)
	if err != nil {
		return Partition{}, err
	}
	ctx := context.Background()
	b := Binding{Digits: cfg.Digits, Node: cfg.Node, Fingerprint: perm.Fingerprint()}
	src, err := from.Bind(ctx, b)
	if err != nil {
		return Partition{}, fmt.Errorf("keygen: migrate from %s: %w", dir, err)
	}
	if rec, ok := from.RecordedMark(b); ok && rec > src.Next {
		return Partition{}, fmt.Errorf("%w: %s says the next counter is %d, but this directory already made counters up to %d durable: it was put back from an older copy; skip it forward first", ErrStateStale, filepath.Join(dir, StateFile), src.Next, rec)
	}
	part, err := store.Create(ctx, b)
	if errors.Is(err, ErrKeySpaceExists) {
		// The same key space (an interrupted migration) is moved forward;
		// another one is refused by Bind (ErrBindingChanged).
		part, err = store.Bind(ctx, b)
		if err != nil {
			return Partition{}, fmt.Errorf("keygen: the target store already holds a key space, and not this one: %w", err)
		}
	}
	if err != nil {
		return Partition{}, err
	}
	if part.Next < src.Next {
		if part, err = skipBound(ctx, store, part, src.Next-part.Next, o.log); err != nil {
			return Partition{}, err
		}
	}
	state := filepath.Join(dir, StateFile)
	if err := o.fs.Rename(state, state+MigratedSuffix); err != nil {
		return Partition{}, fmt.Errorf("keygen: the key space was copied but %s could not be retired (rename it by hand before any daemon starts on this directory): %w", state, err)
	}
	if err := o.fs.SyncDir(dir); err != nil {
		return Partition{}, fmt.Errorf("keygen: retire %s: %w", state, err)
	}
	o.log.Info("session keys: key space migrated", zap.String("from", dir),
		zap.Uint64("file_mark", src.Next), zap.Uint64("mark", part.Next), zap.Stringer("fingerprint", perm.Fingerprint()))
	return part, nil
}
