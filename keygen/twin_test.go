package keygen

import (
	"sync"
	"sync/atomic"
)

// mutexGen is the reference twin of Generator (the uber-go/ratelimit habit):
// the same supply (leases, permutation, refill loop, errors), but keys are
// handed out under one mutex instead of striped atomics. The shared test table
// runs against both, and the benchmarks compare them.
type mutexGen struct {
	s      *supply
	mu     sync.Mutex
	cur    *chunk // guarded by mu
	i      int    // guarded by mu: index of the next key of cur
	closed atomic.Bool
}

func newMutexGen(cfg Config, store LeaseStore, opts ...Option) (*mutexGen, error) {
	s, err := newSupply(cfg, store, 1, opts)
	if err != nil {
		return nil, err
	}
	g := &mutexGen{s: s, cur: new(chunk)}
	s.start()
	return g, nil
}

func (g *mutexGen) Next() (uint64, error) {
	g.mu.Lock()
	if g.i < len(g.cur.keys) {
		k := g.cur.keys[g.i]
		g.i++
		g.mu.Unlock()
		return k, nil
	}
	k, err := g.nextChunkLocked()
	g.mu.Unlock()
	return k, err
}

// nextChunkLocked moves to the next queued chunk, or reports why there is
// none (looking at the queue once more after reading the reason, as
// Generator.slow does). g.mu is held.
func (g *mutexGen) nextChunkLocked() (uint64, error) {
	if g.closed.Load() {
		return 0, ErrClosed
	}
	c := g.s.take()
	if c == nil {
		err := g.s.failure()
		if c = g.s.take(); c == nil {
			return 0, err
		}
	}
	g.cur, g.i = c, 1
	return c.keys[0], nil
}

func (g *mutexGen) Stats() Stats {
	g.mu.Lock()
	residue := uint64(len(g.cur.keys) - g.i)
	g.mu.Unlock()
	return g.s.stats(residue)
}

func (g *mutexGen) Permutation() *Permutation { return g.s.perm }

func (g *mutexGen) Close() error {
	g.closed.Store(true)
	err := g.s.close()
	g.mu.Lock()
	g.cur, g.i = new(chunk), 0
	g.mu.Unlock()
	return err
}
