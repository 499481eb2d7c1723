package keygen

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// The hot-path benchmarks measure Next as the daemon calls it — an atomic
// increment and a slice read per key, a chunk swap every maxChunk (1024) keys,
// a block swap every block — with the refill goroutine running, but with its
// work made nearly free: the largest block, keys written once into one shared
// buffer (so keys repeat across blocks, which only a benchmark may do), no
// permutation. A loop that does nothing but call Next runs at ~10^8 keys/s;
// the real refill (BenchmarkPermuteBlock: ~135 ns per key, and
// BenchmarkFileStoreLease) serves ~7·10^6 keys/s per core, far above what the
// daemon asks for, but not that. misses/op counts the times Next found
// nothing ready (the loop then parks briefly so the refill can run); it must
// stay near zero for ns/op to describe the hot path.

var benchSink atomic.Uint64

func benchSource(b *testing.B, im impl) source {
	b.Helper()
	shared := make([]uint64, MaxBlockSize)
	identityFill(mustPerm(b, testSecret, 18), shared, 0)
	g, err := im.open(Config{Digits: 18, BlockSize: MaxBlockSize, Secret: testSecret}, newMemStore(),
		func(o *options) {
			o.alloc = func(n uint64) []uint64 { return shared[:n] }
			o.fill = func(*Permutation, []uint64, uint64) {}
		})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = g.Close() })
	return g
}

// nextBench returns a key, retrying (and counting a miss) while the refill
// lags.
func nextBench(b *testing.B, g source, misses *int) uint64 {
	for {
		k, err := g.Next()
		if err == nil {
			return k
		}
		if !errors.Is(err, errNotReady) {
			b.Fatal(err)
		}
		*misses++
		time.Sleep(time.Microsecond) // park: the refill goroutine may need this P

	}
}

func benchNext(b *testing.B, im impl) {
	g := benchSource(b, im)
	misses := 0
	var sum uint64
	b.ReportAllocs()
	for b.Loop() {
		sum += nextBench(b, g, &misses)
	}
	benchSink.Add(sum)
	b.ReportMetric(float64(misses)/float64(b.N), "misses/op")
}

func benchNextParallel(b *testing.B, im impl) {
	g := benchSource(b, im)
	var misses atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		m := 0
		var sum uint64
		for pb.Next() {
			sum += nextBench(b, g, &m)
		}
		benchSink.Add(sum)
		misses.Add(int64(m))
	})
	b.ReportMetric(float64(misses.Load())/float64(b.N), "misses/op")
}

func BenchmarkNext(b *testing.B)              { benchNext(b, impls[0]) }
func BenchmarkNextParallel(b *testing.B)      { benchNextParallel(b, impls[0]) }
func BenchmarkNextMutex(b *testing.B)         { benchNext(b, impls[1]) }
func BenchmarkNextMutexParallel(b *testing.B) { benchNextParallel(b, impls[1]) }

// BenchmarkPermuteBlock permutes one default block (4096 counters, 9 digits)
// the way the refill goroutine does; ns/key is the background cost per key.
func BenchmarkPermuteBlock(b *testing.B) {
	p := mustPerm(b, testSecret, 9)
	dst := make([]uint64, DefaultBlockSize)
	b.ReportAllocs()
	c := uint64(0)
	for b.Loop() {
		p.FillKeys(dst, c)
		c = (c + DefaultBlockSize) % (p.Size() - DefaultBlockSize)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*DefaultBlockSize), "ns/key")
}

// BenchmarkPermuteBlockScalar permutes the same block key by key (one
// Feistel chain at a time), for comparison with the lanes of FillKeys.
func BenchmarkPermuteBlockScalar(b *testing.B) {
	p := mustPerm(b, testSecret, 9)
	dst := make([]uint64, DefaultBlockSize)
	s := p.initScratch(new(scratch))
	b.ReportAllocs()
	c := uint64(0)
	for b.Loop() {
		for i := range dst {
			dst[i] = p.offset + p.encrypt(c+uint64(i), s)
		}
		c = (c + DefaultBlockSize) % (p.Size() - DefaultBlockSize)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*DefaultBlockSize), "ns/key")
}

// BenchmarkFileStoreLease is one durable lease on the real disk under
// t.TempDir() (write, fsync, rename, fsync of the directory).
func BenchmarkFileStoreLease(b *testing.B) {
	s, err := NewFileStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Bind(ctx, testBinding(18, NodeConfig{Count: 1})); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.Lease(ctx, DefaultBlockSize); err != nil {
			b.Fatal(err)
		}
	}
}
