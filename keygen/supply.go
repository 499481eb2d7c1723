package keygen

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Retry delays after a failed lease: doubling from retryMin to retryMax, back
// to retryMin after a success. Failing stores are typically full or broken
// disks: retrying faster only adds load, and recovery is noticed within
// retryMax.
const (
	retryMin = 10 * time.Millisecond
	retryMax = time.Second
)

// maxChunk bounds the keys in one chunk: the slow path (a mutex, a channel
// receive and a few shared atomics, ~100–300 ns) runs once per chunk, so at
// 1024 it costs well under 0.5 ns per key. Chunks are also at most
// BlockSize/stripes, so the keys parked in stripes never exceed a block.
const maxChunk = 1024

// errNotReady is Next's error when nothing is buffered and no lease has
// failed: the next block is still being leased (a slow disk).
var errNotReady = fmt.Errorf("%w: the next block is not leased yet (lease store slow)", ErrUnavailable)

// cacheLinePad is the size hot atomics are padded to: two 64-byte cache lines,
// because x86 prefetchers fetch lines in adjacent pairs, so two atomics 64
// bytes apart still ping-pong between cores.
const cacheLinePad = 128

// chunk is a run of permuted keys handed out through one atomic index.
// Every key is handed out at most once because next only grows and key i is
// returned only to the caller whose increment produced i.
type chunk struct {
	next atomic.Uint64 // index of the next key to hand out; grows past len(keys) once drained
	keys []uint64      // immutable once the chunk is queued
	// Pad: chunks of a block are allocated as one array, and each chunk may
	// be the current one of a different stripe (core); keep every next on
	// its own pair of cache lines.
	_ [cacheLinePad - 32]byte
}

func (c *chunk) left() uint64 {
	n, i := uint64(len(c.keys)), c.next.Load()
	if i >= n {
		return 0
	}
	return n - i
}

// leaseFailure is a failed lease, recorded for Next's error and Stats.
type leaseFailure struct {
	err error // wraps ErrUnavailable (or ErrExhausted) and the store's error
	at  time.Time
}

// supply turns leases into a queue of permuted chunks. It owns the refill
// goroutine, which keeps at least one block's worth of chunks queued; Next
// (of the Generator or the test twin) takes chunks without blocking. Safe for
// concurrent use.
type supply struct {
	cfg       Config // with defaults, Secret cleared
	perm      *Permutation
	store     LeaseStore
	ownsStore bool
	log       *zap.Logger
	clock     Clock
	allocKeys func(n uint64) []uint64
	fillKeys  func(p *Permutation, dst []uint64, c uint64)
	binding   Binding
	lateBind  bool                      // WithLateBind: New does not wait for the store
	partP     atomic.Pointer[Partition] // as bound; nil until Bind succeeded (late binding)
	chunkSize uint64
	perBlock  int // chunks in a full block

	// queue holds permuted chunks, oldest first. Only the refill loop sends,
	// and only while fewer than perBlock chunks are queued, so with capacity
	// 2·perBlock a send never blocks.
	queue     chan *chunk
	wakeC     chan struct{} // capacity 1: the queue fell below one block
	stop      chan struct{} // closed by close
	done      chan struct{} // closed when the refill loop returns
	ctx       context.Context
	cancel    context.CancelFunc // cancels a lease in progress on close
	started   bool
	closeOnce sync.Once
	closeErr  error

	// Written by the refill loop (and by newSupply before it starts), read
	// by Next's slow path and Stats.
	final       atomic.Pointer[leaseFailure] // set once the partition is fully leased (wraps ErrExhausted)
	failing     atomic.Pointer[leaseFailure] // set while the store fails; nil once a lease succeeds
	lastErr     atomic.Pointer[leaseFailure] // most recent failure, kept for Stats
	lastEnd     atomic.Uint64                // end of the last lease (the high-water mark we know of)
	queued      atomic.Int64                 // keys in queue
	taken       atomic.Uint64                // keys in chunks taken from queue
	blocks      atomic.Uint64
	leaseErrors atomic.Uint64
	lastTook    atomic.Int64 // duration of the last lease attempt, ns

	// Owned by the refill loop.
	backoff   time.Duration
	warnedPct int
}

// newSupply validates cfg, opens the default store if store is nil, loads
// the secret, binds the store to its existing key space and leases and
// permutes the first block. It does not start the refill loop (start does).
// It never creates a key space or a secret: that is Init's job.
func newSupply(cfg Config, store LeaseStore, stripes int, opts []Option) (_ *supply, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	o := buildOptions(opts)
	owns := false
	if store == nil {
		if cfg.Dir == "" {
			return nil, fmt.Errorf("%w: no lease store given and no data directory for the file store", ErrInvalidConfig)
		}
		fstore, err := NewFileStore(cfg.Dir, WithFS(o.fs))
		if err != nil {
			return nil, err
		}
		store, owns = fstore, true
	}
	defer func() {
		if err != nil && owns {
			_ = store.Close()
		}
	}()

	secret, _, err := resolveSecret(cfg, o.fs, false)
	if errors.Is(err, errNoSecretFile) {
		return nil, missingSecret(cfg, store, o.fs)
	}
	if err != nil {
		return nil, err
	}
	perm, err := NewPermutation(secret, cfg.Digits)
	if err != nil {
		return nil, err
	}
	cfg.Secret = nil

	ctx, cancel := context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			cancel()
		}
	}()
	b := Binding{Digits: cfg.Digits, Node: cfg.Node, Fingerprint: perm.Fingerprint()}
	chunkSize := min(maxChunk, max(1, cfg.BlockSize/uint64(stripes)))
	perBlock := int((cfg.BlockSize + chunkSize - 1) / chunkSize)
	s := &supply{
		cfg:       cfg,
		perm:      perm,
		store:     store,
		ownsStore: owns,
		log:       o.log,
		clock:     o.clock,
		allocKeys: o.alloc,
		fillKeys:  o.fill,
		binding:   b,
		lateBind:  o.lateBind,
		chunkSize: chunkSize,
		perBlock:  perBlock,
		queue:     make(chan *chunk, 2*perBlock),
		wakeC:     make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		ctx:       ctx,
		cancel:    cancel,
		warnedPct: -1,
	}
	if err := s.bind(); err != nil {
		if !s.lateBind || !errors.Is(err, ErrUnavailable) {
			return nil, err
		}
		return s, nil // the refill loop binds once the store answers
	}
	if err := s.leaseBlock(); err != nil && s.final.Load() == nil {
		if s.lateBind && errors.Is(err, ErrUnavailable) {
			return s, nil
		}
		return nil, fmt.Errorf("keygen: first lease: %w", err)
	}
	return s, nil
}

// partition returns the partition as bound (zero before Bind succeeded).
func (s *supply) partition() Partition {
	if p := s.partP.Load(); p != nil {
		return *p
	}
	return Partition{}
}

// bind binds the store to the key space, checks what it reports and
// publishes the partition. A failure is recorded like a failed lease (Next
// and Stats report it) and returned.
func (s *supply) bind() error {
	part, err := s.store.Bind(s.ctx, s.binding)
	if err == nil && (part.Lo >= part.Hi || part.Hi > s.perm.Size() || part.Next < part.Lo || part.Next > part.Hi) {
		err = fmt.Errorf("%w: store bound to counters [%d, %d) next %d, domain [0, %d)", ErrBadLease, part.Lo, part.Hi, part.Next, s.perm.Size())
	}
	if fstore, ok := s.store.(*FileStore); ok && err == nil {
		if rec, ok := fstore.RecordedMark(s.binding); ok && rec > part.Next {
			err = fmt.Errorf("%w: %s says the next counter is %d, but this directory already made counters up to %d durable (%s): the lease state was put back from an older copy, and starting from it would reissue the keys issued since. Move its mark forward by at least %d counters (more if keys were issued after that record), with a skip",
				ErrStateStale, filepath.Join(fstore.Dir(), StateFile), part.Next, rec, MarkFile, rec-part.Next)
		}
	}
	if err != nil {
		if s.ctx.Err() == nil && s.lateBind {
			s.leaseErrors.Add(1)
			f := &leaseFailure{err: fmt.Errorf("%w: %w (not attached to the key space yet): %w", ErrUnavailable, ErrStoreDown, err), at: s.clock.Now()}
			s.lastErr.Store(f)
			s.failing.Store(f)
			s.log.Error("session keys: cannot attach to the key space yet", zap.Error(err))
		}
		return err
	}
	s.lastEnd.Store(part.Next)
	s.partP.Store(&part)
	s.log.Info("session keys: data bound",
		zap.Int("digits", s.cfg.Digits), zap.Int("node", s.cfg.Node.ID), zap.Int("nodes", s.cfg.Node.Count),
		zap.Uint64("lo", part.Lo), zap.Uint64("hi", part.Hi), zap.Uint64("next", part.Next),
		zap.Stringer("fingerprint", s.perm.Fingerprint()), zap.Bool("created", part.Created))
	if part.Rebound {
		s.log.Warn("session keys: unused data directory rebound to a new secret or digit count",
			zap.Int("digits", s.cfg.Digits), zap.Stringer("fingerprint", s.perm.Fingerprint()))
	}
	return nil
}

// start starts the refill loop.
func (s *supply) start() {
	s.started = true
	go s.run()
}

// close stops the refill loop (cancelling a lease in progress), waits for it
// and closes the store if newSupply opened it. Idempotent.
func (s *supply) close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		close(s.stop)
		if s.started {
			<-s.done
		}
		if s.ownsStore {
			s.closeErr = s.store.Close()
		}
	})
	return s.closeErr
}

// run is the refill loop: keep a block queued, retry failed leases after a
// backoff, stop on close.
func (s *supply) run() {
	defer close(s.done)
	var retry <-chan time.Time
	for {
		if retry == nil {
			retry = s.fill()
		}
		select {
		case <-s.stop:
			return
		case <-s.wakeC:
		case <-retry:
			retry = nil
		}
	}
}

// fill leases blocks until at least one block is queued. After a failed lease
// it returns the channel to wait on before the next attempt.
func (s *supply) fill() <-chan time.Time {
	for s.final.Load() == nil && len(s.queue) < s.perBlock {
		lease := s.leaseBlock
		if s.partP.Load() == nil {
			lease = s.bind
		}
		if err := lease(); err != nil {
			if s.final.Load() != nil || s.ctx.Err() != nil {
				return nil
			}
			d := s.backoff
			s.backoff = min(max(2*s.backoff, retryMin), retryMax)
			if d == 0 {
				d = retryMin
			}
			return s.clock.NewTimer(d).C()
		}
		s.backoff = 0
	}
	return nil
}

// wake asks the refill loop to top up the queue, without blocking.
func (s *supply) wake() {
	select {
	case s.wakeC <- struct{}{}:
	default:
	}
}

// take returns the oldest queued chunk, or nil if none is queued. It never
// blocks.
func (s *supply) take() *chunk {
	select {
	case c := <-s.queue:
		n := len(c.keys)
		s.queued.Add(-int64(n))
		s.taken.Add(uint64(n))
		if len(s.queue) < s.perBlock {
			s.wake()
		}
		return c
	default:
		return nil
	}
}

// failure is Next's error once nothing is buffered. It never allocates.
func (s *supply) failure() error {
	if f := s.final.Load(); f != nil {
		return f.err
	}
	select {
	case <-s.stop:
		return ErrClosed
	default:
	}
	if f := s.failing.Load(); f != nil {
		return f.err
	}
	return errNotReady
}

// leaseBlock leases one block, checks it, permutes it and queues its chunks.
func (s *supply) leaseBlock() error {
	t0 := s.clock.Now()
	start, end, err := s.store.Lease(s.ctx, s.cfg.BlockSize)
	s.lastTook.Store(int64(s.clock.Now().Sub(t0)))
	if err == nil {
		err = s.checkLease(start, end)
	}
	if err != nil {
		switch {
		case errors.Is(err, ErrExhausted):
			s.exhausted(err)
		case s.ctx.Err() != nil: // closing
		default:
			s.leaseErrors.Add(1)
			f := &leaseFailure{err: fmt.Errorf("%w: %w: %w", ErrUnavailable, ErrStoreDown, err), at: s.clock.Now()}
			s.lastErr.Store(f)
			s.failing.Store(f)
			s.log.Error("session keys: lease failed", zap.Error(err),
				zap.Int64("buffered", s.queued.Load()), zap.Uint64("attempt_errors", s.leaseErrors.Load()))
		}
		return err
	}

	keys := s.allocKeys(end - start)
	s.fillKeys(s.perm, keys, start)
	chunks := make([]chunk, (uint64(len(keys))+s.chunkSize-1)/s.chunkSize)
	for i := range chunks {
		lo := uint64(i) * s.chunkSize
		chunks[i].keys = keys[lo:min(lo+s.chunkSize, uint64(len(keys)))]
	}
	s.lastEnd.Store(end)
	s.blocks.Add(1)
	s.queued.Add(int64(len(keys)))
	for i := range chunks {
		select {
		case s.queue <- &chunks[i]:
		case <-s.stop:
			return ErrClosed
		}
	}
	if s.failing.Swap(nil) != nil {
		s.log.Info("session keys: lease store recovered", zap.Uint64("start", start), zap.Uint64("end", end))
	}
	s.warnIfLow()
	if part := s.partition(); end == part.Hi {
		s.exhausted(fmt.Errorf("%w: node %d of %d leased the last of its counters [%d, %d)",
			ErrExhausted, s.cfg.Node.ID, s.cfg.Node.Count, part.Lo, part.Hi))
	}
	return nil
}

// checkLease refuses a range that could repeat or stray: it must start at or
// after the end of the previous one, stay in the partition and hold at most
// BlockSize counters.
func (s *supply) checkLease(start, end uint64) error {
	prev, part := s.lastEnd.Load(), s.partition()
	if start < prev || end <= start || end > part.Hi || end-start > s.cfg.BlockSize {
		return fmt.Errorf("%w: got [%d, %d), expected at most %d counters from %d within [%d, %d)",
			ErrBadLease, start, end, s.cfg.BlockSize, prev, part.Lo, part.Hi)
	}
	return nil
}

func (s *supply) exhausted(err error) {
	if s.final.Load() != nil {
		return
	}
	// Logged before it takes effect, so that whoever sees ErrExhausted can
	// also find the log entry.
	s.log.Error("session keys: key space exhausted; ALLOCATE fails once the buffered keys are used",
		zap.Error(err), zap.Int64("buffered", s.queued.Load()))
	s.final.Store(&leaseFailure{err: err, at: s.clock.Now()})
	s.failing.Store(nil)
}

// warnIfLow logs a warning each time the leased fraction of the partition
// passes another whole percent at or above WarnAt.
func (s *supply) warnIfLow() {
	part := s.partition()
	size := part.Hi - part.Lo
	used := float64(s.lastEnd.Load()-part.Lo) / float64(size)
	pct := int(used * 100)
	if used < s.cfg.WarnAt || pct <= s.warnedPct {
		return
	}
	s.warnedPct = pct
	s.log.Warn("session keys: key space running low",
		zap.Float64("used", used), zap.Uint64("left", part.Hi-s.lastEnd.Load()+uint64(max(0, s.queued.Load()))),
		zap.Int("digits", s.cfg.Digits), zap.Int("node", s.cfg.Node.ID))
}

// Stats is a snapshot of a Generator's counters, for metrics and sbctl.
type Stats struct {
	// Issued is the number of keys Next returned since New (approximate while
	// Next runs concurrently).
	Issued uint64
	// Buffered is the number of keys leased and permuted, not yet issued.
	Buffered uint64
	// Left is the number of keys this node can still issue: Buffered plus
	// the counters of its partition never leased (keys lost to earlier
	// restarts are not left). Export it as a gauge.
	Left uint64
	// Used is the fraction of the partition no longer available, 1 − Left/size.
	Used float64
	// Blocks is the number of leases granted since New.
	Blocks uint64
	// LeaseErrors is the number of failed lease attempts since New.
	LeaseErrors uint64
	// LastLeaseError is the most recent lease failure since New (nil if
	// none), and LastLeaseErrorAt when it happened.
	LastLeaseError   error
	LastLeaseErrorAt time.Time
	// LastLeaseDuration is how long the last lease attempt took.
	LastLeaseDuration time.Duration
	// Failing is true while the lease store fails: once Buffered reaches
	// zero, Next returns ErrUnavailable.
	Failing bool
	// Exhausted is true once the partition is fully leased: once Buffered
	// reaches zero, Next returns ErrExhausted.
	Exhausted bool
	// Bound is false while a generator opened WithLateBind has not yet
	// attached to its key space (the store did not answer): Next returns
	// ErrUnavailable, Left and Used are zero.
	Bound bool
}

// stats fills Stats; residue is the number of keys still held by callers'
// current chunks (stripes of the Generator, the twin's current chunk).
func (s *supply) stats(residue uint64) Stats {
	taken := s.taken.Load()
	issued := taken - min(taken, residue)
	// Left counts from the mark at New minus what was issued since, rather
	// than from the refill loop's counters, so it only moves when keys are
	// issued (a gauge that never jumps up while a lease lands).
	part, bound := s.partition(), s.partP.Load() != nil
	left := part.Hi - part.Next
	left -= min(left, issued)
	st := Stats{
		Issued:            issued,
		Buffered:          uint64(max(0, s.queued.Load())) + residue,
		Left:              left,
		Blocks:            s.blocks.Load(),
		LeaseErrors:       s.leaseErrors.Load(),
		LastLeaseDuration: time.Duration(s.lastTook.Load()),
		Failing:           s.failing.Load() != nil,
		Exhausted:         s.final.Load() != nil,
	}
	st.Bound = bound
	if bound {
		st.Used = 1 - float64(st.Left)/float64(part.Hi-part.Lo)
	}
	if f := s.lastErr.Load(); f != nil {
		st.LastLeaseError, st.LastLeaseErrorAt = f.err, f.at
	}
	return st
}

// missingSecret is newSupply's error when neither the config nor <Dir> holds
// a secret: no key space (ErrStateMissing) if the file store holds no lease
// state either, else a lost secret (ErrSecret).
func missingSecret(cfg Config, store LeaseStore, fsys FS) error {
	path := filepath.Join(cfg.Dir, SecretFile)
	if fstore, ok := store.(*FileStore); ok {
		state := filepath.Join(fstore.Dir(), StateFile)
		if _, err := fsys.Stat(state); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: neither %s nor %s exists and the config sets no secret: this data directory holds no key space; create it explicitly (switchboard -init-keys)",
				ErrStateMissing, state, path)
		}
	}
	return fmt.Errorf("%w: %s does not exist and the config sets no secret, but the key space's lease state does: the secret it was created with is lost. Put that secret back (it never changes, so any copy of it will do); a new secret would make new keys collide with issued ones",
		ErrSecret, path)
}
