package client

import (
	"bufio"
	"context"
	"net"
	"path/filepath"
	"testing"

	"switchboard/internal/testsupport"
	"switchboard/wire"
)

// pingServer answers every frame with an empty OK response, without
// allocating, flushing when no input is buffered.
func pingServer(b *testing.B) string {
	path := filepath.Join(b.TempDir(), "ping.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		b.Fatal(err)
	}
	testsupport.Serve(b, ln, func(nc net.Conn) {
		br, bw := bufio.NewReaderSize(nc, 32<<10), bufio.NewWriterSize(nc, 32<<10)
		var buf []byte
		for {
			h, _, b, err := wire.ReadFrame(br, buf, wire.DefaultMaxFrame)
			buf = b
			if err != nil {
				return
			}
			out, _ := wire.AppendFrame(bw.AvailableBuffer(), h.Response(wire.StatusOK), nil, wire.DefaultMaxFrame)
			if _, err := bw.Write(out); err != nil {
				return
			}
			if br.Buffered() == 0 && bw.Flush() != nil {
				return
			}
		}
	})
	return path
}

// BenchmarkPing: one caller, round trips over a Unix socket.
func BenchmarkPing(b *testing.B) {
	c, err := Dial(context.Background(), pingServer(b))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Ping(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPingParallel: many callers pipelining over two connections.
func BenchmarkPingParallel(b *testing.B) {
	c, err := Dial(context.Background(), pingServer(b), WithConns(2))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if err := c.Ping(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
