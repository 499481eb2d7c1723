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
	if g.closed.Load() {
		g.mu.Unlock()
		return 0, ErrClosed
	}
	if c := g.s.take(); c != nil {
		g.cur, g.i = c, 1
		g.mu.Unlock()
		return c.keys[0], nil
	}
	g.mu.Unlock()
	return 0, g.s.failure()
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
