package keygen

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
)

// TestBindNeverCreates: neither the file store nor New starts a key space in
// an empty directory, or next to a provisioned secret whose lease state is
// gone; nothing is written.
func TestBindNeverCreates(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	if _, err := s.Bind(ctx, testBinding(9, NodeConfig{Count: 1})); !errors.Is(err, ErrStateMissing) {
		t.Fatalf("Bind on an empty directory = %v, want ErrStateMissing", err)
	}
	s.Close()
	for _, cfg := range []Config{
		{Dir: dir, Digits: 6, Secret: testSecret}, // secret in the config
		{Dir: dir, Digits: 6},                     // no secret anywhere
	} {
		if g, err := New(cfg, nil); !errors.Is(err, ErrStateMissing) {
			if err == nil {
				g.Close()
			}
			t.Fatalf("New on an empty directory (secret in config: %v) = %v, want ErrStateMissing", cfg.Secret != nil, err)
		}
	}
	writeFileMode(t, filepath.Join(dir, SecretFile), EncodeSecret(testSecret), 0o600)
	if g, err := New(Config{Dir: dir, Digits: 6}, nil); !errors.Is(err, ErrStateMissing) {
		if err == nil {
			g.Close()
		}
		t.Fatalf("New next to a provisioned secret = %v, want ErrStateMissing", err)
	}
	if _, err := os.Stat(filepath.Join(dir, StateFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused start wrote %s: %v", StateFile, err)
	}
	// Any store: a strict in-memory one is refused the same way.
	if g, err := New(Config{Digits: 6, Secret: testSecret}, &memStore{strict: true}); !errors.Is(err, ErrStateMissing) {
		if err == nil {
			g.Close()
		}
		t.Fatalf("New on an empty store = %v, want ErrStateMissing", err)
	}
}

// TestInitOnce: Init creates the key space once and refuses it afterwards,
// in the file store and in any store, without touching its mark.
func TestInitOnce(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, Digits: 6, BlockSize: 8}
	p := mustInit(t, cfg)
	if !p.Created || p.Next != p.Lo {
		t.Fatalf("Init: %+v", p)
	}
	if _, err := Init(cfg, nil, 0); !errors.Is(err, ErrKeySpaceExists) {
		t.Fatalf("second Init = %v, want ErrKeySpaceExists", err)
	}
	g, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Next(); err != nil {
		t.Fatal(err)
	}
	g.Close()
	state, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, skip := range []uint64{0, 100} {
		if _, err := Init(cfg, nil, skip); !errors.Is(err, ErrKeySpaceExists) {
			t.Fatalf("Init (skip %d) after keys were issued = %v, want ErrKeySpaceExists", skip, err)
		}
	}
	if after, _ := os.ReadFile(filepath.Join(dir, StateFile)); string(after) != string(state) {
		t.Fatal("a refused Init changed the lease state")
	}

	mem := &memStore{strict: true}
	mcfg := Config{Digits: 6, BlockSize: 8, Secret: testSecret}
	if _, err := Init(mcfg, mem, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(mcfg, mem, 0); !errors.Is(err, ErrKeySpaceExists) {
		t.Fatalf("second Init on a mem store = %v", err)
	}
}

// TestSkip: the mark moves forward by exactly n, durably, never backwards,
// and keys issued after a restore and a skip never repeat those issued
// before.
func TestSkip(t *testing.T) {
	dir := t.TempDir()
	backup := t.TempDir()
	cfg := Config{Dir: dir, Digits: 6, BlockSize: 8, Node: NodeConfig{ID: 1, Count: 3}, Secret: testSecret}
	mustInit(t, cfg)
	issued := newKeySet()
	issue := func(n int) {
		g, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		for range n {
			issued.add(t, nextRetry(t, g)) // fails on a repeat
		}
	}
	issue(20)
	copyFile(t, filepath.Join(dir, StateFile), filepath.Join(backup, StateFile))
	issue(20)
	issue(20)
	// Restore the backup: its mark is older than 40 issued keys.
	copyFile(t, filepath.Join(backup, StateFile), filepath.Join(dir, StateFile))
	restored, _ := os.ReadFile(filepath.Join(dir, StateFile))
	lo, hi := NodePartition(6, cfg.Node)
	for _, n := range []uint64{0, hi - lo, 1 << 62} {
		if _, err := Skip(cfg, nil, n); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("Skip(%d) = %v, want ErrInvalidConfig", n, err)
		}
	}
	if now, _ := os.ReadFile(filepath.Join(dir, StateFile)); string(now) != string(restored) {
		t.Fatal("a refused Skip changed the lease state")
	}
	// Two starts since the backup, each leasing at most 20 keys plus two
	// blocks of 8.
	p, err := Skip(cfg, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t, dir)
	got, err := s.Bind(context.Background(), Binding{Digits: 6, Node: cfg.Node, Fingerprint: FingerprintOf(testSecret)})
	if err != nil || got.Next != p.Next {
		t.Fatalf("after Skip the store says %+v, %v; Skip said %+v", got, err, p)
	}
	s.Close()
	issue(60)

	// A failing disk: Skip fails and reports it; it returns only once the
	// mark is durable.
	fsys := newFaultFS()
	fsys.set(opSync, syscall.EIO)
	if _, err := Skip(cfg, nil, 10, WithFS(fsys)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Skip with fsync failing = %v, want EIO", err)
	}
	// Skip on a directory without a key space.
	if _, err := Skip(Config{Dir: t.TempDir(), Digits: 6, Secret: testSecret}, nil, 10); !errors.Is(err, ErrStateMissing) {
		t.Fatalf("Skip on an empty directory = %v, want ErrStateMissing", err)
	}
}

// TestInitWithSkip: a lost key space is recreated past every key it issued.
func TestInitWithSkip(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, Digits: 6, BlockSize: 8, Node: NodeConfig{ID: 2, Count: 3}, Secret: testSecret}
	mustInit(t, cfg)
	issued := newKeySet()
	g, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 30 {
		issued.add(t, nextRetry(t, g))
	}
	g.Close()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	lo, _ := NodePartition(6, cfg.Node)
	p, err := Init(cfg, nil, 50)
	if err != nil || p.Next != lo+50 || !p.Created {
		t.Fatalf("Init with skip 50 = %+v, %v; want Next %d", p, err, lo+50)
	}
	g, err = New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for range 30 {
		issued.add(t, nextRetry(t, g))
	}
	// A generated secret whose lease state was lost: only with a skip.
	dir2 := t.TempDir()
	mustInit(t, Config{Dir: dir2, Digits: 6})
	if err := os.Remove(filepath.Join(dir2, StateFile)); err != nil {
		t.Fatal(err)
	}
	if p, err := Init(Config{Dir: dir2, Digits: 6}, nil, 1000); err != nil || p.Next != 1000 {
		t.Fatalf("Init with a skip next to a generated secret = %+v, %v", p, err)
	}
}

// TestNewDirectoryParentSynced: creating the data directory (and missing
// parents) fsyncs each new directory's parent, top down, so that the
// directory survives a crash with the files written into it.
func TestNewDirectoryParentSynced(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "a", "b", "data")
	fsys := &syncRecorder{faultFS: newFaultFS()}
	mustInit(t, Config{Dir: dir, Digits: 6, Secret: testSecret}, WithFS(fsys))
	want := []string{root, filepath.Join(root, "a"), filepath.Join(root, "a", "b")}
	if got := fsys.synced(); len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
		t.Fatalf("directories fsynced %q, want first %q", got, want)
	}
	// An existing directory: no parent is synced again.
	fsys2 := &syncRecorder{faultFS: newFaultFS()}
	if _, err := NewFileStore(dir, WithFS(fsys2)); err != nil {
		t.Fatal(err)
	}
	if got := fsys2.synced(); len(got) != 0 {
		t.Fatalf("opening an existing directory fsynced %q", got)
	}
	// A parent that cannot be synced fails the creation.
	fsys3 := newFaultFS()
	fsys3.set(opSyncDir, syscall.EIO)
	if _, err := NewFileStore(filepath.Join(root, "c"), WithFS(fsys3)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("NewFileStore with the parent fsync failing = %v", err)
	}
}

// syncRecorder records the directories SyncDir is called on.
type syncRecorder struct {
	*faultFS
	mu   sync.Mutex
	dirs []string
}

func (r *syncRecorder) SyncDir(dir string) error {
	r.mu.Lock()
	r.dirs = append(r.dirs, dir)
	r.mu.Unlock()
	return r.faultFS.SyncDir(dir)
}

func (r *syncRecorder) synced() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.dirs)
}

// TestStaleStateRefused: a lease state put back from an older copy, next to
// the directory's newer record of its mark, is refused (ErrStateStale) until
// a skip moves it past the record; a skip never lowers the record. Where
// the lease state is gone but the record is not, Init needs a skip past it.
func TestStaleStateRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, Digits: 6, BlockSize: 8, Secret: testSecret}
	mustInit(t, cfg)
	issued := newKeySet()
	issue := func(n int) {
		t.Helper()
		g, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		for range n {
			issued.add(t, nextRetry(t, g))
		}
	}
	state := filepath.Join(dir, StateFile)
	issue(10)
	backup := filepath.Join(t.TempDir(), StateFile)
	copyFile(t, state, backup)
	issue(30)
	copyFile(t, backup, state)
	if g, err := New(cfg, nil); !errors.Is(err, ErrStateStale) {
		if err == nil {
			g.Close()
		}
		t.Fatalf("New on a restored older lease state = %v, want ErrStateStale", err)
	}
	if _, err := Skip(cfg, nil, 1); err != nil {
		t.Fatal(err)
	}
	if g, err := New(cfg, nil); !errors.Is(err, ErrStateStale) {
		if err == nil {
			g.Close()
		}
		t.Fatalf("New after a skip short of the record = %v, want ErrStateStale", err)
	}
	if _, err := Skip(cfg, nil, 100); err != nil {
		t.Fatal(err)
	}
	issue(40)

	// The lease state lost, its record kept.
	if err := os.Remove(state); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(cfg, nil, 0); !errors.Is(err, ErrStateMissing) {
		t.Fatalf("Init without a skip next to a record = %v, want ErrStateMissing", err)
	}
	if _, err := Init(cfg, nil, 5); !errors.Is(err, ErrStateMissing) {
		t.Fatalf("Init with a skip short of the record = %v, want ErrStateMissing", err)
	}
	if _, err := Init(cfg, nil, 1000); err != nil {
		t.Fatal(err)
	}
	issue(40)
}
