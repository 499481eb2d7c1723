package mux

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"switchboard/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// raw is a payload of raw bytes.
type raw []byte

func (r raw) AppendTo(dst []byte) []byte { return append(dst, r...) }

// transports builds connected pairs (client side, server side) over each
// transport the tests run on.
var transports = []struct {
	name string
	pair func(t testing.TB) (net.Conn, net.Conn)
}{
	{"pipe", func(t testing.TB) (net.Conn, net.Conn) { return net.Pipe() }},
	{"tcp", tcpPair},
}

func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	return cc, r.c
}

// peer is the server side of a test connection, written with wire only.
type peer struct {
	nc  net.Conn
	br  *bufio.Reader
	buf []byte
	wmu sync.Mutex
	out []byte
}

func newPeer(nc net.Conn) *peer { return &peer{nc: nc, br: bufio.NewReader(nc)} }

// read returns the next request; the payload is valid until the next read.
func (p *peer) read() (wire.Header, []byte, error) {
	h, pl, buf, err := wire.ReadFrame(p.br, p.buf, wire.DefaultMaxFrame)
	p.buf = buf
	return h, pl, err
}

// reply answers req with status OK and payload pl.
func (p *peer) reply(req wire.Header, pl []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.out, _ = wire.AppendFrame(p.out[:0], req.Response(wire.StatusOK), raw(pl), 1<<30)
	_, err := p.nc.Write(p.out)
	return err
}

// replyErr answers req with status s and message msg.
func (p *peer) replyErr(req wire.Header, s wire.Status, msg string) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.out = wire.AppendError(p.out[:0], req, s, msg)
	_, err := p.nc.Write(p.out)
	return err
}

// writeRaw writes bytes as they are.
func (p *peer) writeRaw(b []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_, err := p.nc.Write(b)
	return err
}

// serve runs handle for every request on its own goroutine (the server
// loop), until a read error; the returned func closes the server side and
// waits for the loop.
func serve(t testing.TB, nc net.Conn, handle func(p *peer, h wire.Header, pl []byte)) *peer {
	t.Helper()
	p := newPeer(nc)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			h, pl, err := p.read()
			if err != nil {
				return
			}
			handle(p, h, pl)
		}
	}()
	t.Cleanup(func() {
		nc.Close()
		<-done
	})
	return p
}

// echo answers every request with its own payload.
func echo(p *peer, h wire.Header, pl []byte) { _ = p.reply(h, pl) }

// newConn builds a Conn over a fresh pair with the server loop running
// handle, and closes it at cleanup.
func newConn(t testing.TB, pair func(testing.TB) (net.Conn, net.Conn), cfg Config, handle func(*peer, wire.Header, []byte), opts ...Option) (*Conn, *peer) {
	t.Helper()
	cc, sc := pair(t)
	p := serve(t, sc, handle)
	c := New(cc, cfg, opts...)
	t.Cleanup(func() { c.Close() })
	return c, p
}

// within fails the test if f does not return within d (a hang guard, not a
// timing assertion).
func within(t testing.TB, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not finish within %v", what, d)
	}
}

// isNetClosed reports errors a closed peer produces on either transport.
func isNetClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF)
}

// writeCounter counts the Write calls (one syscall each on TCP) that the
// Conn makes, so tests and benchmarks can see how well frames combine.
type writeCounter struct {
	net.Conn
	writes atomic.Int64
}

func (w *writeCounter) Write(b []byte) (int, error) {
	w.writes.Add(1)
	return w.Conn.Write(b)
}
