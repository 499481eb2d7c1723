package telsim

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"syscall"
	"testing"
	"time"

	"switchboard/internal/testsupport"
	"switchboard/wire"
)

func TestFaultNormalize(t *testing.T) {
	good := map[Fault]Fault{
		{}:                                     {},
		{Mode: ModeSlow}:                       {Mode: ModeSlow, Latency: DefaultSlowLatency},
		{Mode: ModeSlow, Jitter: time.Second}:  {Mode: ModeSlow, Jitter: time.Second},
		{Mode: ModeErrors}:                     {Mode: ModeErrors, Fraction: 1},
		{Mode: ModeErrors, Fraction: 0.25}:     {Mode: ModeErrors, Fraction: 0.25},
		{Mode: ModeFlap}:                       {Mode: ModeFlap, Period: DefaultFlapPeriod},
		{Mode: ModeDown, Latency: time.Second}: {Mode: ModeDown},
	}
	for in, want := range good {
		got, err := in.normalize()
		if err != nil || got != want {
			t.Errorf("normalize(%v) = %v, %v; want %v", in, got, err, want)
		}
	}
	bad := []Fault{
		{Mode: numModes},
		{Mode: ModeSlow, Latency: -1},
		{Mode: ModeSlow, Jitter: -1},
		{Mode: ModeFlap, Period: -1},
		{Mode: ModeErrors, Fraction: 1.5},
		{Mode: ModeErrors, Fraction: -0.1},
		{Mode: ModeErrors, Fraction: math.NaN()},
	}
	for _, f := range bad {
		if _, err := f.normalize(); !errors.Is(err, ErrBadFault) {
			t.Errorf("normalize(%v) = %v, want ErrBadFault", f, err)
		}
	}
	for m := range numModes {
		p, err := ParseMode(m.String())
		if err != nil || p != m {
			t.Errorf("ParseMode(%q) = %v, %v", m.String(), p, err)
		}
	}
	if _, err := ParseMode("explode"); !errors.Is(err, ErrBadFault) {
		t.Errorf("ParseMode(explode): %v", err)
	}
	s, _ := New(Config{})
	defer s.Close()
	if err := s.SetFault(Fault{Mode: ModeErrors, Fraction: 2}); !errors.Is(err, ErrBadFault) {
		t.Errorf("SetFault(invalid) = %v", err)
	}
}

var errJunk = errors.New("junk payload")

func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

func TestFaultDownThenNoneOnTheSamePort(t *testing.T) {
	s, addr := startServer(t, Config{})
	c := dial(t, addr)
	if _, err := c.reserve(7, testSpec(7), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetFault(Fault{Mode: ModeDown}); err != nil {
		t.Fatal(err)
	}
	c.expectClosed()
	if _, err := net.DialTimeout("tcp", addr, ioTimeout); !isRefused(err) {
		t.Fatalf("dial while down: %v, want ECONNREFUSED", err)
	}
	if st := s.Stats(); st.Listening || st.Faults.Downs != 1 || st.Fault.Mode != ModeDown {
		t.Fatalf("stats while down: %+v", st)
	}
	testsupport.WaitFor(t, "connections to close", func() bool { return s.Stats().Conns == 0 })
	if err := s.SetFault(Fault{Mode: ModeDown}); err != nil { // down again: no-op
		t.Fatal(err)
	}
	if err := s.SetFault(Fault{}); err != nil {
		t.Fatalf("SetFault(none): %v", err)
	}
	if s.Addr().String() != addr {
		t.Fatalf("Addr changed: %v → %v", addr, s.Addr())
	}
	c2 := dial(t, addr)
	if _, err := c2.hello(); err != nil {
		t.Fatal(err)
	}
	// The table survives: the server was down, not restarted.
	if _, err := c2.lookup(7); err != nil {
		t.Fatalf("LOOKUP after down/none: %v", err)
	}
	if st := s.Stats(); !st.Listening || st.Faults.Relistens != 1 {
		t.Fatalf("stats after none: %+v", st)
	}
}

func TestFaultBeforeServe(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SetFault(Fault{Mode: ModeDown}); err != nil {
		t.Fatal(err)
	}
	a, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testsupport.WaitFor(t, "the initial fault", func() bool { return s.Stats().Faults.Downs == 1 })
	if _, err := net.DialTimeout("tcp", a.String(), ioTimeout); !isRefused(err) {
		t.Fatalf("dial: %v, want ECONNREFUSED", err)
	}
	if err := s.SetFault(Fault{}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, a.String())
	if _, err := c.ping(); err != nil {
		t.Fatal(err)
	}
}

func TestFaultRefuse(t *testing.T) {
	s, addr := startServer(t, Config{})
	old := dial(t, addr)
	if _, err := old.ping(); err != nil {
		t.Fatal(err)
	}
	if err := s.SetFault(Fault{Mode: ModeRefuse}); err != nil {
		t.Fatal(err)
	}
	old.expectClosed()
	c := dial(t, addr) // the dial itself succeeds
	c.send(wire.OpHello, &wire.Hello{Client: []byte("x")})
	if _, _, err := c.recvErr(ioTimeout); err == nil || isTimeout(err) {
		t.Fatalf("HELLO on a refused connection: %v, want EOF or reset", err)
	}
	if err := s.SetFault(Fault{}); err != nil {
		t.Fatal(err)
	}
	if _, err := dial(t, addr).ping(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Faults.Refused != 1 {
		t.Fatalf("refused %d, want 1", st.Faults.Refused)
	}
}

func TestFaultReset(t *testing.T) {
	s, addr := startServer(t, Config{})
	old := dial(t, addr)
	if _, err := old.ping(); err != nil {
		t.Fatal(err)
	}
	if err := s.SetFault(Fault{Mode: ModeReset}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := old.recvErr(ioTimeout); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("existing connection: %v, want ECONNRESET", err)
	}
	// The RST of a new connection can beat connect(2)'s return: the reset
	// then shows at dial time.
	if nc, err := net.DialTimeout("tcp", addr, ioTimeout); err != nil {
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("dial: %v, want success or ECONNRESET", err)
		}
	} else {
		defer nc.Close()
		_ = nc.SetReadDeadline(time.Now().Add(ioTimeout))
		if _, err := nc.Read(make([]byte, 16)); !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("new connection: %v, want ECONNRESET", err)
		}
	}
	if err := s.SetFault(Fault{}); err != nil {
		t.Fatal(err)
	}
	if _, err := dial(t, addr).ping(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Faults.Reset != 2 {
		t.Fatalf("reset %d, want 2", st.Faults.Reset)
	}
}

func TestFaultBlackhole(t *testing.T) {
	s, addr := startServer(t, Config{})
	c := dial(t, addr)
	if err := s.SetFault(Fault{Mode: ModeBlackhole}); err != nil {
		t.Fatal(err)
	}
	c.send(wire.OpReserve, &wire.UpdateRequest{Key: 5, Spec: testSpec(5)})
	c.send(wire.OpTelPing, nil)
	if _, _, err := c.recvErr(100 * time.Millisecond); !isTimeout(err) {
		t.Fatalf("read under blackhole: %v, want a timeout", err)
	}
	fresh := dial(t, addr)
	fresh.send(wire.OpHello, &wire.Hello{})
	if _, _, err := fresh.recvErr(50 * time.Millisecond); !isTimeout(err) {
		t.Fatalf("HELLO under blackhole: %v, want a timeout", err)
	}
	if err := s.SetFault(Fault{}); err != nil {
		t.Fatal(err)
	}
	// Same connection, served again; the swallowed RESERVE was executed.
	if _, err := c.lookup(5); err != nil {
		t.Fatalf("LOOKUP after blackhole: %v", err)
	}
	if st := s.Stats(); st.Faults.Dropped != 3 || st.Conns != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFaultSlow(t *testing.T) {
	const lat = 100 * time.Millisecond
	s, addr := startServer(t, Config{})
	c := dial(t, addr)
	if err := s.SetFault(Fault{Mode: ModeSlow, Latency: lat, Jitter: 5 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	const n = 40
	start := time.Now()
	for range n {
		c.frame(wire.OpTelPing, nil) // slow delays PING too
	}
	c.flush()
	for range n {
		if h, p := c.recv(); status(h, p) != nil {
			t.Fatal(status(h, p))
		}
	}
	el := time.Since(start)
	if el < lat || el >= n/4*lat {
		t.Fatalf("%d slow pings took %v; want ≥ %v and < %v", n, el, lat, n/4*lat)
	}
	if err := s.SetFault(Fault{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ping(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Faults.Delayed != n {
		t.Fatalf("delayed %d, want %d", st.Faults.Delayed, n)
	}
}

func TestFaultErrorsFraction(t *testing.T) {
	s, addr := startServer(t, Config{}, WithSeed(1))
	c := dial(t, addr)
	if err := s.SetFault(Fault{Mode: ModeErrors, Fraction: 0.3}); err != nil {
		t.Fatal(err)
	}
	const n = 2000
	for range n {
		c.frame(wire.OpTelPing, nil)
	}
	c.flush()
	internal := 0
	for range n {
		h, p := c.recv()
		switch err := status(h, p); {
		case err == nil:
		case errors.Is(err, wire.StatusInternal):
			internal++
		default:
			t.Fatal(err)
		}
	}
	if f := float64(internal) / n; f < 0.25 || f > 0.35 {
		t.Fatalf("INTERNAL fraction %.3f, want ≈ 0.3", f)
	}
	// Fraction 0 means every request; a failed RESERVE is not executed.
	if err := s.SetFault(Fault{Mode: ModeErrors}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.reserve(9, testSpec(9), nil); !errors.Is(err, wire.StatusInternal) {
		t.Fatalf("RESERVE: %v, want INTERNAL", err)
	}
	if err := s.SetFault(Fault{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.lookup(9); !errors.Is(err, wire.StatusNotFound) {
		t.Fatalf("LOOKUP: %v, want NOT_FOUND", err)
	}
	if st := s.Stats(); st.Faults.Internal != uint64(internal)+1 || st.Errors.Internal != st.Faults.Internal {
		t.Fatalf("stats %+v (internal %d)", st, internal)
	}
}

// TestFaultGarbage reads every reply raw (a bad version would desynchronise
// wire.ReadFrame) and checks no reply decodes.
func TestFaultGarbage(t *testing.T) {
	s, addr := startServer(t, Config{}, WithSeed(2))
	c := dial(t, addr)
	if err := s.SetFault(Fault{Mode: ModeGarbage}); err != nil {
		t.Fatal(err)
	}
	const n = 300
	for range n {
		c.frame(wire.OpTelPing, nil)
	}
	c.frame(wire.OpReserve, &wire.UpdateRequest{Key: 3, Spec: testSpec(3)})
	c.frame(wire.OpTelLookup, &wire.KeyRequest{Key: 3})
	c.frame(wire.OpHello, &wire.Hello{})
	c.frame(wire.OpTelRelease, &wire.KeyRequest{Key: 3})
	c.flush()
	kinds := map[error]int{}
	_ = c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	for i := range n + 4 {
		var lp [4]byte
		if _, err := io.ReadFull(c.br, lp[:]); err != nil {
			t.Fatal(err)
		}
		frame := make([]byte, 4+binary.BigEndian.Uint32(lp[:]))
		copy(frame, lp[:])
		if _, err := io.ReadFull(c.br, frame[4:]); err != nil {
			t.Fatal(err)
		}
		h, size, err := wire.ParseHeader(frame, wire.DefaultMaxFrame)
		if err == nil {
			if size != len(frame) {
				t.Fatalf("reply %d: size %d, frame %d", i, size, len(frame))
			}
			p := frame[wire.HeaderSize:]
			switch h.Op {
			case wire.OpTelPing:
				err = new(wire.Load).Decode(p)
			case wire.OpReserve:
				err = new(wire.Bridge).Decode(p)
			case wire.OpTelLookup:
				err = new(wire.Record).Decode(p)
			case wire.OpHello:
				err = new(wire.HelloResponse).Decode(p)
			case wire.OpTelRelease:
				err = (wire.Empty{}).Decode(p)
			}
			if err == nil {
				t.Fatalf("reply %d (%+v, payload %x) decodes", i, h, p)
			}
			err = errJunk
		} else {
			err = errors.Unwrap(err)
			if err == nil {
				t.Fatalf("reply %d: unexpected header error", i)
			}
		}
		kinds[err]++
	}
	if kinds[wire.ErrBadVersion] == 0 || kinds[wire.ErrBadFlags] == 0 || len(kinds) != 3 {
		t.Fatalf("garbage kinds %v, want bad version, bad flags and junk payloads", kinds)
	}
	if err := s.SetFault(Fault{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.lookup(3); !errors.Is(err, wire.StatusNotFound) { // reserved then released
		t.Fatalf("LOOKUP: %v, want NOT_FOUND", err)
	}
	if st := s.Stats(); st.Faults.Garbage != n+4 {
		t.Fatalf("garbage %d, want %d", st.Faults.Garbage, n+4)
	}
}

func TestFaultCut(t *testing.T) {
	s, addr := startServer(t, Config{})
	if err := s.SetFault(Fault{Mode: ModeCut}); err != nil {
		t.Fatal(err)
	}
	for _, op := range []wire.Op{wire.OpTelPing, wire.OpReserve} {
		c := dial(t, addr)
		if op == wire.OpReserve {
			c.send(op, &wire.UpdateRequest{Key: 11, Spec: testSpec(11), Meta: make([]byte, 100)})
		} else {
			c.send(op, nil)
		}
		if _, _, err := c.recvErr(ioTimeout); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%v: read %v, want EOF mid-frame", op, err)
		}
	}
	if err := s.SetFault(Fault{}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, addr)
	if _, err := c.lookup(11); err != nil {
		t.Fatalf("the cut RESERVE was not executed: %v", err)
	}
	if st := s.Stats(); st.Faults.Cut != 2 {
		t.Fatalf("cut %d, want 2", st.Faults.Cut)
	}
}

// TestFaultCutDelayed: with latency the cut happens in the delayed writer.
func TestFaultCutDelayed(t *testing.T) {
	s, addr := startServer(t, Config{Latency: time.Millisecond})
	if err := s.SetFault(Fault{Mode: ModeCut}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, addr)
	c.send(wire.OpTelLookup, &wire.KeyRequest{Key: 1})
	if _, _, err := c.recvErr(ioTimeout); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("read %v, want EOF mid-frame", err)
	}
}

func TestFaultFull(t *testing.T) {
	s, addr := startServer(t, Config{})
	c := dial(t, addr)
	if _, err := c.reserve(1, testSpec(1), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetFault(Fault{Mode: ModeFull}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.reserve(2, testSpec(2), nil); !errors.Is(err, wire.StatusCapacity) {
		t.Fatalf("RESERVE when full: %v, want CAPACITY", err)
	}
	if _, err := c.lookup(1); err != nil {
		t.Fatalf("LOOKUP when full: %v", err)
	}
	if _, err := c.update(1, testSpec(3), nil); err != nil {
		t.Fatalf("UPDATE when full: %v", err)
	}
	if err := s.SetFault(Fault{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.reserve(2, testSpec(2), nil); err != nil {
		t.Fatalf("RESERVE after none: %v", err)
	}
	if st := s.Stats(); st.Faults.Full != 1 || st.Errors.Capacity != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestFaultFlap drives the flap period with a fake clock.
func TestFaultFlap(t *testing.T) {
	clk := newFakeClock()
	s, addr := startServer(t, Config{}, WithClock(clk))
	c := dial(t, addr)
	if err := s.SetFault(Fault{Mode: ModeFlap, Period: time.Second}); err != nil {
		t.Fatal(err)
	}
	c.expectClosed()
	if st := s.Stats(); st.Listening || st.Fault != (Fault{Mode: ModeFlap, Period: time.Second}) {
		t.Fatalf("after SetFault(flap): %+v", st)
	}
	if _, err := net.DialTimeout("tcp", addr, ioTimeout); !isRefused(err) {
		t.Fatalf("dial in the down phase: %v", err)
	}
	for cycle := range 3 {
		clk.Advance(time.Second) // → up
		testsupport.WaitFor(t, "the up phase", func() bool { return s.Stats().Listening })
		up := dial(t, addr)
		if _, err := up.ping(); err != nil {
			t.Fatalf("cycle %d: PING in the up phase: %v", cycle, err)
		}
		clk.Advance(time.Second) // → down
		testsupport.WaitFor(t, "the down phase", func() bool { return !s.Stats().Listening })
		up.expectClosed()
		if _, err := net.DialTimeout("tcp", addr, ioTimeout); !isRefused(err) {
			t.Fatalf("cycle %d: dial in the down phase: %v", cycle, err)
		}
	}
	if st := s.Stats(); st.Faults.Downs != 4 || st.Faults.Relistens != 3 {
		t.Fatalf("downs %d relistens %d, want 4 and 3", st.Faults.Downs, st.Faults.Relistens)
	}
	if err := s.SetFault(Fault{}); err != nil {
		t.Fatal(err)
	}
	if clk.Active() != 0 {
		t.Fatalf("%d timers still armed after none", clk.Active())
	}
	clk.Advance(10 * time.Second) // nothing flaps any more
	if _, err := dial(t, addr).ping(); err != nil {
		t.Fatal(err)
	}
}

// TestFaultNoneRetriesABusyPort: if the port is taken while down, none
// reports the error, keeps retrying, and listens once the port is free.
func TestFaultNoneRetriesABusyPort(t *testing.T) {
	clk := newFakeClock()
	s, addr := startServer(t, Config{}, WithClock(clk))
	if err := s.SetFault(Fault{Mode: ModeDown}); err != nil {
		t.Fatal(err)
	}
	thief, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot take the port for the test: %v", err)
	}
	if err := s.SetFault(Fault{}); err == nil || errors.Is(err, ErrBadFault) {
		t.Fatalf("SetFault(none) with the port taken: %v", err)
	}
	_ = thief.Close()
	testsupport.WaitFor(t, "the retry timer", func() bool { return clk.Active() == 1 })
	clk.Advance(retryInterval)
	testsupport.WaitFor(t, "listening again", func() bool { return s.Stats().Listening })
	if _, err := dial(t, addr).ping(); err != nil {
		t.Fatal(err)
	}
}

// TestFaultDownOnAUnixSocket: Serve owns any listener; down and none work
// on a Unix socket too (the path is removed while down, created again).
func TestFaultDownOnAUnixSocket(t *testing.T) {
	path := t.TempDir() + "/telsim.sock"
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	defer func() {
		_ = s.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	ping := func() error {
		nc, err := net.DialTimeout("unix", path, ioTimeout)
		if err != nil {
			return err
		}
		defer nc.Close()
		c := &tclient{t: t, nc: nc, br: bufio.NewReader(nc)}
		_, err = c.ping()
		return err
	}
	if err := ping(); err != nil {
		t.Fatal(err)
	}
	if err := s.SetFault(Fault{Mode: ModeDown}); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("unix", path, ioTimeout); err == nil {
		t.Fatal("dial succeeded while down")
	}
	if err := s.SetFault(Fault{}); err != nil {
		t.Fatal(err)
	}
	if err := ping(); err != nil {
		t.Fatal(err)
	}
}
