package client

import (
	"bufio"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"switchboard/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeDaemon speaks the front-end protocol on a Unix socket, with an
// in-memory reservation table and idempotency tokens. Every request is
// answered on its own goroutine, so replies leave out of order.
type fakeDaemon struct {
	ln   net.Listener
	path string

	hold chan struct{} // when set, ALLOCATE waits for it to close

	requests atomic.Int32
	refuse   atomic.Int32 // the next this many connections are refused with a GOODBYE frame
	refused  atomic.Int32
	// evictNext, when set, makes the next connection one the daemon evicts
	// after answering its first request (evictConn).
	evictNext func(nc net.Conn)

	mu       sync.Mutex
	nextKey  uint64
	byKey    map[uint64]*wire.Reservation
	byToken  map[string]uint64
	conns    map[net.Conn]struct{}
	closed   bool
	dead     chan struct{}
	wg       sync.WaitGroup
	accepted atomic.Int32
}

func startDaemon(tb testing.TB) *fakeDaemon {
	tb.Helper()
	d, err := listenDaemon(filepath.Join(tb.TempDir(), "sb.sock"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(d.stop)
	return d
}

func listenDaemon(path string) (*fakeDaemon, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	d := &fakeDaemon{ln: ln, path: path, nextKey: 100000000, byKey: map[uint64]*wire.Reservation{},
		byToken: map[string]uint64{}, conns: map[net.Conn]struct{}{}, dead: make(chan struct{})}
	d.wg.Add(1)
	go d.accept()
	return d, nil
}

func (d *fakeDaemon) accept() {
	defer d.wg.Done()
	for {
		nc, err := d.ln.Accept()
		if err != nil {
			return
		}
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			nc.Close()
			return
		}
		d.conns[nc] = struct{}{}
		d.wg.Add(1)
		evict := d.evictNext
		d.evictNext = nil
		d.mu.Unlock()
		d.accepted.Add(1) // after the choice of evictNext: a test waiting for it sees that choice made
		if d.refuse.Add(-1) >= 0 {
			go d.goodbye(nc)
			continue
		}
		d.refuse.Store(0)
		if evict != nil {
			go func() {
				defer d.wg.Done()
				evict(nc)
			}()
			continue
		}
		go d.serve(nc)
	}
}

// dropConns closes every client connection but keeps listening.
func (d *fakeDaemon) dropConns() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for nc := range d.conns {
		nc.Close()
	}
}

// stop closes the listener and every connection and waits. Idempotent.
func (d *fakeDaemon) stop() {
	d.mu.Lock()
	if !d.closed {
		close(d.dead)
	}
	d.closed = true
	d.ln.Close()
	d.mu.Unlock()
	d.dropConns()
	d.wg.Wait()
}

// goodbye refuses nc as the daemon does at its max_conns: a GOODBYE frame,
// then close, executing nothing. It first waits for the client's request
// (or a second) so that the request is in flight when it is refused.
func (d *fakeDaemon) goodbye(nc net.Conn) {
	defer d.wg.Done()
	defer func() {
		d.mu.Lock()
		delete(d.conns, nc)
		d.mu.Unlock()
		nc.Close()
	}()
	nc.SetReadDeadline(time.Now().Add(time.Second))
	nc.Read(make([]byte, 1))
	f, _ := wire.AppendFrame(nil, wire.Header{Op: wire.OpGoodbye, Flags: wire.FlagResponse, Status: wire.StatusOverloaded},
		&wire.ErrorMessage{Message: []byte("refused: at max_conns")}, wire.DefaultMaxFrame)
	nc.Write(f)
	d.refused.Add(1)
}

func (d *fakeDaemon) serve(nc net.Conn) {
	defer d.wg.Done()
	var hwg sync.WaitGroup
	defer func() {
		hwg.Wait()
		d.mu.Lock()
		delete(d.conns, nc)
		d.mu.Unlock()
		nc.Close()
	}()
	var wmu sync.Mutex
	write := func(b []byte) {
		wmu.Lock()
		defer wmu.Unlock()
		_, _ = nc.Write(b)
	}
	br := bufio.NewReader(nc)
	for {
		h, pl, _, err := wire.ReadFrame(br, nil, wire.DefaultMaxFrame) // fresh buffer: handled concurrently
		if err != nil {
			return
		}
		d.requests.Add(1)
		hwg.Add(1)
		go func() {
			defer hwg.Done()
			if h.Op == wire.OpAllocate && d.hold != nil {
				select {
				case <-d.hold:
				case <-d.dead:
					return
				}
			}
			write(d.handle(h, pl))
		}()
	}
}

func (d *fakeDaemon) handle(h wire.Header, pl []byte) []byte {
	ok := func(p wire.Payload) []byte {
		b, _ := wire.AppendFrame(nil, h.Response(wire.StatusOK), p, wire.DefaultMaxFrame)
		return b
	}
	fail := func(s wire.Status, msg string) []byte { return wire.AppendError(nil, h, s, msg) }
	d.mu.Lock()
	defer d.mu.Unlock()
	switch h.Op {
	case wire.OpPing:
		return ok(nil)
	case wire.OpAllocate:
		var r wire.AllocateRequest
		if err := r.Decode(pl); err != nil {
			return fail(wire.StatusBadRequest, err.Error())
		}
		if k, seen := d.byToken[string(r.Token)]; seen && len(r.Token) > 0 {
			res := d.byKey[k]
			return ok(&wire.AllocateResponse{Key: k, Replayed: true, Tier: res.Tier, Bridge: res.Bridge})
		}
		d.nextKey++
		k := d.nextKey
		id := []byte("br-" + strconv.FormatUint(k, 10))
		res := &wire.Reservation{Key: k, Tier: []byte("primary-large"),
			Bridge: wire.Bridge{ID: id, Toll: []byte("+1 555 0100"), TollFree: []byte("+1 800 0100"), HostCode: []byte("111"), AttendeeCode: []byte("222")},
			Spec:   r.Spec, Meta: r.Meta}
		d.byKey[k] = res
		if len(r.Token) > 0 {
			d.byToken[string(r.Token)] = k
		}
		return ok(&wire.AllocateResponse{Key: k, Tier: res.Tier, Bridge: res.Bridge})
	case wire.OpLookup, wire.OpRelease:
		var r wire.KeyRequest
		if err := r.Decode(pl); err != nil {
			return fail(wire.StatusBadRequest, err.Error())
		}
		res, found := d.byKey[r.Key]
		if !found {
			return fail(wire.StatusNotFound, "no session "+strconv.FormatUint(r.Key, 10))
		}
		if h.Op == wire.OpRelease {
			delete(d.byKey, r.Key)
			return ok(nil)
		}
		return ok(res)
	case wire.OpUpdate:
		var r wire.UpdateRequest
		if err := r.Decode(pl); err != nil {
			return fail(wire.StatusBadRequest, err.Error())
		}
		res, found := d.byKey[r.Key]
		if !found {
			return fail(wire.StatusNotFound, "no session")
		}
		res.Spec, res.Meta = r.Spec, r.Meta
		return ok(res)
	}
	return fail(wire.StatusUnsupported, "unknown op")
}
