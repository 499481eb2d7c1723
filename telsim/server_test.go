package telsim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"switchboard/internal/testsupport"
	"switchboard/wire"
)

func TestConfigDefaultsAndValidate(t *testing.T) {
	d := DefaultConfig()
	if d.Tier != DefaultTier || d.ServerID != "telsim-"+DefaultTier || d.Capacity != DefaultCapacity ||
		d.MaxFrame != wire.DefaultMaxFrame || d.NumberPrefix != DefaultNumberPrefix ||
		d.TollFreePrefix != DefaultTollFreePrefix || d.MaxInFlight != DefaultMaxInFlight ||
		d.WriteTimeout != DefaultWriteTimeout || d.Latency != 0 || d.Jitter != 0 {
		t.Fatalf("DefaultConfig() = %+v", d)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	if err := d.Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	long := strings.Repeat("x", wire.MaxShort+1)
	if got := (Config{Tier: strings.Repeat("t", wire.MaxShort)}).withDefaults().ServerID; len(got) != wire.MaxShort {
		t.Fatalf("default server id of a long tier is %d bytes", len(got))
	}
	bad := map[string]Config{
		"tier":          {Tier: long},
		"server id":     {ServerID: long},
		"capacity":      {Capacity: -1},
		"latency":       {Latency: -time.Millisecond},
		"jitter":        {Jitter: -time.Millisecond},
		"max frame":     {MaxFrame: wire.MinMaxFrame - 1},
		"prefix":        {NumberPrefix: long},
		"toll-free":     {TollFreePrefix: long},
		"max in-flight": {MaxInFlight: -1},
		"write timeout": {WriteTimeout: -time.Second},
	}
	for name, c := range bad {
		if err := c.Validate(); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: Validate() = %v, want ErrBadConfig", name, err)
		}
		if _, err := New(c); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: New() = %v, want ErrBadConfig", name, err)
		}
	}
}

func TestHelloAndPing(t *testing.T) {
	_, addr := startServer(t, Config{Tier: "primary-large", Capacity: 7})
	c := dial(t, addr)
	hr, err := c.hello()
	if err != nil {
		t.Fatal(err)
	}
	if string(hr.Server) != "telsim-primary-large" || string(hr.Tier) != "primary-large" ||
		hr.Load != (wire.Load{Capacity: 7}) {
		t.Fatalf("HELLO reply %q %q %+v", hr.Server, hr.Tier, hr.Load)
	}
	if _, err := c.reserve(1, testSpec(1), nil); err != nil {
		t.Fatal(err)
	}
	l, err := c.ping()
	if err != nil {
		t.Fatal(err)
	}
	if l != (wire.Load{Capacity: 7, InUse: 1}) {
		t.Fatalf("PONG load %+v", l)
	}
}

func TestReservationLifecycle(t *testing.T) {
	s, addr := startServer(t, Config{})
	c := dial(t, addr)
	const key = 123456789
	spec, meta := testSpec(1), []byte("<meeting>one</meeting>")
	b, err := c.reserve(key, spec, meta)
	if err != nil {
		t.Fatalf("RESERVE: %v", err)
	}
	if len(b.ID) == 0 || !bytes.HasPrefix(b.Toll, []byte(DefaultNumberPrefix)) ||
		!bytes.HasPrefix(b.TollFree, []byte(DefaultTollFreePrefix)) ||
		len(b.HostCode) != 8 || len(b.AttendeeCode) != 9 {
		t.Fatalf("bridge %q", b)
	}
	r, err := c.lookup(key)
	if err != nil {
		t.Fatalf("LOOKUP: %v", err)
	}
	assertRecord(t, r, b, spec, meta)

	spec2, meta2 := testSpec(2), []byte("<meeting>two, longer than before</meeting>")
	b2, err := c.update(key, spec2, meta2)
	if err != nil {
		t.Fatalf("UPDATE: %v", err)
	}
	if !bridgeEqual(b, b2) {
		t.Fatalf("UPDATE changed the bridge: %q → %q", b, b2)
	}
	r, err = c.lookup(key)
	if err != nil {
		t.Fatalf("LOOKUP after UPDATE: %v", err)
	}
	assertRecord(t, r, b, spec2, meta2)

	if err := c.release(key); err != nil {
		t.Fatalf("RELEASE: %v", err)
	}
	if _, err := c.lookup(key); !errors.Is(err, wire.StatusNotFound) {
		t.Fatalf("LOOKUP after RELEASE: %v, want NOT_FOUND", err)
	}
	if err := c.release(key); !errors.Is(err, wire.StatusNotFound) {
		t.Fatalf("second RELEASE: %v, want NOT_FOUND", err)
	}
	if _, err := c.update(key, spec, meta); !errors.Is(err, wire.StatusNotFound) {
		t.Fatalf("UPDATE of a released key: %v, want NOT_FOUND", err)
	}
	if n := s.Stats().Reservations; n != 0 {
		t.Fatalf("%d reservations left", n)
	}
}

func assertRecord(t *testing.T, r wire.Record, b wire.Bridge, spec wire.Spec, meta []byte) {
	t.Helper()
	if !bridgeEqual(r.Bridge, b) {
		t.Errorf("record bridge %q, want %q", r.Bridge, b)
	}
	if !specEqual(r.Spec, spec) {
		t.Errorf("record spec %+v, want %+v", r.Spec, spec)
	}
	if !bytes.Equal(r.Meta, meta) {
		t.Errorf("record meta %q, want %q", r.Meta, meta)
	}
}

func bridgeEqual(a, b wire.Bridge) bool {
	return bytes.Equal(a.ID, b.ID) && bytes.Equal(a.Toll, b.Toll) && bytes.Equal(a.TollFree, b.TollFree) &&
		bytes.Equal(a.HostCode, b.HostCode) && bytes.Equal(a.AttendeeCode, b.AttendeeCode)
}

func specEqual(a, b wire.Spec) bool {
	return bytes.Equal(a.Name, b.Name) && a.Start == b.Start && a.TimeZone == b.TimeZone &&
		a.Duration == b.Duration && a.Tone == b.Tone && a.Repeat == b.Repeat &&
		a.FullAttendees == b.FullAttendees && a.LimitedAttendees == b.LimitedAttendees
}

// TestRequestBufferIsCopied reserves two keys back to back on one connection
// (the server reuses its frame buffer) and checks each record kept its own
// spec and meta.
func TestRequestBufferIsCopied(t *testing.T) {
	_, addr := startServer(t, Config{})
	c := dial(t, addr)
	for i := 1; i <= 2; i++ {
		c.frame(wire.OpReserve, &wire.UpdateRequest{Key: uint64(i), Spec: testSpec(i),
			Meta: bytes.Repeat([]byte{byte('a' + i)}, 100*i)})
	}
	c.flush()
	for range 2 {
		if h, p := c.recv(); status(h, p) != nil {
			t.Fatal(status(h, p))
		}
	}
	for i := 1; i <= 2; i++ {
		r, err := c.lookup(uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		if !specEqual(r.Spec, testSpec(i)) || !bytes.Equal(r.Meta, bytes.Repeat([]byte{byte('a' + i)}, 100*i)) {
			t.Fatalf("key %d: spec %+v meta %q", i, r.Spec, r.Meta)
		}
	}
}

func TestKeyExists(t *testing.T) {
	s, addr := startServer(t, Config{})
	c := dial(t, addr)
	first, err := c.reserve(42, testSpec(1), []byte("first"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.reserve(42, testSpec(2), []byte("second"))
	var re *wire.RemoteError
	if !errors.Is(err, wire.StatusKeyExists) || !errors.As(err, &re) || re.Message == "" {
		t.Fatalf("duplicate RESERVE: %v, want KEY_EXISTS with a message", err)
	}
	r, err := c.lookup(42)
	if err != nil {
		t.Fatal(err)
	}
	assertRecord(t, r, first, testSpec(1), []byte("first"))
	if st := s.Stats(); st.Reservations != 1 || st.Errors.KeyExists != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCapacity(t *testing.T) {
	s, addr := startServer(t, Config{Capacity: 2})
	c := dial(t, addr)
	for k := uint64(1); k <= 2; k++ {
		if _, err := c.reserve(k, testSpec(int(k)), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.reserve(3, testSpec(3), nil); !errors.Is(err, wire.StatusCapacity) {
		t.Fatalf("RESERVE when full: %v, want CAPACITY", err)
	}
	// A duplicate is reported as such even when full.
	if _, err := c.reserve(1, testSpec(1), nil); !errors.Is(err, wire.StatusKeyExists) {
		t.Fatalf("duplicate RESERVE when full: %v, want KEY_EXISTS", err)
	}
	if err := c.release(1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.reserve(3, testSpec(3), nil); err != nil {
		t.Fatalf("RESERVE after RELEASE: %v", err)
	}
	s.SetCapacity(3)
	if _, err := c.reserve(4, testSpec(4), nil); err != nil {
		t.Fatalf("RESERVE after SetCapacity(3): %v", err)
	}
	if l, _ := c.ping(); l != (wire.Load{Capacity: 3, InUse: 3}) {
		t.Fatalf("load %+v", l)
	}
	s.SetCapacity(-5)
	if _, err := c.reserve(5, testSpec(5), nil); !errors.Is(err, wire.StatusCapacity) {
		t.Fatalf("RESERVE after SetCapacity(-5): %v, want CAPACITY", err)
	}
	if st := s.Stats(); st.Capacity != 0 || st.Reservations != 3 || st.Errors.Capacity != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBadRequests(t *testing.T) {
	_, addr := startServer(t, Config{})
	c := dial(t, addr)
	badSpec := testSpec(1)
	badSpec.Tone = 9
	cases := []struct {
		name string
		op   wire.Op
		p    wire.Payload
		want wire.Status
	}{
		{"truncated reserve", wire.OpReserve, &wire.KeyRequest{Key: 1}, wire.StatusBadRequest},
		{"invalid spec", wire.OpReserve, &wire.UpdateRequest{Key: 1, Spec: badSpec}, wire.StatusBadRequest},
		{"key zero", wire.OpReserve, &wire.UpdateRequest{Key: 0, Spec: testSpec(1)}, wire.StatusBadRequest},
		{"ping with payload", wire.OpTelPing, &wire.KeyRequest{Key: 1}, wire.StatusBadRequest},
		{"hello trailing bytes", wire.OpHello, &wire.UpdateRequest{Key: 1, Spec: testSpec(1)}, wire.StatusBadRequest},
		{"release trailing", wire.OpTelRelease, &wire.UpdateRequest{Key: 1, Spec: testSpec(1)}, wire.StatusBadRequest},
		{"lookup empty", wire.OpTelLookup, nil, wire.StatusBadRequest},
		{"update truncated", wire.OpTelUpdate, nil, wire.StatusBadRequest},
		{"front-end op", wire.OpAllocate, nil, wire.StatusUnsupported},
		{"unknown op", wire.Op(0x1F), nil, wire.StatusUnsupported},
	}
	for _, tc := range cases {
		h, p := c.call(tc.op, tc.p)
		err := status(h, p)
		var re *wire.RemoteError
		if !errors.Is(err, tc.want) || !errors.As(err, &re) || re.Message == "" {
			t.Errorf("%s: %v, want %v with a message", tc.name, err, tc.want)
		}
	}
	// A request carrying a status is malformed.
	c.writeRaw(rawFrame(12, wire.Version, byte(wire.OpTelPing), 0, byte(wire.StatusInternal), 99, nil))
	if h, p := c.recv(); h.ID != 99 || !errors.Is(status(h, p), wire.StatusBadRequest) {
		t.Fatalf("request with a status: %+v %v", h, status(h, p))
	}
	// The connection survived all of it.
	if _, err := c.ping(); err != nil {
		t.Fatalf("PING after bad requests: %v", err)
	}
}

func TestFramingErrorsCloseTheConnection(t *testing.T) {
	s, addr := startServer(t, Config{})
	cases := map[string][]byte{
		"oversize length":  rawFrame(wire.DefaultMaxFrame, wire.Version, byte(wire.OpTelPing), 0, 0, 1, make([]byte, 64)),
		"huge length":      rawFrame(0xFFFFFFFF, wire.Version, byte(wire.OpTelPing), 0, 0, 1, nil),
		"short length":     rawFrame(3, wire.Version, byte(wire.OpTelPing), 0, 0, 1, nil),
		"bad version":      rawFrame(12, 7, byte(wire.OpTelPing), 0, 0, 1, nil),
		"bad flags":        rawFrame(12, wire.Version, byte(wire.OpTelPing), 0x40, 0, 1, nil),
		"response flagged": rawFrame(12, wire.Version, byte(wire.OpTelPing), wire.FlagResponse, 0, 1, nil),
		"garbage":          []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			c := dial(t, addr)
			if _, err := c.ping(); err != nil { // a working connection first
				t.Fatal(err)
			}
			c.writeRaw(b)
			c.expectClosed()
		})
	}
	t.Run("truncated then EOF", func(t *testing.T) {
		c := dial(t, addr)
		c.writeRaw(rawFrame(20, wire.Version, byte(wire.OpTelPing), 0, 0, 1, []byte{1, 2}))
		_ = c.nc.(*net.TCPConn).CloseWrite()
		c.expectClosed()
	})
	testsupport.WaitFor(t, "connections to close", func() bool { return s.Stats().Conns == 0 })
}

// TestPipelining sends 1000 requests before reading any reply.
func TestPipelining(t *testing.T) {
	_, addr := startServer(t, Config{})
	c := dial(t, addr)
	const n = 1000
	want := make(map[uint64]wire.Op, n)
	for i := range n {
		key := uint64(1 + i/4)
		var id uint64
		switch op := i % 4; op {
		case 0:
			id = c.frame(wire.OpReserve, &wire.UpdateRequest{Key: key, Spec: testSpec(i), Meta: []byte("m")})
			want[id] = wire.OpReserve
		case 1:
			id = c.frame(wire.OpTelLookup, &wire.KeyRequest{Key: key})
			want[id] = wire.OpTelLookup
		case 2:
			id = c.frame(wire.OpTelPing, nil)
			want[id] = wire.OpTelPing
		case 3:
			id = c.frame(wire.OpTelRelease, &wire.KeyRequest{Key: key})
			want[id] = wire.OpTelRelease
		}
	}
	c.flush()
	for range n {
		h, p := c.recv()
		op, ok := want[h.ID]
		if !ok || op != h.Op {
			t.Fatalf("reply %+v: unknown or duplicate id (want op %v)", h, op)
		}
		if err := status(h, p); err != nil {
			t.Fatalf("reply %+v: %v", h, err)
		}
		delete(want, h.ID)
	}
	if len(want) != 0 {
		t.Fatalf("%d requests unanswered", len(want))
	}
}

// TestLatencyDoesNotSerialize sends N requests with a service latency L on
// one connection: they must complete in well under N×L.
func TestLatencyDoesNotSerialize(t *testing.T) {
	const lat, n = 100 * time.Millisecond, 40
	s, addr := startServer(t, Config{Latency: lat})
	c := dial(t, addr)
	if _, err := c.ping(); err != nil { // warm; PING has no latency
		t.Fatal(err)
	}
	start := time.Now()
	for i := range n {
		c.frame(wire.OpReserve, &wire.UpdateRequest{Key: uint64(i + 1), Spec: testSpec(i)})
	}
	c.flush()
	for range n {
		if h, p := c.recv(); status(h, p) != nil {
			t.Fatal(status(h, p))
		}
	}
	el := time.Since(start)
	if el < lat {
		t.Fatalf("%d replies in %v, before the latency %v", n, el, lat)
	}
	if el >= n/4*lat {
		t.Fatalf("%d replies with latency %v took %v: serialized (bound %v)", n, lat, el, n/4*lat)
	}
	if st := s.Stats(); st.Faults.Delayed != n {
		t.Fatalf("delayed %d, want %d", st.Faults.Delayed, n)
	}
	// SetLatency(0) answers at once again.
	s.SetLatency(0, 0)
	if _, err := c.lookup(1); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Faults.Delayed != n {
		t.Fatalf("delayed %d after SetLatency(0), want %d", st.Faults.Delayed, n)
	}
}

// TestInFlightBound checks that a full in-flight window holds the reader
// back without dropping anything.
func TestInFlightBound(t *testing.T) {
	_, addr := startServer(t, Config{Latency: 2 * time.Millisecond, Jitter: 3 * time.Millisecond, MaxInFlight: 2})
	c := dial(t, addr)
	const n = 50
	for i := range n {
		c.frame(wire.OpReserve, &wire.UpdateRequest{Key: uint64(i + 1), Spec: testSpec(i)})
	}
	c.flush()
	seen := map[uint64]bool{}
	for range n {
		h, p := c.recv()
		if err := status(h, p); err != nil || seen[h.ID] {
			t.Fatalf("reply %+v: %v (seen %v)", h, err, seen[h.ID])
		}
		seen[h.ID] = true
	}
}

// TestHalfCloseGetsEveryReply: a client that shuts its write side after the
// last request still receives every reply, delayed ones included.
func TestHalfCloseGetsEveryReply(t *testing.T) {
	_, addr := startServer(t, Config{Latency: 5 * time.Millisecond})
	c := dial(t, addr)
	for i := range 5 {
		c.frame(wire.OpReserve, &wire.UpdateRequest{Key: uint64(i + 1), Spec: testSpec(i)})
		c.frame(wire.OpTelPing, nil)
	}
	c.flush()
	_ = c.nc.(*net.TCPConn).CloseWrite()
	for range 10 {
		if h, p := c.recv(); status(h, p) != nil {
			t.Fatal(status(h, p))
		}
	}
	if _, _, err := c.recvErr(ioTimeout); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last reply: %v, want EOF", err)
	}
}

func TestAccessCodesAndBridgeIDs(t *testing.T) {
	_, addr := startServer(t, Config{})
	c := dial(t, addr)
	const n = 2000
	ids, codes := map[string]bool{}, map[string]bool{}
	var toll []byte
	for i := range n {
		key := uint64(100_000_000 + i)
		b, err := c.reserve(key, testSpec(i), nil)
		if err != nil {
			t.Fatal(err)
		}
		if ids[string(b.ID)] || codes[string(b.AttendeeCode)] {
			t.Fatalf("reservation %d repeats bridge id %q or attendee code %q", i, b.ID, b.AttendeeCode)
		}
		ids[string(b.ID)], codes[string(b.AttendeeCode)] = true, true
		if !digits(b.HostCode, 8) || !digits(b.AttendeeCode, 9) || bytes.Equal(b.HostCode, b.AttendeeCode) {
			t.Fatalf("codes %q / %q", b.HostCode, b.AttendeeCode)
		}
		if string(b.AttendeeCode) == fmt.Sprint(key) {
			t.Fatalf("attendee code equals the key %d", key)
		}
		if toll == nil {
			toll = b.Toll
		} else if !bytes.Equal(toll, b.Toll) {
			t.Fatalf("toll number changed: %q → %q", toll, b.Toll)
		}
		if len(b.ID) > wire.MaxShort || len(b.Toll) > wire.MaxShort || len(b.TollFree) > wire.MaxShort {
			t.Fatalf("field over MaxShort: %q", b)
		}
	}
}

func digits(b []byte, n int) bool {
	if len(b) != n || b[0] == '0' {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// TestConcurrentClients runs several connections against one table.
func TestConcurrentClients(t *testing.T) {
	s, addr := startServer(t, Config{Capacity: 1000})
	const conns, per = 4, 300
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for w := range conns {
		c := dial(t, addr)
		wg.Go(func() {
			for i := range per {
				key := uint64(w*per + i + 1)
				if _, err := c.reserve(key, testSpec(i), []byte{byte(w)}); err != nil {
					errs <- err
					return
				}
				r, err := c.lookup(key)
				if err != nil || !bytes.Equal(r.Meta, []byte{byte(w)}) {
					errs <- fmt.Errorf("lookup %d: %v %q", key, err, r.Meta)
					return
				}
				if err := c.release(key); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := s.Stats()
	if st.Reservations != 0 || st.Reserves != conns*per || st.Lookups != conns*per || st.Releases != conns*per {
		t.Fatalf("stats %+v", st)
	}
}

func TestStats(t *testing.T) {
	s, addr := startServer(t, Config{Tier: "nextgen", Capacity: 1})
	c := dial(t, addr)
	if _, err := c.hello(); err != nil {
		t.Fatal(err)
	}
	_, _ = c.ping()
	_, _ = c.reserve(1, testSpec(1), nil)
	_, _ = c.reserve(1, testSpec(1), nil) // KEY_EXISTS
	_, _ = c.reserve(2, testSpec(1), nil) // CAPACITY
	_, _ = c.update(1, testSpec(2), nil)
	_, _ = c.lookup(1)
	_, _ = c.lookup(9)                         // NOT_FOUND
	_ = c.release(9)                           // NOT_FOUND
	_ = c.release(1)                           //
	c.call(wire.OpReserve, &wire.KeyRequest{}) // BAD_REQUEST
	c.call(wire.Op(0x1E), nil)                 // UNSUPPORTED
	c2 := dial(t, addr)
	_, _ = c2.ping()
	st := s.Stats()
	want := Stats{
		Tier: "nextgen", ServerID: "telsim-nextgen", Listening: true,
		Reservations: 0, Capacity: 1, Conns: 2, ConnsTotal: 2,
		Requests: 13, Hellos: 1, Pings: 2, Reserves: 4, Updates: 1, Releases: 2, Lookups: 2,
		Errors: ErrorStats{KeyExists: 1, Capacity: 1, NotFound: 2, BadRequest: 1, Unsupported: 1},
	}
	if st != want {
		t.Fatalf("stats\n got %+v\nwant %+v", st, want)
	}
	_ = c2.nc.Close()
	testsupport.WaitFor(t, "conns to drop to 1", func() bool { return s.Stats().Conns == 1 })
}

// TestCloseWithOpenConns closes a server with idle connections, pending
// delayed replies and a reader blocked on its in-flight bound; goleak (in
// TestMain) and the closed connections prove nothing is left behind.
func TestCloseWithOpenConns(t *testing.T) {
	s, err := New(Config{Latency: time.Hour, MaxInFlight: 2})
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := a.String()
	idle := dial(t, addr)
	if _, err := idle.ping(); err != nil {
		t.Fatal(err)
	}
	busy := dial(t, addr)
	for i := range 5 { // 2 pending, the reader blocked on the third
		busy.frame(wire.OpTelLookup, &wire.KeyRequest{Key: uint64(i + 1)})
	}
	busy.flush()
	testsupport.WaitFor(t, "delayed replies", func() bool { return s.Stats().Faults.Delayed == 2 })
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Close()
	}()
	select {
	case <-done:
	case <-time.After(ioTimeout):
		t.Fatal("Close blocked")
	}
	idle.expectClosed()
	busy.expectClosed()
	if err := s.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", addr, ioTimeout); err == nil {
		t.Fatal("still listening after Close")
	}
	if st := s.Stats(); st.Conns != 0 || st.Listening {
		t.Fatalf("after Close: %+v", st)
	}
	if _, err := s.Start("127.0.0.1:0"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v", err)
	}
	if err := s.SetFault(Fault{Mode: ModeDown}); !errors.Is(err, ErrClosed) {
		t.Fatalf("SetFault after Close: %v", err)
	}
}

func TestServeLifecycle(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr() != nil {
		t.Fatal("Addr before Serve")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	testsupport.WaitFor(t, "Serve", func() bool { return s.Addr() != nil })
	if s.Addr().String() != ln.Addr().String() {
		t.Fatalf("Addr %v, want %v", s.Addr(), ln.Addr())
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(ln2); !errors.Is(err, ErrServing) {
		t.Fatalf("second Serve: %v", err)
	}
	c := dial(t, ln.Addr().String())
	if _, err := c.ping(); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve returned %v after Close", err)
		}
	case <-time.After(ioTimeout):
		t.Fatal("Serve did not return")
	}
	// Close of a server that never served.
	s2, _ := New(Config{})
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestClientThatNeverReads: a client that floods requests without reading
// is disconnected after WriteTimeout, and nothing blocks.
func TestClientThatNeverReads(t *testing.T) {
	s, addr := startServer(t, Config{WriteTimeout: 100 * time.Millisecond})
	// A small receive buffer set before connect keeps the advertised window
	// small, so the server's writes block soon.
	d := net.Dialer{Timeout: ioTimeout, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &tclient{t: t, nc: nc}
	defer nc.Close()
	var req []byte
	for i := range 4096 {
		req, _ = wire.AppendFrame(req, wire.Header{Op: wire.OpTelPing, ID: uint64(i)}, nil, wire.DefaultMaxFrame)
	}
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		_ = c.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
		for {
			if _, err := c.nc.Write(req); err != nil {
				return // the server gave up on us
			}
		}
	}()
	testsupport.WaitFor(t, "the server to drop the client", func() bool {
		return s.Stats().ConnsTotal == 1 && s.Stats().Conns == 0
	})
	_ = c.nc.Close()
	<-writerDone
}
