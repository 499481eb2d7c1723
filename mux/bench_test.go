package mux

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"switchboard/wire"
)

// echoServer answers every frame with its payload, without allocating, and
// flushes only when no more input is buffered (so pipelined requests share
// writes, like a real server).
func echoServer(nc net.Conn) {
	br := bufio.NewReaderSize(nc, 32<<10)
	bw := bufio.NewWriterSize(nc, 32<<10)
	var buf []byte
	for {
		h, pl, b, err := wire.ReadFrame(br, buf, wire.DefaultMaxFrame)
		buf = b
		if err != nil {
			return
		}
		hb, start := wire.BeginFrame(bw.AvailableBuffer(), h.Response(wire.StatusOK))
		hb = append(hb, pl...)
		hb, _ = wire.FinishFrame(hb, start, wire.DefaultMaxFrame)
		if _, err := bw.Write(hb); err != nil {
			return
		}
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return
			}
		}
	}
}

func benchConn(b *testing.B) *Conn {
	cc, sc := tcpPair(b)
	done := make(chan struct{})
	go func() { defer close(done); echoServer(sc) }()
	c := New(cc, Config{})
	b.Cleanup(func() { c.Close(); sc.Close(); <-done })
	return c
}

// BenchmarkCall: one caller, round trips over loopback TCP to an echo
// server. allocs/op covers client and server (same process).
func BenchmarkCall(b *testing.B) {
	c := benchConn(b)
	ctx := context.Background()
	req := &wire.KeyRequest{Key: 42}
	b.ReportAllocs()
	for b.Loop() {
		rep, err := c.Call(ctx, wire.OpLookup, req)
		if err != nil {
			b.Fatal(err)
		}
		rep.Release()
	}
}

// BenchmarkCallParallel: many callers pipelining over one connection.
func BenchmarkCallParallel(b *testing.B) {
	c := benchConn(b)
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		req := &wire.KeyRequest{Key: 42}
		for pb.Next() {
			rep, err := c.Call(ctx, wire.OpLookup, req)
			if err != nil {
				b.Error(err)
				return
			}
			rep.Release()
		}
	})
}

// BenchmarkCallPipe: the same over net.Pipe (no kernel), to isolate mux's
// own cost.
func BenchmarkCallPipe(b *testing.B) {
	cc, sc := net.Pipe()
	done := make(chan struct{})
	go func() { defer close(done); echoServer(sc) }()
	c := New(cc, Config{})
	defer func() { c.Close(); sc.Close(); <-done }()
	ctx := context.Background()
	req := &wire.KeyRequest{Key: 42}
	b.ReportAllocs()
	for b.Loop() {
		rep, err := c.Call(ctx, wire.OpLookup, req)
		if err != nil {
			b.Fatal(err)
		}
		rep.Release()
	}
}

// BenchmarkCallers sweeps the number of concurrent callers on one
// connection over loopback TCP, from a lone caller to heavy pipelining, and
// reports writes-per-call: 1 means no combining at all.
func BenchmarkCallers(b *testing.B) {
	for _, n := range []int{1, 2, 4, 16, 64} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			cc, sc := tcpPair(b)
			done := make(chan struct{})
			go func() { defer close(done); echoServer(sc) }()
			wc := &writeCounter{Conn: cc}
			c := New(wc, Config{})
			b.Cleanup(func() { c.Close(); sc.Close(); <-done })
			var left atomic.Int64
			left.Store(int64(b.N))
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.ResetTimer()
			for range n {
				wg.Go(func() {
					ctx := context.Background()
					req := &wire.KeyRequest{Key: 42}
					for left.Add(-1) >= 0 {
						rep, err := c.Call(ctx, wire.OpLookup, req)
						if err != nil {
							b.Error(err)
							return
						}
						rep.Release()
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(wc.writes.Load())/float64(b.N), "writes/call")
		})
	}
}
