package keygen

import (
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// maxStripes bounds the stripes of a Generator.
const maxStripes = 64

// Generator issues session keys. Next is lock-free and allocation-free; one
// refill goroutine, owned by the Generator and stopped by Close, leases and
// permutes blocks ahead of need. A Generator is safe for concurrent use.
//
// Layout: keys reach callers through stripes. Each stripe points at its
// current chunk (a run of permuted keys with an atomic index), and a caller
// picks its stripe from the address of its own stack, which differs between
// goroutines and stays put for one goroutine, so goroutines running on
// different cores mostly touch different cache lines and Next scales with
// cores. Two goroutines that share a stripe only share an atomic counter:
// that costs contention, never correctness. When a stripe's chunk is drained
// the caller takes the next chunk from the supply's queue under the stripe's
// mutex (no I/O, never blocking); when the queue is empty it takes leftovers
// from other stripes, then fails with ErrUnavailable or ErrExhausted.
type Generator struct {
	s       *supply
	stripes []stripe // len is a power of two; each element is cacheLinePad bytes
	shift   uint     // 64 − log2(len(stripes)): the hash's top bits pick the stripe
	empty   *chunk   // the drained chunk stripes start from and return to on Close
	closed  atomic.Bool
}

// stripe is one lane to the keys. Padded so that the cur pointers of two
// stripes (read on every Next by goroutines on different cores) never share a
// cache line pair.
type stripe struct {
	cur atomic.Pointer[chunk] // never nil
	mu  sync.Mutex            // slow path only: serialises replacing cur
	_   [cacheLinePad - 16]byte
}

// New returns a Generator of the key space cfg describes, leasing from store;
// a nil store means a FileStore in cfg.Dir, opened here and closed by Close
// (a store passed in stays the caller's to close, after the Generator).
//
// New validates cfg, resolves the secret (Config.Secret, else
// <Dir>/keygen.secret, else a new one, stored after the store accepted its
// fingerprint), binds the store (refusing a changed secret, digit count or
// partition with ErrBindingChanged), leases and permutes the first block
// synchronously — so a broken disk fails New with a clear error — and starts
// the refill goroutine. A partition already used up is not an error: New
// succeeds and Next returns ErrExhausted.
func New(cfg Config, store LeaseStore, opts ...Option) (*Generator, error) {
	n := stripeCount(runtime.GOMAXPROCS(0))
	s, err := newSupply(cfg, store, n, opts)
	if err != nil {
		return nil, err
	}
	g := &Generator{
		s:       s,
		stripes: make([]stripe, n),
		shift:   uint(64 - bits.TrailingZeros(uint(n))),
		empty:   new(chunk),
	}
	for i := range g.stripes {
		g.stripes[i].cur.Store(g.empty)
	}
	s.start()
	return g, nil
}

// stripeCount is 4·procs rounded up to a power of two, at most maxStripes:
// enough that goroutines on different cores rarely share a stripe.
func stripeCount(procs int) int {
	n := 1
	for n < 4*procs && n < maxStripes {
		n *= 2
	}
	return n
}

// Next returns a new key. Errors: ErrUnavailable (nothing buffered and the
// lease store failing or slow; transient, wraps the store's error),
// ErrExhausted (this node's partition is used up; final), ErrClosed. It never
// waits for I/O or for the refill, never allocates, and never returns a key
// twice. The fast path is lock-free; once per chunk (≤ 1024 keys) it takes
// its stripe's mutex, held only for a non-blocking channel receive.
//
// At the very end of the key space, ErrExhausted may reach one caller while
// another is installing the last chunk; those keys are still issued to later
// calls. ErrExhausted is final once Stats().Buffered is zero.
func (g *Generator) Next() (uint64, error) {
	st := g.home()
	c := st.cur.Load()
	if i := c.next.Add(1) - 1; i < uint64(len(c.keys)) {
		return c.keys[i], nil
	}
	return g.slow(st)
}

// home returns the caller's stripe: a Fibonacci hash of the address of a
// stack variable. Goroutine stacks are at least 2 KiB and disjoint, so the
// address (shifted past the low 11 bits) identifies the goroutine well
// enough; it only changes if the stack moves. The uintptr is used as a
// number, never converted back to a pointer.
func (g *Generator) home() *stripe {
	var anchor byte
	h := uint64(uintptr(unsafe.Pointer(&anchor))) >> 11
	return &g.stripes[(h*0x9E3779B97F4A7C15)>>g.shift]
}

// slow runs when the caller's chunk is drained: install the next chunk, or
// take a leftover key from another stripe, or report why there is none.
func (g *Generator) slow(st *stripe) (uint64, error) {
	if k, ok, err := g.install(st); ok || err != nil {
		return k, err
	}
	// Nothing queued. Keys may still sit in other stripes' chunks (stripes
	// whose goroutines went quiet): hand those out before failing, so no
	// key is stranded when the store fails or the space ends.
	for i := range g.stripes {
		c := g.stripes[i].cur.Load()
		if c.left() > 0 {
			if i := c.next.Add(1) - 1; i < uint64(len(c.keys)) {
				return c.keys[i], nil
			}
		}
	}
	// The refill loop queues a block's chunks before it records success or
	// exhaustion, so with the reason read first, one more look at the queue
	// sees any chunk queued since the first look.
	err := g.s.failure()
	if k, ok, ierr := g.install(st); ok || ierr != nil {
		return k, ierr
	}
	return 0, err
}

// install returns a key from st's chunk if another caller refilled it, or
// takes the next chunk from the queue into st and returns its first key.
// ok is false when the queue is empty.
func (g *Generator) install(st *stripe) (key uint64, ok bool, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if c := st.cur.Load(); c.left() > 0 {
		if i := c.next.Add(1) - 1; i < uint64(len(c.keys)) {
			return c.keys[i], true, nil
		}
	}
	if g.closed.Load() {
		return 0, false, ErrClosed
	}
	c := g.s.take()
	if c == nil {
		return 0, false, nil
	}
	c.next.Store(1) // c is not visible to anyone else yet: key 0 is ours
	st.cur.Store(c)
	return c.keys[0], true, nil
}

// Stats returns a snapshot of the generator's counters.
func (g *Generator) Stats() Stats {
	var residue uint64
	for i := range g.stripes {
		residue += g.stripes[i].cur.Load().left()
	}
	return g.s.stats(residue)
}

// Permutation returns the permutation keys are drawn through (for tools and
// tests: Counter maps a key back to its counter).
func (g *Generator) Permutation() *Permutation { return g.s.perm }

// Partition returns the counter range the store leases this node from.
// It is zero until the store is bound (WithLateBind).
func (g *Generator) Partition() Partition { return g.s.partition() }

// Close stops the refill goroutine (a lease in progress is cancelled or
// finishes), closes the store if New opened it, and makes Next return
// ErrClosed. Buffered keys are discarded, as in a crash: they are never
// issued. Close is idempotent and safe to call concurrently with Next.
func (g *Generator) Close() error {
	g.closed.Store(true)
	err := g.s.close()
	for i := range g.stripes {
		st := &g.stripes[i]
		st.mu.Lock()
		st.cur.Store(g.empty)
		st.mu.Unlock()
	}
	return err
}
