package keygen

// HotPathBenchOptions is the refill seam of the hot-path benchmarks (see
// bench_test.go), for the benchmarks in package keygen_test that measure
// Next on other stores: keys written once into one shared buffer of
// MaxBlockSize, no permutation, so the refill keeps up with a loop that
// does nothing but call Next.
func HotPathBenchOptions() Option {
	shared := make([]uint64, MaxBlockSize)
	for i := range shared {
		shared[i] = KeyOffset(MaxDigits) + uint64(i)
	}
	return func(o *options) {
		o.alloc = func(n uint64) []uint64 { return shared[:n] }
		o.fill = func(*Permutation, []uint64, uint64) {}
	}
}

// ErrNotReady is Next's error while the next block is merely late.
var ErrNotReady = errNotReady
