package pool

import (
	"bufio"
	"context"
	"net"
	"testing"

	"switchboard/internal/testsupport"
	"switchboard/wire"
)

// benchServer is a telephony echo server that does not allocate per request
// (HELLO apart): RESERVE gets a fixed bridge, TPING a load. It flushes only
// when no more input is buffered, so pipelined requests share writes.
func benchServer(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	testsupport.Serve(b, ln, serveBench)
	return ln.Addr().String()
}

func serveBench(nc net.Conn) {
	br := bufio.NewReaderSize(nc, 32<<10)
	bw := bufio.NewWriterSize(nc, 32<<10)
	bridge := &wire.Bridge{ID: []byte("bridge-1"), Toll: []byte("+1 555 0100"), TollFree: []byte("+1 800 0100"), HostCode: []byte("1234"), AttendeeCode: []byte("5678")}
	load := &wire.Load{Capacity: 1000}
	hello := &wire.HelloResponse{Server: []byte("bench"), Tier: []byte("primary-large"), Load: *load}
	var buf []byte
	for {
		h, _, b, err := wire.ReadFrame(br, buf, wire.DefaultMaxFrame)
		buf = b
		if err != nil {
			return
		}
		var p wire.Payload
		switch h.Op {
		case wire.OpHello:
			p = hello
		case wire.OpTelPing:
			p = load
		default:
			p = bridge
		}
		out, _ := wire.AppendFrame(bw.AvailableBuffer(), h.Response(wire.StatusOK), p, wire.DefaultMaxFrame)
		if _, err := bw.Write(out); err != nil {
			return
		}
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return
			}
		}
	}
}

var transports = []struct {
	name string
	dial Dialer
}{{"net", NetDialer}, {"netpoll", NetpollDialer}}

func benchPool(b *testing.B, d Dialer) *Pool {
	addr := benchServer(b)
	cfg := Config{Tier: "primary-large", Servers: []string{addr}}
	p := newPool(b, cfg, WithDialer(d))
	waitReady(b, p)
	return p
}

// BenchmarkRoundTrip: one caller, RESERVE round trips over loopback TCP to
// a non-allocating fake server (allocs/op covers both sides).
func BenchmarkRoundTrip(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr.name, func(b *testing.B) {
			p := benchPool(b, tr.dial)
			ctx := context.Background()
			req := &wire.UpdateRequest{Key: 123456789, Spec: wire.Spec{Name: []byte("weekly sync"), TimeZone: 4, Duration: 60}}
			b.ReportAllocs()
			for b.Loop() {
				rep, err := p.RoundTrip(ctx, wire.OpReserve, req)
				if err != nil {
					b.Fatal(err)
				}
				rep.Release()
			}
		})
	}
}

// BenchmarkRoundTripParallel: 32 callers per core pipelining over the pool's
// two connections.
func BenchmarkRoundTripParallel(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr.name, func(b *testing.B) {
			p := benchPool(b, tr.dial)
			b.ReportAllocs()
			b.SetParallelism(32)
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				req := &wire.UpdateRequest{Key: 123456789, Spec: wire.Spec{Name: []byte("weekly sync"), TimeZone: 4, Duration: 60}}
				for pb.Next() {
					rep, err := p.RoundTrip(ctx, wire.OpReserve, req)
					if err != nil {
						b.Error(err)
						return
					}
					rep.Release()
				}
			})
		})
	}
}

// BenchmarkRoundTripNoConn: the cost of learning that a tier is down.
func BenchmarkRoundTripNoConn(b *testing.B) {
	p := newPool(b, Config{Tier: "t", Servers: []string{"127.0.0.1:1"}, BackoffBase: 1 << 40, BackoffMax: 1 << 40})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.RoundTrip(ctx, wire.OpReserve, nil); err != ErrNoConn {
			b.Fatal(err)
		}
	}
}
