package keygen

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"

	"switchboard/internal/atomicfile"
)

// Names of the files keygen keeps in its data directory.
const (
	// StateFile holds the binding and the durable high-water mark (text,
	// with a CRC-32C; see docs/architecture.md). Mode 0600.
	StateFile = "keygen.lease"
	// SecretFile holds the generated secret in hex. Mode 0600, checked.
	SecretFile = "keygen.secret"
	// LockFile is flock(2)ed by the FileStore that owns the directory.
	LockFile = "keygen.lock"
	// MarkFile is a second, best-effort record of StateFile's content,
	// written (not fsynced) after every durable change of it, so it never
	// holds a higher mark than StateFile except when StateFile alone was
	// replaced by an older copy: a start then refuses it (ErrStateStale).
	// A lost, torn or foreign MarkFile is ignored. Mode 0600.
	MarkFile = "keygen.mark"
)

// FileStore is the LeaseStore of a single machine: the high-water mark lives
// in <dir>/keygen.lease, rewritten atomically and durably (temporary file,
// fsync, rename, fsync of the directory) on every lease, before the lease is
// returned. An exclusive flock on <dir>/keygen.lock keeps a second store (in
// this process or another) off the directory.
//
// FileStore is safe for concurrent use; Bind, Lease and Close are serialised
// because each is a read-modify-write of the state file. A Lease waiting for
// another gives up when its context ends.
type FileStore struct {
	dir  string
	fsys FS
	sem  chan struct{} // capacity 1: the token to run Bind, Lease or Close

	// Guarded by sem.
	lock  io.Closer // the directory lock; nil once closed
	bound bool
	st    fileState
}

// fileState is the content of StateFile.
type fileState struct {
	b            Binding
	lo, hi, next uint64
}

var _ LeaseStore = (*FileStore)(nil)

// NewFileStore opens (creating it with mode 0700 if needed, durably: see
// mkdirDurable) the data directory dir and locks it. Opening creates no key
// space: Bind fails on a directory without one, and only Create makes one.
// Options: WithFS (the rest are ignored). Bind before leasing; Close to
// release the lock.
func NewFileStore(dir string, opts ...Option) (*FileStore, error) {
	o := buildOptions(opts)
	if dir == "" {
		return nil, fmt.Errorf("%w: file store needs a data directory", ErrInvalidConfig)
	}
	if err := mkdirDurable(o.fs, dir); err != nil {
		return nil, fmt.Errorf("keygen: data directory %s: %w", dir, err)
	}
	l, err := o.fs.Lock(filepath.Join(dir, LockFile))
	if err != nil {
		if errors.Is(err, ErrLocked) {
			return nil, fmt.Errorf("%w: %s (another switchboard running on the same data directory would issue the same keys)", ErrLocked, dir)
		}
		return nil, fmt.Errorf("keygen: lock %s: %w", filepath.Join(dir, LockFile), err)
	}
	s := &FileStore{dir: dir, fsys: o.fs, sem: make(chan struct{}, 1), lock: l}
	return s, nil
}

// Dir returns the data directory.
func (s *FileStore) Dir() string { return s.dir }

func (s *FileStore) acquire(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *FileStore) release() { <-s.sem }

// Bind implements LeaseStore. A second Bind with the same binding is a no-op.
// A directory without StateFile fails with ErrStateMissing: Bind never
// creates a key space.
func (s *FileStore) Bind(ctx context.Context, b Binding) (Partition, error) {
	return s.bind(ctx, b, false)
}

// Create implements LeaseStore: it writes a new StateFile for b (high-water
// mark at the partition's first counter) where none exists, and refuses
// (ErrKeySpaceExists) where one does, except one under which no counter was
// ever leased and that records a different binding (Init was interrupted
// before it stored a new secret), which it replaces.
func (s *FileStore) Create(ctx context.Context, b Binding) (Partition, error) {
	return s.bind(ctx, b, true)
}

func (s *FileStore) bind(ctx context.Context, b Binding, create bool) (Partition, error) {
	if err := s.acquire(ctx); err != nil {
		return Partition{}, err
	}
	defer s.release()
	if s.lock == nil {
		return Partition{}, ErrClosed
	}
	if b.Digits < MinDigits || b.Digits > MaxDigits {
		return Partition{}, fmt.Errorf("%w: digits %d", ErrInvalidConfig, b.Digits)
	}
	if err := b.Node.validate(b.Digits); err != nil {
		return Partition{}, err
	}
	if s.bound {
		if create {
			return Partition{}, fmt.Errorf("%w: file store already bound to %s", ErrKeySpaceExists, describe(s.st.b))
		}
		if s.st.b != b {
			return Partition{}, fmt.Errorf("keygen: file store already bound to %s", describe(s.st.b))
		}
		return Partition{Lo: s.st.lo, Hi: s.st.hi, Next: s.st.next}, nil
	}
	lo, hi := NodePartition(b.Digits, b.Node)
	fresh := fileState{b: b, lo: lo, hi: hi, next: lo}
	path := filepath.Join(s.dir, StateFile)
	data, err := s.fsys.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && create:
		if err := atomicfile.Write(s.fsys, path, fresh.encode(), 0o600); err != nil {
			return Partition{}, fmt.Errorf("keygen: create lease state: %w", err)
		}
		s.st, s.bound = fresh, true
		s.record()
		return Partition{Lo: lo, Hi: hi, Next: lo, Created: true}, nil
	case errors.Is(err, fs.ErrNotExist):
		return Partition{}, fmt.Errorf("%w: %s does not exist, so this data directory holds no key space, or its high-water mark was lost (deleted, or a new or emptied directory); starting from counter %d would reissue every key issued before. Create the key space explicitly (switchboard -init-keys), skipping past every key issued if there were any",
			ErrStateMissing, path, lo)
	case err != nil:
		return Partition{}, fmt.Errorf("keygen: read lease state: %w", err)
	}
	old, err := decodeState(data)
	if err != nil {
		return Partition{}, fmt.Errorf("%w: %s: %v (never delete or hand-edit it: the high-water mark is what keeps keys unique; a copy from a backup is older than the keys issued since, so it must only be put back with a skip past them, see docs/operations.md)", ErrStateCorrupt, path, err)
	}
	if old.b == b {
		if create {
			return Partition{}, fmt.Errorf("%w: %s holds %s with next counter %d; it is kept as it is (to move its high-water mark forward, skip keys instead)",
				ErrKeySpaceExists, path, describe(old.b), old.next)
		}
		s.st, s.bound = old, true
		return Partition{Lo: lo, Hi: hi, Next: old.next}, nil
	}
	if old.next != old.lo {
		if create {
			return Partition{}, fmt.Errorf("%w: %s was used with %s and has issued keys; it is kept as it is",
				ErrKeySpaceExists, path, describe(old.b))
		}
		return Partition{}, fmt.Errorf("%w: %s was used with %s and has issued keys; the config asks for %s. Put back the previous settings (and secret), or create a key space in a new data directory",
			ErrBindingChanged, s.dir, describe(old.b), describe(b))
	}
	// No counter was ever leased under the old binding, so no key exists
	// that the new one could repeat (this happens when Init was interrupted
	// between recording the binding and storing a new secret).
	if err := atomicfile.Write(s.fsys, path, fresh.encode(), 0o600); err != nil {
		return Partition{}, fmt.Errorf("keygen: rebind lease state: %w", err)
	}
	s.st, s.bound = fresh, true
	s.record()
	return Partition{Lo: lo, Hi: hi, Next: lo, Created: create, Rebound: true}, nil
}

// record writes the bound state to MarkFile, after it was made durable in
// StateFile, unless MarkFile already records a higher mark for the same
// binding (a stale StateFile being skipped forward must not erase the
// evidence). Best effort: a failure only weakens the stale-state check.
func (s *FileStore) record() {
	if rec, ok := s.RecordedMark(s.st.b); ok && rec > s.st.next {
		return
	}
	_ = atomicfile.Replace(s.fsys, filepath.Join(s.dir, MarkFile), s.st.encode(), 0o600)
}

// RecordedMark returns the high-water mark MarkFile recorded for binding b,
// if it holds a valid record for b: the highest mark this directory is
// known to have made durable (a lower bound of the true one: the record is
// not fsynced).
func (s *FileStore) RecordedMark(b Binding) (next uint64, ok bool) {
	data, err := s.fsys.ReadFile(filepath.Join(s.dir, MarkFile))
	if err != nil {
		return 0, false
	}
	st, err := decodeState(data)
	if err != nil || st.b != b {
		return 0, false
	}
	return st.next, true
}

// Lease implements LeaseStore: it makes next+n the durable high-water mark
// before returning [next, next+n).
func (s *FileStore) Lease(ctx context.Context, n uint64) (start, end uint64, err error) {
	if err := s.acquire(ctx); err != nil {
		return 0, 0, err
	}
	defer s.release()
	switch {
	case s.lock == nil:
		return 0, 0, ErrClosed
	case !s.bound:
		return 0, 0, ErrNotBound
	case n == 0:
		return 0, 0, fmt.Errorf("%w: lease of 0 counters", ErrInvalidConfig)
	case s.st.next >= s.st.hi:
		return 0, 0, fmt.Errorf("%w: node %d of %d issued all %d counters of [%d, %d)",
			ErrExhausted, s.st.b.Node.ID, s.st.b.Node.Count, s.st.hi-s.st.lo, s.st.lo, s.st.hi)
	}
	start, end = s.st.next, s.st.next+min(n, s.st.hi-s.st.next)
	ns := s.st
	ns.next = end
	if err := atomicfile.Write(s.fsys, filepath.Join(s.dir, StateFile), ns.encode(), 0o600); err != nil {
		return 0, 0, fmt.Errorf("keygen: lease [%d, %d): %w", start, end, err)
	}
	s.st = ns
	s.record()
	return start, end, nil
}

// Close releases the directory lock. It waits for a Bind or Lease in
// progress and is idempotent.
func (s *FileStore) Close() error {
	s.sem <- struct{}{}
	defer s.release()
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close()
	s.lock = nil
	return err
}

func describe(b Binding) string {
	return fmt.Sprintf("%d-digit keys, node %d of %d, secret fingerprint %s", b.Digits, b.Node.ID, b.Node.Count, b.Fingerprint)
}

// State file format, version 1: fixed lines in a fixed order, then a
// CRC-32C (Castagnoli) of every byte before the crc line.
const stateMagic = "switchboard keygen lease state v1"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (st fileState) encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\ndigits %d\nnode %d %d\nfingerprint %s\nlo %d\nhi %d\nnext %d\n",
		stateMagic, st.b.Digits, st.b.Node.ID, st.b.Node.Count, st.b.Fingerprint, st.lo, st.hi, st.next)
	fmt.Fprintf(&b, "crc32c %08x\n", crc32.Checksum(b.Bytes(), castagnoli))
	return b.Bytes()
}

func decodeState(data []byte) (fileState, error) {
	var st fileState
	i := bytes.LastIndex(data, []byte("crc32c "))
	if i < 0 {
		return st, errors.New("no checksum line")
	}
	body, tail := data[:i], strings.TrimSuffix(string(data[i:]), "\n")
	sum, err := strconv.ParseUint(strings.TrimPrefix(tail, "crc32c "), 16, 32)
	if err != nil || len(tail) != len("crc32c ")+8 {
		return st, fmt.Errorf("bad checksum line %q", tail)
	}
	if crc32.Checksum(body, castagnoli) != uint32(sum) {
		return st, errors.New("checksum mismatch")
	}
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	want := []string{"", "digits", "node", "fingerprint", "lo", "hi", "next"}
	if len(lines) != len(want) || lines[0] != stateMagic {
		return st, errors.New("unknown format")
	}
	fields := make([][]string, len(lines))
	for k := 1; k < len(lines); k++ {
		f := strings.Fields(lines[k])
		n := 2
		if want[k] == "node" {
			n = 3
		}
		if len(f) != n || f[0] != want[k] {
			return st, fmt.Errorf("line %d: want %q", k+1, want[k])
		}
		fields[k] = f[1:]
	}
	num := func(s string) uint64 {
		v, perr := strconv.ParseUint(s, 10, 64)
		if perr != nil && err == nil {
			err = fmt.Errorf("bad number %q", s)
		}
		return v
	}
	st.b.Digits = int(num(fields[1][0]))
	st.b.Node = NodeConfig{ID: int(num(fields[2][0])), Count: int(num(fields[2][1]))}
	st.lo, st.hi, st.next = num(fields[4][0]), num(fields[5][0]), num(fields[6][0])
	if err != nil {
		return st, err
	}
	fp, herr := hex.DecodeString(fields[3][0])
	if herr != nil || len(fp) != len(st.b.Fingerprint) {
		return st, errors.New("bad fingerprint")
	}
	copy(st.b.Fingerprint[:], fp)
	if st.b.Digits < MinDigits || st.b.Digits > MaxDigits || st.b.Node.validate(st.b.Digits) != nil {
		return st, errors.New("bad digits or node")
	}
	if lo, hi := NodePartition(st.b.Digits, st.b.Node); st.lo != lo || st.hi != hi || st.next < lo || st.next > hi {
		return st, errors.New("range does not match digits and node")
	}
	return st, nil
}
