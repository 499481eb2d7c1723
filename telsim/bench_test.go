package telsim

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"switchboard/wire"
)

// discardConn is a net.Conn that swallows writes: it lets BenchmarkHandle
// measure the server's own work without the network.
type discardConn struct{ net.Conn }

func (discardConn) Write(b []byte) (int, error)      { return len(b), nil }
func (discardConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (discardConn) Close() error                     { return nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }
func (discardConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// BenchmarkHandle measures one request's server-side work (decode, table,
// encode, buffered write) with no network: PING and LOOKUP must not
// allocate; RESERVE allocates its record (copies of spec, meta and the
// bridge strings) and nothing else.
func BenchmarkHandle(b *testing.B) {
	frame := func(op wire.Op, p wire.Payload) (wire.Header, []byte) {
		f, err := wire.AppendFrame(nil, wire.Header{Op: op, ID: 1}, p, wire.DefaultMaxFrame)
		if err != nil {
			b.Fatal(err)
		}
		h, _, err := wire.ParseHeader(f, wire.DefaultMaxFrame)
		if err != nil {
			b.Fatal(err)
		}
		return h, f[wire.HeaderSize:]
	}
	setup := func(b *testing.B) (*Server, *conn) {
		s, err := New(Config{Capacity: 1 << 20}, WithSeed(1))
		if err != nil {
			b.Fatal(err)
		}
		c := newConn(s, discardConn{})
		c.init()
		return s, c
	}
	meta := make([]byte, 512)
	b.Run("ping", func(b *testing.B) {
		_, c := setup(b)
		h, p := frame(wire.OpTelPing, nil)
		b.ReportAllocs()
		for b.Loop() {
			c.handle(h, p)
		}
	})
	b.Run("lookup", func(b *testing.B) {
		s, c := setup(b)
		_, st, _ := s.tab.reserve(77, ptr(testSpec(1)), meta, c.rng)
		if st != wire.StatusOK {
			b.Fatal(st)
		}
		h, p := frame(wire.OpTelLookup, &wire.KeyRequest{Key: 77})
		b.ReportAllocs()
		for b.Loop() {
			c.handle(h, p)
		}
	})
	b.Run("reserve+release", func(b *testing.B) {
		_, c := setup(b)
		hr, pr := frame(wire.OpReserve, &wire.UpdateRequest{Key: 77, Spec: testSpec(1), Meta: meta})
		hx, px := frame(wire.OpTelRelease, &wire.KeyRequest{Key: 77})
		b.ReportAllocs()
		for b.Loop() {
			c.handle(hr, pr)
			c.handle(hx, px)
		}
	})
}

func ptr[T any](v T) *T { return &v }

// echoServer is the floor for BenchmarkRoundTrip: the least a Go server on
// the same stack can do per request (read a frame, write a fixed reply).
func echoServer(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	b.Cleanup(func() { _ = ln.Close(); <-done })
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		br, bw := bufio.NewReader(nc), bufio.NewWriter(nc)
		var in, out []byte
		var load wire.Load
		for {
			h, _, buf, err := wire.ReadFrame(br, in, wire.DefaultMaxFrame)
			in = buf
			if err != nil {
				return
			}
			out, _ = wire.AppendFrame(out[:0], h.Response(wire.StatusOK), &load, wire.DefaultMaxFrame)
			if _, err := bw.Write(out); err != nil || bw.Flush() != nil {
				return
			}
		}
	}()
	return ln.Addr().String()
}

// BenchmarkRoundTrip alternates a telsim PING and a raw echo round trip on
// loopback and reports both and their ratio (telsim/echo): the server's
// overhead over the floor, independent of how fast the machine is today.
func BenchmarkRoundTrip(b *testing.B) {
	_, addr := startServer(b, Config{})
	sim := dial(b, addr)
	echo := dial(b, echoServer(b))
	rt := func(c *tclient) time.Duration {
		t0 := time.Now()
		id := c.send(wire.OpTelPing, nil)
		if h, _ := c.recv(); h.ID != id {
			b.Fatalf("reply id %d, want %d", h.ID, id)
		}
		return time.Since(t0)
	}
	for range 100 { // warm both
		rt(sim)
		rt(echo)
	}
	var tSim, tEcho time.Duration
	b.ReportAllocs()
	for b.Loop() {
		tSim += rt(sim)
		tEcho += rt(echo)
	}
	n := float64(b.N)
	b.ReportMetric(float64(tSim.Nanoseconds())/n, "telsim-ns/rt")
	b.ReportMetric(float64(tEcho.Nanoseconds())/n, "echo-ns/rt")
	b.ReportMetric(float64(tSim)/float64(tEcho), "telsim/echo")
}

// BenchmarkPipelined measures throughput on one connection with 64 requests
// in flight (LOOKUP of a live key: no allocation on the server).
func BenchmarkPipelined(b *testing.B) {
	_, addr := startServer(b, Config{})
	c := dial(b, addr)
	if _, err := c.reserve(1, testSpec(1), make([]byte, 256)); err != nil {
		b.Fatal(err)
	}
	const batch = 64
	req := &wire.KeyRequest{Key: 1} // reused: the client allocates nothing either
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		n := min(batch, b.N-i)
		for range n {
			c.frame(wire.OpTelLookup, req)
		}
		c.flush()
		for range n {
			if h, p := c.recv(); h.Status != wire.StatusOK {
				b.Fatal(status(h, p))
			}
		}
	}
}
