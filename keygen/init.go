package keygen

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"go.uber.org/zap"
)

// Init creates the key space cfg describes in store (nil: the FileStore in
// cfg.Dir, opened and closed here), with its high-water mark skip counters
// past the start of this node's partition, and returns the partition as
// created. It is the only way a key space comes into being: New, and so the
// daemon, only ever attaches to an existing one. Init is meant for an
// operator's one-shot command (switchboard -init-keys), never for a start-up
// path that would run it again after a disk is lost.
//
// The secret is Config.Secret, else <Dir>/keygen.secret, else (single node
// only) a new one, stored with mode 0600 after the store recorded the
// binding. Init refuses, with ErrKeySpaceExists, a store that already holds
// a key space, and, with ErrStateMissing, a directory whose generated secret
// outlived its lease state (the high-water mark was lost: keys were issued
// under that secret) unless skip is non-zero. skip must leave at least one
// counter of the partition; it is how a lost or restored key space is
// recreated past every key it issued (see Skip).
func Init(cfg Config, store LeaseStore, skip uint64, opts ...Option) (Partition, error) {
	if err := cfg.Validate(); err != nil {
		return Partition{}, err
	}
	cfg = cfg.withDefaults()
	o := buildOptions(opts)
	store, closeStore, err := storeFor(cfg, store, o)
	if err != nil {
		return Partition{}, err
	}
	defer closeStore()
	secret, source, err := resolveSecret(cfg, o.fs, true)
	if err != nil {
		return Partition{}, err
	}
	if fstore, ok := store.(*FileStore); ok && source == secretFromGenerated && skip == 0 {
		// The lease state is written before a generated secret is stored,
		// so a generated secret without state means the state was lost.
		path := filepath.Join(fstore.Dir(), StateFile)
		_, err := o.fs.Stat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return Partition{}, fmt.Errorf("%w: %s was generated here but %s does not exist: the high-water mark is lost, and starting over from the first counter would reissue the keys issued under this secret; recreate the key space with a skip past every key issued",
				ErrStateMissing, filepath.Join(cfg.Dir, SecretFile), path)
		case err != nil:
			return Partition{}, fmt.Errorf("keygen: lease state %s: %w", path, err)
		}
	}
	perm, err := NewPermutation(secret, cfg.Digits)
	if err != nil {
		return Partition{}, err
	}
	ctx := context.Background()
	b := Binding{Digits: cfg.Digits, Node: cfg.Node, Fingerprint: perm.Fingerprint()}
	if fstore, ok := store.(*FileStore); ok && !stateExists(o.fs, fstore) {
		// Where the lease state is gone but its record is not, the
		// record is a floor for the skip.
		lo, _ := NodePartition(cfg.Digits, cfg.Node)
		if rec, ok := fstore.RecordedMark(b); ok && rec > lo+skip {
			return Partition{}, fmt.Errorf("%w: this directory already made counters up to %d durable under this key space (%s), so its lease state was lost; recreating it needs a skip of at least %d counters (more if keys were issued after that record)",
				ErrStateMissing, rec, MarkFile, rec-lo)
		}
	}
	part, err := store.Create(ctx, b)
	if err != nil {
		return Partition{}, err
	}
	if source == secretGenerated {
		if err := storeSecret(o.fs, cfg.Dir, secret); err != nil {
			return Partition{}, err
		}
	}
	o.log.Info("session keys: key space created",
		zap.Int("digits", cfg.Digits), zap.Int("node", cfg.Node.ID), zap.Int("nodes", cfg.Node.Count),
		zap.Uint64("lo", part.Lo), zap.Uint64("hi", part.Hi),
		zap.Stringer("fingerprint", perm.Fingerprint()), zap.Bool("secret_generated", source == secretGenerated))
	if skip == 0 {
		return part, nil
	}
	return skipBound(ctx, store, part, skip, o.log)
}

// Skip durably moves the high-water mark of the existing key space cfg
// describes forward by n counters (nil store: the FileStore in cfg.Dir, which
// must not be in use by a running daemon), and returns the partition with
// the new mark. The skipped counters are never issued. It is how a key space
// put back from a backup (whose mark is older than the keys issued since) is
// made safe: skip at least as many counters as were issued after the backup
// was taken. The new mark is durable when Skip returns. Skip never moves the
// mark backwards and refuses (ErrInvalidConfig) an n of zero or one that
// would leave no counter of the partition.
func Skip(cfg Config, store LeaseStore, n uint64, opts ...Option) (Partition, error) {
	if err := cfg.Validate(); err != nil {
		return Partition{}, err
	}
	if n == 0 {
		return Partition{}, fmt.Errorf("%w: skip of 0 counters", ErrInvalidConfig)
	}
	cfg = cfg.withDefaults()
	o := buildOptions(opts)
	store, closeStore, err := storeFor(cfg, store, o)
	if err != nil {
		return Partition{}, err
	}
	defer closeStore()
	secret, _, err := resolveSecret(cfg, o.fs, false)
	if errors.Is(err, errNoSecretFile) {
		return Partition{}, missingSecret(cfg, store, o.fs)
	}
	if err != nil {
		return Partition{}, err
	}
	perm, err := NewPermutation(secret, cfg.Digits)
	if err != nil {
		return Partition{}, err
	}
	ctx := context.Background()
	part, err := store.Bind(ctx, Binding{Digits: cfg.Digits, Node: cfg.Node, Fingerprint: perm.Fingerprint()})
	if err != nil {
		return Partition{}, err
	}
	return skipBound(ctx, store, part, n, o.log)
}

// skipBound leases, and so durably retires, n counters of the bound store
// whose partition is part.
func skipBound(ctx context.Context, store LeaseStore, part Partition, n uint64, log *zap.Logger) (Partition, error) {
	if left := part.Hi - part.Next; n >= left {
		return Partition{}, fmt.Errorf("%w: skipping %d counters leaves none of the %d this node has left in [%d, %d)",
			ErrInvalidConfig, n, left, part.Next, part.Hi)
	}
	from := part.Next
	for got := uint64(0); got < n; {
		start, end, err := store.Lease(ctx, n-got)
		if err != nil {
			return Partition{}, fmt.Errorf("keygen: skip %d counters from %d: %w", n, from, err)
		}
		if start != part.Next || end <= start || end-start > n-got {
			return Partition{}, fmt.Errorf("%w: skip asked for %d counters from %d, store returned [%d, %d)", ErrBadLease, n-got, part.Next, start, end)
		}
		got += end - start
		part.Next = end
	}
	log.Info("session keys: high-water mark moved forward", zap.Uint64("from", from), zap.Uint64("to", part.Next), zap.Uint64("skipped", n))
	return part, nil
}

// stateExists reports whether the file store's StateFile exists (an error
// other than "not exist" counts as existing: Create reports it).
func stateExists(fsys FS, s *FileStore) bool {
	_, err := fsys.Stat(filepath.Join(s.Dir(), StateFile))
	return !errors.Is(err, fs.ErrNotExist)
}

// storeFor returns store, or, when it is nil, the file store of cfg.Dir and
// what closes it (Init and Skip are one-shot commands: they open the store,
// use it once, and close it).
func storeFor(cfg Config, store LeaseStore, o options) (LeaseStore, func(), error) {
	if store != nil {
		return store, func() {}, nil
	}
	if cfg.Dir == "" {
		return nil, nil, fmt.Errorf("%w: no lease store given and no data directory for the file store", ErrInvalidConfig)
	}
	fstore, err := NewFileStore(cfg.Dir, WithFS(o.fs))
	if err != nil {
		return nil, nil, err
	}
	return fstore, func() { fstore.Close() }, nil
}
