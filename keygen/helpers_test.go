package keygen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"sync"
	"testing"
	"time"

	"switchboard/internal/clock/clocktest"
)

// testSecret is a fixed secret for tests that need a known permutation.
var testSecret = []byte("switchboard-test-secret-0123456789")

// source is what the shared test table exercises: the lock-free Generator and
// its mutex twin.
type source interface {
	Next() (uint64, error)
	Stats() Stats
	Close() error
	Permutation() *Permutation
}

type impl struct {
	name string
	open func(cfg Config, store LeaseStore, opts ...Option) (source, error)
}

var impls = []impl{
	{"lockfree", func(cfg Config, store LeaseStore, opts ...Option) (source, error) {
		g, err := New(cfg, store, opts...)
		if err != nil {
			return nil, err // avoid a typed nil in the interface
		}
		return g, nil
	}},
	{"mutex", func(cfg Config, store LeaseStore, opts ...Option) (source, error) {
		g, err := newMutexGen(cfg, store, opts...)
		if err != nil {
			return nil, err
		}
		return g, nil
	}},
}

// forEachImpl runs body as a subtest for each implementation.
func forEachImpl(t *testing.T, body func(t *testing.T, im impl)) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) { body(t, im) })
	}
}

func mustOpen(t *testing.T, im impl, cfg Config, store LeaseStore, opts ...Option) source {
	t.Helper()
	g, err := im.open(cfg, store, opts...)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

// mustInit creates the key space of cfg in cfg.Dir (Init, no skip), as the
// operator's one-shot command does before a daemon's first start.
func mustInit(t testing.TB, cfg Config, opts ...Option) Partition {
	t.Helper()
	p, err := Init(cfg, nil, 0, opts...)
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	return p
}

// nextRetry returns the next key, retrying while the refill lags behind
// (ErrUnavailable without a store failure). Other errors fail the test.
func nextRetry(t testing.TB, g source) uint64 {
	deadline := time.Now().Add(10 * time.Second)
	for {
		k, err := g.Next()
		if err == nil {
			return k
		}
		if !errors.Is(err, errNotReady) || time.Now().After(deadline) {
			t.Errorf("Next: %v", err)
			return 0
		}
		runtime.Gosched()
	}
}

// keySet records keys and reports duplicates.
type keySet struct {
	mu   sync.Mutex
	seen map[uint64]struct{}
}

func newKeySet() *keySet { return &keySet{seen: make(map[uint64]struct{})} }

func (s *keySet) add(t testing.TB, keys ...uint64) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		if _, dup := s.seen[k]; dup {
			t.Fatalf("duplicate key %d", k)
		}
		s.seen[k] = struct{}{}
	}
}

func (s *keySet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// newFakeClock returns a manual Clock: a timer fires when Advance passes
// its deadline.
func newFakeClock() *clocktest.Clock { return clocktest.New(time.Unix(1_700_000_000, 0)) }

// faultFS wraps OSFS and fails chosen operations with a chosen error.
type faultFS struct {
	OSFS
	noSync bool // skip the real fsyncs (see newFastFS)
	mu     sync.Mutex
	faults map[string]error // op → error
	calls  map[string]int
}

// Operations faultFS can fail.
const (
	opMkdir   = "mkdir"
	opStat    = "stat"
	opRead    = "read"
	opCreate  = "create"
	opWrite   = "write"
	opSync    = "sync"
	opClose   = "close"
	opRename  = "rename"
	opRemove  = "remove"
	opSyncDir = "syncdir"
	opLock    = "lock"
)

func newFaultFS() *faultFS {
	return &faultFS{faults: make(map[string]error), calls: make(map[string]int)}
}

// newFastFS is a faultFS whose fsyncs succeed without reaching the disk. Tests
// of the generator use it: a test cannot cut the power, so real fsyncs only
// make it slow (the file store's own tests and TestCrashSnapshot keep them).
func newFastFS() *faultFS {
	f := newFaultFS()
	f.noSync = true
	return f
}

func (f *faultFS) set(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.faults, op)
	} else {
		f.faults[op] = err
	}
}

func (f *faultFS) clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.faults)
}

func (f *faultFS) check(op, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	if err := f.faults[op]; err != nil {
		return &fs.PathError{Op: op, Path: name, Err: err}
	}
	return nil
}

func (f *faultFS) MkdirAll(p string, perm fs.FileMode) error {
	if err := f.check(opMkdir, p); err != nil {
		return err
	}
	return f.OSFS.MkdirAll(p, perm)
}

func (f *faultFS) Stat(name string) (fs.FileInfo, error) {
	if err := f.check(opStat, name); err != nil {
		return nil, err
	}
	return f.OSFS.Stat(name)
}

func (f *faultFS) ReadFile(name string) ([]byte, error) {
	if err := f.check(opRead, name); err != nil {
		return nil, err
	}
	return f.OSFS.ReadFile(name)
}

func (f *faultFS) CreateExcl(name string, perm fs.FileMode) (File, error) {
	if err := f.check(opCreate, name); err != nil {
		return nil, err
	}
	file, err := f.OSFS.CreateExcl(name, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f, name: name}, nil
}

func (f *faultFS) Rename(o, n string) error {
	if err := f.check(opRename, o); err != nil {
		return err
	}
	return f.OSFS.Rename(o, n)
}

func (f *faultFS) Remove(name string) error {
	if err := f.check(opRemove, name); err != nil {
		return err
	}
	return f.OSFS.Remove(name)
}

func (f *faultFS) SyncDir(dir string) error {
	if err := f.check(opSyncDir, dir); err != nil {
		return err
	}
	if f.noSync {
		return nil
	}
	return f.OSFS.SyncDir(dir)
}

func (f *faultFS) Lock(name string) (io.Closer, error) {
	if err := f.check(opLock, name); err != nil {
		return nil, err
	}
	return f.OSFS.Lock(name)
}

type faultFile struct {
	File
	fs   *faultFS
	name string
}

func (f *faultFile) Write(b []byte) (int, error) {
	if err := f.fs.check(opWrite, f.name); err != nil {
		return 0, err
	}
	return f.File.Write(b)
}

func (f *faultFile) Sync() error {
	if err := f.fs.check(opSync, f.name); err != nil {
		return err
	}
	if f.fs.noSync {
		return nil
	}
	return f.File.Sync()
}

func (f *faultFile) Close() error {
	err := f.File.Close()
	if ferr := f.fs.check(opClose, f.name); ferr != nil {
		return ferr
	}
	return err
}

// memStore is an in-memory LeaseStore with fault injection, a gate that
// holds leases (a slow disk) and an optional override of the ranges it
// returns (a buggy store). Safe for concurrent use.
type memStore struct {
	mu       sync.Mutex
	bound    bool
	b        Binding
	lo, hi   uint64
	next     uint64
	fail     error
	gate     chan struct{} // when non-nil, Lease waits for a receive from it
	override func(start, end uint64) (uint64, uint64)
	leases   int
	closed   bool
	// strict makes Bind on a store without a key space fail, as every
	// real store does. By default a memStore stands for a key space Init
	// created just before (Bind records the binding), which the many
	// generator tests that are not about the lifecycle rely on.
	strict bool
}

func newMemStore() *memStore { return &memStore{} }

func (m *memStore) Create(_ context.Context, b Binding) (Partition, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.bound {
		return Partition{}, fmt.Errorf("%w: mem store", ErrKeySpaceExists)
	}
	m.lo, m.hi = NodePartition(b.Digits, b.Node)
	m.next = m.lo
	m.bound, m.b = true, b
	return Partition{Lo: m.lo, Hi: m.hi, Next: m.next, Created: true}, nil
}

func (m *memStore) Bind(_ context.Context, b Binding) (Partition, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.bound && m.strict {
		return Partition{}, fmt.Errorf("%w: mem store", ErrStateMissing)
	}
	if m.bound && m.b != b {
		return Partition{}, fmt.Errorf("%w: mem store", ErrBindingChanged)
	}
	created := !m.bound
	if !m.bound {
		m.lo, m.hi = NodePartition(b.Digits, b.Node)
		m.next = m.lo
	}
	m.bound, m.b = true, b
	return Partition{Lo: m.lo, Hi: m.hi, Next: m.next, Created: created}, nil
}

func (m *memStore) Lease(ctx context.Context, n uint64) (uint64, uint64, error) {
	m.mu.Lock()
	gate := m.gate
	m.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return 0, 0, ErrClosed
	case m.fail != nil:
		return 0, 0, m.fail
	case m.next >= m.hi:
		return 0, 0, fmt.Errorf("%w: mem store", ErrExhausted)
	}
	start, end := m.next, m.next+min(n, m.hi-m.next)
	m.next = end
	m.leases++
	if m.override != nil {
		start, end = m.override(start, end)
	}
	return start, end, nil
}

func (m *memStore) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

func (m *memStore) setFail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = err
}

func (m *memStore) setGate(g chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gate = g
}

func (m *memStore) hwm() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.next
}

func (m *memStore) leaseCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.leases
}

// withFill replaces the permutation of blocks (see options.fill).
func withFill(f func(p *Permutation, dst []uint64, c uint64)) Option {
	return func(o *options) { o.fill = f }
}

// identityFill maps counter c to key offset + c: unique like π, but free.
func identityFill(p *Permutation, dst []uint64, c uint64) {
	for i := range dst {
		dst[i] = p.offset + c + uint64(i)
	}
}

// fullDomainFill is the block fill for tests that issue a whole domain: the
// real permutation, except under the race detector, which slows it ~30-fold;
// π's bijection has its own exhaustive test, and what the race detector
// checks here is the concurrency of the generator, which the fill does not
// touch.
func fullDomainFill() Option {
	if raceEnabled {
		return withFill(identityFill)
	}
	return withFill((*Permutation).FillKeys)
}
