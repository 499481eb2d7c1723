package keygen_test

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/internal/etcdtest"
	"switchboard/keygen"
	"switchboard/keygen/etcdstore"
)

// The etcd twins of BenchmarkNext and BenchmarkNextParallel: the same hot
// path (Generator.Next) and the same cheap refill, with blocks leased from a
// real etcd (in this process, on loopback) instead of the in-memory store.
// The store only changes the refill, so ns/op must match the in-memory
// figures (bench/results/keygen-etcd.txt).

var etcdSink atomic.Uint64

func etcdBenchGenerator(b *testing.B) *keygen.Generator {
	b.Helper()
	// SWITCHBOARD_BENCH_ETCD names an etcd in another process (devetcd),
	// so that the server's own work does not share this process's
	// scheduler and heap; without it, one runs in this process.
	endpoint := os.Getenv("SWITCHBOARD_BENCH_ETCD")
	prefix := fmt.Sprintf("/bench-%d/", time.Now().UnixNano())
	if endpoint == "" {
		endpoint = etcdtest.Start(b).Endpoint()
	}
	cli, err := etcdstore.Dial(etcdstore.ClientConfig{Endpoints: []string{endpoint}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cli.Close() })
	cfg := keygen.Config{Digits: 18, BlockSize: keygen.MaxBlockSize, Secret: []byte("switchboard-bench-secret-0123456789")}
	store, err := etcdstore.New(cli, etcdstore.Config{Prefix: prefix, MinBlock: keygen.MaxBlockSize, MaxBlock: keygen.MaxBlockSize}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	if _, err := keygen.Init(cfg, store, 0); err != nil {
		b.Fatal(err)
	}
	g, err := keygen.New(cfg, store, keygen.HotPathBenchOptions())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Close() })
	return g
}

func nextEtcd(b *testing.B, g *keygen.Generator, misses *int) uint64 {
	for {
		k, err := g.Next()
		if err == nil {
			return k
		}
		if !errors.Is(err, keygen.ErrUnavailable) { // late, or etcd slow under load: a miss
			b.Fatal(err)
		}
		*misses++
		time.Sleep(time.Microsecond)
	}
}

func BenchmarkNextEtcd(b *testing.B) { benchNextOn(b, etcdBenchGenerator(b)) }

// benchNextOn is the serial loop of BenchmarkNextEtcd and its file-store
// twin: one Next per iteration, misses counted.
func benchNextOn(b *testing.B, g *keygen.Generator) {
	misses := 0
	var sum uint64
	b.ReportAllocs()
	for b.Loop() {
		sum += nextEtcd(b, g, &misses)
	}
	etcdSink.Add(sum)
	b.ReportMetric(float64(misses)/float64(b.N), "misses/op")
}

func BenchmarkNextEtcdParallel(b *testing.B) {
	g := etcdBenchGenerator(b)
	var misses atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		m := 0
		var sum uint64
		for pb.Next() {
			sum += nextEtcd(b, g, &m)
		}
		etcdSink.Add(sum)
		misses.Add(int64(m))
	})
	b.ReportMetric(float64(misses.Load())/float64(b.N), "misses/op")
}

// BenchmarkNextFileTwin (adversarial review of issue 13) is
// BenchmarkNextEtcd with the file store in a temporary directory instead
// of etcd: the same generator options, block size and retry loop, so the
// two differ only by the store, as issue 13's "Next costs the same as with
// the file store" compares them.
func BenchmarkNextFileTwin(b *testing.B) {
	cfg := keygen.Config{Digits: 18, BlockSize: keygen.MaxBlockSize, Secret: []byte("switchboard-bench-secret-0123456789"), Dir: b.TempDir()}
	if _, err := keygen.Init(cfg, nil, 0); err != nil {
		b.Fatal(err)
	}
	g, err := keygen.New(cfg, nil, keygen.HotPathBenchOptions())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Close() })
	benchNextOn(b, g)
}
