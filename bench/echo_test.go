package bench

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"switchboard/wire"
)

// The raw echo pair of the floor: the least code that can move a request
// frame one way and a reply frame back, with the standard library. The
// server answers each length-prefixed frame with a canned reply of the real
// reply's size, carrying the request's id; the client writes a frame and
// reads one. Neither decodes a payload.

// maxEchoFrame bounds the frames both ends accept.
const maxEchoFrame = wire.DefaultMaxFrame

var errIDMismatch = errors.New("bench: reply id does not match the request")

// readRawFrame reads one length-prefixed frame into buf (grown if needed)
// with io.ReadFull: the length prefix, then the rest.
func readRawFrame(r *bufio.Reader, buf []byte) ([]byte, error) {
	if cap(buf) < wire.LengthSize {
		buf = make([]byte, 0, 1024)
	}
	buf = buf[:wire.LengthSize]
	if _, err := io.ReadFull(r, buf); err != nil {
		return buf, err
	}
	n := wire.LengthSize + int(binary.BigEndian.Uint32(buf))
	if n > maxEchoFrame || n < wire.HeaderSize {
		return buf, fmt.Errorf("bench: frame length %d out of range", n)
	}
	if cap(buf) < n {
		nb := make([]byte, n)
		copy(nb, buf)
		buf = nb
	}
	buf = buf[:n]
	_, err := io.ReadFull(r, buf[wire.LengthSize:])
	return buf, err
}

// echoServer answers every frame on every connection with reply, its id
// replaced by the request's. It is safe for concurrent use; Close is
// idempotent and waits for its goroutines.
type echoServer struct {
	ln    net.Listener
	reply []byte
	wg    sync.WaitGroup
	once  sync.Once

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// startEcho listens on a Unix socket in tb.TempDir() (network "unix") or on
// 127.0.0.1:0 (network "tcp") and closes in tb.Cleanup.
func startEcho(tb testing.TB, network string, reply []byte) *echoServer {
	tb.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(tb.TempDir(), "echo.sock")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		tb.Fatal(err)
	}
	s := &echoServer{ln: ln, reply: reply, conns: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go s.accept()
	tb.Cleanup(s.Close)
	return s
}

func (s *echoServer) addr() net.Addr { return s.ln.Addr() }

func (s *echoServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(c)
	}
}

func (s *echoServer) serve(c net.Conn) {
	defer s.wg.Done()
	defer c.Close()
	r := bufio.NewReaderSize(c, 64<<10)
	reply := append([]byte(nil), s.reply...)
	var buf []byte
	for {
		var err error
		buf, err = readRawFrame(r, buf)
		if err != nil {
			return
		}
		copy(reply[8:16], buf[8:16]) // the request id
		if _, err := c.Write(reply); err != nil {
			return
		}
	}
}

// Close stops the listener, closes connections and waits for goroutines.
func (s *echoServer) Close() {
	s.once.Do(func() {
		_ = s.ln.Close()
		s.mu.Lock()
		s.closed = true
		for c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
}

// echoClient does one synchronous round trip at a time over one connection.
// It is not safe for concurrent use.
type echoClient struct {
	c   net.Conn
	r   *bufio.Reader
	req []byte // the request frame; its id is rewritten per round trip
	buf []byte
	id  uint64
}

func dialEcho(tb testing.TB, s *echoServer, req []byte) *echoClient {
	tb.Helper()
	c, err := net.Dial(s.addr().Network(), s.addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return &echoClient{c: c, r: bufio.NewReaderSize(c, 64<<10), req: append([]byte(nil), req...), buf: make([]byte, 0, 1024)}
}

// roundTrip writes the request frame and reads the reply frame.
func (e *echoClient) roundTrip() error {
	e.id++
	setID(e.req, e.id)
	if _, err := e.c.Write(e.req); err != nil {
		return err
	}
	var err error
	e.buf, err = readRawFrame(e.r, e.buf)
	if err != nil {
		return err
	}
	if binary.BigEndian.Uint64(e.buf[8:16]) != e.id {
		return errIDMismatch
	}
	return nil
}

// timeRoundTrips runs len(durs) round trips of rt, storing each one's
// duration in durs, and stops at the first error.
func timeRoundTrips(durs []time.Duration, rt func() error) error {
	for i := range durs {
		t0 := time.Now()
		if err := rt(); err != nil {
			return err
		}
		durs[i] = time.Since(t0)
	}
	return nil
}
