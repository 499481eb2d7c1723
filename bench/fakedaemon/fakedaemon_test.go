package fakedaemon

import (
	"bufio"
	"errors"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"switchboard/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// rawConn is a minimal synchronous client written against wire only.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	r  *bufio.Reader
	id uint64
}

func dial(t *testing.T, s *Server) *rawConn {
	t.Helper()
	c, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

func (rc *rawConn) send(op wire.Op, p wire.Payload) uint64 {
	rc.t.Helper()
	rc.id++
	b, err := wire.AppendFrame(nil, wire.Header{Op: op, ID: rc.id}, p, wire.DefaultMaxFrame)
	if err != nil {
		rc.t.Fatal(err)
	}
	if _, err := rc.c.Write(b); err != nil {
		rc.t.Fatal(err)
	}
	return rc.id
}

func (rc *rawConn) recv() (wire.Header, []byte) {
	rc.t.Helper()
	h, p, _, err := wire.ReadFrame(rc.r, nil, wire.DefaultMaxFrame)
	if err != nil {
		rc.t.Fatal(err)
	}
	return h, p
}

// call sends one request and returns its answer: the payload, or the
// decoded error for a non-OK status.
func (rc *rawConn) call(op wire.Op, p wire.Payload) ([]byte, error) {
	rc.t.Helper()
	id := rc.send(op, p)
	h, payload := rc.recv()
	if h.ID != id || h.Op != op || !h.IsResponse() {
		rc.t.Fatalf("answer header %+v for request id %d op %v", h, id, op)
	}
	if h.Status != wire.StatusOK {
		return nil, wire.DecodeError(h.Status, payload)
	}
	return payload, nil
}

func TestOps(t *testing.T) {
	s := StartTB(t, Config{})
	rc := dial(t, s)

	if _, err := rc.call(wire.OpPing, nil); err != nil {
		t.Fatalf("ping: %v", err)
	}

	req := &wire.AllocateRequest{Token: []byte("tok-1"), Spec: wire.Spec{Name: []byte("Weekly sync"), TimeZone: -1, Duration: 30}, Meta: []byte("meta!")}
	p, err := rc.call(wire.OpAllocate, req)
	if err != nil {
		t.Fatalf("allocate: %v", err)
	}
	var a wire.AllocateResponse
	if err := a.Decode(p); err != nil {
		t.Fatal(err)
	}
	if a.Key != DefaultFirstKey || a.Replayed || string(a.Tier) != DefaultTier || len(a.Bridge.ID) == 0 {
		t.Fatalf("allocate answer %+v", a)
	}

	// Same token: the first result again, flagged as replayed.
	p, err = rc.call(wire.OpAllocate, req)
	if err != nil {
		t.Fatal(err)
	}
	var again wire.AllocateResponse
	if err := again.Decode(p); err != nil {
		t.Fatal(err)
	}
	if again.Key != a.Key || !again.Replayed {
		t.Fatalf("replay answer %+v, want key %d replayed", again, a.Key)
	}

	// A new token: the next key.
	p, err = rc.call(wire.OpAllocate, &wire.AllocateRequest{Token: []byte("tok-2"), Spec: wire.Spec{Name: []byte("x"), TimeZone: -1}})
	if err != nil {
		t.Fatal(err)
	}
	var b wire.AllocateResponse
	if err := b.Decode(p); err != nil {
		t.Fatal(err)
	}
	if b.Key != a.Key+1 {
		t.Fatalf("second key %d, want %d", b.Key, a.Key+1)
	}

	p, err = rc.call(wire.OpLookup, &wire.KeyRequest{Key: a.Key})
	if err != nil {
		t.Fatalf("lookup: %v", err)
	}
	var res wire.Reservation
	if err := res.Decode(p); err != nil {
		t.Fatal(err)
	}
	if res.Key != a.Key || string(res.Spec.Name) != "Weekly sync" || string(res.Meta) != "meta!" || string(res.Bridge.ID) != string(a.Bridge.ID) {
		t.Fatalf("lookup answer %+v", res)
	}

	p, err = rc.call(wire.OpUpdate, &wire.UpdateRequest{Key: a.Key, Spec: wire.Spec{Name: []byte("Renamed"), TimeZone: 4}, Meta: []byte("m2")})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if err := res.Decode(p); err != nil {
		t.Fatal(err)
	}
	if string(res.Spec.Name) != "Renamed" || res.Spec.TimeZone != 4 || string(res.Meta) != "m2" {
		t.Fatalf("update answer %+v", res)
	}

	if _, err := rc.call(wire.OpRelease, &wire.KeyRequest{Key: a.Key}); err != nil {
		t.Fatalf("release: %v", err)
	}
	for _, op := range []wire.Op{wire.OpLookup, wire.OpRelease} {
		_, err := rc.call(op, &wire.KeyRequest{Key: a.Key})
		var re *wire.RemoteError
		if !errors.Is(err, wire.StatusNotFound) || !errors.As(err, &re) || re.Message != "no session 100000000" {
			t.Fatalf("%v after release: %v, want NOT_FOUND: no session 100000000", op, err)
		}
	}
	if _, err := rc.call(wire.OpUpdate, &wire.UpdateRequest{Key: 42, Spec: wire.Spec{TimeZone: -1}}); !errors.Is(err, wire.StatusNotFound) {
		t.Fatalf("update of unknown key: %v", err)
	}
	if _, err := rc.call(wire.OpHello, &wire.Hello{Client: []byte("x")}); !errors.Is(err, wire.StatusUnsupported) {
		t.Fatalf("telephony op: %v", err)
	}
	if _, err := rc.call(wire.OpAllocate, &wire.KeyRequest{Key: 1}); !errors.Is(err, wire.StatusBadRequest) {
		t.Fatalf("garbage allocate: %v", err)
	}

	st := s.Stats()
	if st.Allocated != 2 || st.Replayed != 1 || st.Released != 1 || st.Live != 1 || st.Conns != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFailAndDelay(t *testing.T) {
	s := StartTB(t, Config{
		Delay: time.Millisecond,
		Fail: func(op wire.Op, seq uint64) wire.Status {
			if op == wire.OpAllocate && seq%2 == 0 {
				return wire.StatusCapacity
			}
			return wire.StatusOK
		},
	})
	rc := dial(t, s)
	// Pipeline four allocations; answers may come in any order.
	ids := map[uint64]bool{}
	for range 4 {
		ids[rc.send(wire.OpAllocate, &wire.AllocateRequest{Spec: wire.Spec{TimeZone: -1}})] = true
	}
	var ok, capacity int
	for range 4 {
		h, _ := rc.recv()
		if !ids[h.ID] {
			t.Fatalf("unexpected id %d", h.ID)
		}
		delete(ids, h.ID)
		switch h.Status {
		case wire.StatusOK:
			ok++
		case wire.StatusCapacity:
			capacity++
		default:
			t.Fatalf("status %v", h.Status)
		}
	}
	if ok != 2 || capacity != 2 {
		t.Fatalf("ok %d capacity %d, want 2 and 2", ok, capacity)
	}
	if st := s.Stats(); st.Allocated != 2 || st.Live != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCloseWithPendingDelayedAnswers(t *testing.T) {
	s := StartTB(t, Config{Delay: time.Hour})
	rc := dial(t, s)
	rc.send(wire.OpPing, nil)
	// Close must not wait an hour: it stops delayed answers and closes conns.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, _, err := wire.ReadFrame(rc.r, nil, wire.DefaultMaxFrame); err == nil {
		t.Fatal("read after Close succeeded")
	}
}
