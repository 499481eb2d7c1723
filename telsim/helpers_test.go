package telsim

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"switchboard/internal/clock/clocktest"
	"switchboard/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ioTimeout bounds every blocking step of a test.
const ioTimeout = 5 * time.Second

// startServer starts a server on 127.0.0.1:0 and closes it at cleanup.
func startServer(t testing.TB, cfg Config, opts ...Option) (*Server, string) {
	t.Helper()
	if tt, ok := t.(*testing.T); ok {
		opts = append([]Option{WithLogger(zaptest.NewLogger(tt))}, opts...)
	}
	s, err := New(cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	addr, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, addr.String()
}

// tclient is a test client of the telephony protocol written with wire.
type tclient struct {
	t   testing.TB
	nc  net.Conn
	br  *bufio.Reader
	out []byte
	in  []byte
	id  uint64
}

func dial(t testing.TB, addr string) *tclient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &tclient{t: t, nc: nc, br: bufio.NewReaderSize(nc, 64<<10)}
}

// frame appends a request frame to c.out and returns its id.
func (c *tclient) frame(op wire.Op, p wire.Payload) uint64 {
	c.t.Helper()
	c.id++
	var err error
	c.out, err = wire.AppendFrame(c.out, wire.Header{Op: op, ID: c.id}, p, wire.DefaultMaxFrame)
	if err != nil {
		c.t.Fatalf("AppendFrame: %v", err)
	}
	return c.id
}

// flush writes the buffered frames.
func (c *tclient) flush() {
	c.t.Helper()
	c.writeRaw(c.out)
	c.out = c.out[:0]
}

func (c *tclient) writeRaw(b []byte) {
	c.t.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *tclient) send(op wire.Op, p wire.Payload) uint64 {
	c.t.Helper()
	id := c.frame(op, p)
	c.flush()
	return id
}

// recvErr reads one frame (payload valid until the next read).
func (c *tclient) recvErr(timeout time.Duration) (wire.Header, []byte, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	h, p, buf, err := wire.ReadFrame(c.br, c.in, wire.DefaultMaxFrame)
	c.in = buf
	return h, p, err
}

func (c *tclient) recv() (wire.Header, []byte) {
	c.t.Helper()
	h, p, err := c.recvErr(ioTimeout)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if !h.IsResponse() {
		c.t.Fatalf("got a request frame %+v", h)
	}
	return h, p
}

// call sends one request and reads its reply, which must carry its id.
func (c *tclient) call(op wire.Op, p wire.Payload) (wire.Header, []byte) {
	c.t.Helper()
	id := c.send(op, p)
	h, b := c.recv()
	if h.ID != id || h.Op != op {
		c.t.Fatalf("reply %+v to request id %d op %v", h, id, op)
	}
	return h, b
}

// status returns nil for an OK reply or the decoded *wire.RemoteError.
func status(h wire.Header, p []byte) error {
	if h.Status == wire.StatusOK {
		return nil
	}
	return wire.DecodeError(h.Status, p)
}

func (c *tclient) hello() (wire.HelloResponse, error) {
	c.t.Helper()
	h, p := c.call(wire.OpHello, &wire.Hello{Client: []byte("test")})
	var r wire.HelloResponse
	if err := status(h, p); err != nil {
		return r, err
	}
	if err := r.Decode(p); err != nil {
		c.t.Fatalf("decode HELLO reply: %v", err)
	}
	return r, nil
}

func (c *tclient) ping() (wire.Load, error) {
	c.t.Helper()
	h, p := c.call(wire.OpTelPing, nil)
	var l wire.Load
	if err := status(h, p); err != nil {
		return l, err
	}
	if err := l.Decode(p); err != nil {
		c.t.Fatalf("decode PONG: %v", err)
	}
	return l, nil
}

// bridgeCall sends RESERVE or UPDATE; the returned Bridge is a deep copy.
func (c *tclient) bridgeCall(op wire.Op, key uint64, spec wire.Spec, meta []byte) (wire.Bridge, error) {
	c.t.Helper()
	h, p := c.call(op, &wire.UpdateRequest{Key: key, Spec: spec, Meta: meta})
	var b wire.Bridge
	if err := status(h, p); err != nil {
		return b, err
	}
	if err := b.Decode(p); err != nil {
		c.t.Fatalf("decode bridge: %v", err)
	}
	return cloneBridge(b), nil
}

func (c *tclient) reserve(key uint64, spec wire.Spec, meta []byte) (wire.Bridge, error) {
	c.t.Helper()
	return c.bridgeCall(wire.OpReserve, key, spec, meta)
}

func (c *tclient) update(key uint64, spec wire.Spec, meta []byte) (wire.Bridge, error) {
	c.t.Helper()
	return c.bridgeCall(wire.OpTelUpdate, key, spec, meta)
}

func (c *tclient) release(key uint64) error {
	c.t.Helper()
	h, p := c.call(wire.OpTelRelease, &wire.KeyRequest{Key: key})
	if err := status(h, p); err != nil {
		return err
	}
	if err := (wire.Empty{}).Decode(p); err != nil {
		c.t.Fatalf("decode RELEASE reply: %v", err)
	}
	return nil
}

// lookup returns a deep copy of the record.
func (c *tclient) lookup(key uint64) (wire.Record, error) {
	c.t.Helper()
	h, p := c.call(wire.OpTelLookup, &wire.KeyRequest{Key: key})
	var r wire.Record
	if err := status(h, p); err != nil {
		return r, err
	}
	if err := r.Decode(p); err != nil {
		c.t.Fatalf("decode record: %v", err)
	}
	r.Bridge = cloneBridge(r.Bridge)
	r.Spec.Name = clone(r.Spec.Name)
	r.Meta = clone(r.Meta)
	return r, nil
}

// expectClosed asserts that the server closed the connection (EOF or RST),
// not that the read timed out.
func (c *tclient) expectClosed() {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	var b [256]byte
	for {
		_, err := c.nc.Read(b[:])
		if err == nil {
			continue // replies sent before the close
		}
		if isTimeout(err) {
			c.t.Fatalf("connection still open after %v", ioTimeout)
		}
		return
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

func cloneBridge(b wire.Bridge) wire.Bridge {
	return wire.Bridge{ID: clone(b.ID), Toll: clone(b.Toll), TollFree: clone(b.TollFree),
		HostCode: clone(b.HostCode), AttendeeCode: clone(b.AttendeeCode)}
}

// testSpec returns a valid spec whose fields depend on n.
func testSpec(n int) wire.Spec {
	return wire.Spec{
		Name:             []byte("Quarterly review " + string(rune('A'+n%26))),
		Start:            1_700_000_000 + int64(n),
		TimeZone:         int16(n % 62),
		Duration:         uint32(30 + n%90),
		Tone:             wire.ToneBeep,
		Repeat:           wire.Recurrence{Kind: wire.RepeatWeekly, Interval: 1, Days: 0x22},
		FullAttendees:    uint32(n % 100),
		LimitedAttendees: 3,
	}
}

// rawFrame builds a frame header by hand (for framing-error tests).
func rawFrame(length uint32, version, op, flags, st byte, id uint64, payload []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, length)
	b = append(b, version, op, flags, st)
	b = binary.BigEndian.AppendUint64(b, id)
	return append(b, payload...)
}

// newFakeClock returns a manual Clock: timers fire only when Advance passes
// them.
func newFakeClock() *clocktest.Clock { return clocktest.New(time.Unix(1_700_000_000, 0)) }
