package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/internal/testsupport"
	"switchboard/mux"
	"switchboard/wire"
)

func dialT(t testing.TB, d *fakeDaemon, opts ...Option) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, d.path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func spec(name string) wire.Spec {
	return wire.Spec{Name: []byte(name), Start: 1_900_000_000, TimeZone: 4, Duration: 60, Tone: wire.ToneBeep,
		Repeat: wire.Recurrence{Kind: wire.RepeatWeekly, Interval: 1, Days: 0b0000010}, FullAttendees: 10}
}

func TestLifecycle(t *testing.T) {
	d := startDaemon(t)
	c := dialT(t, d)
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	meta := []byte(`<meeting confID="1"/>`)
	a, err := c.Allocate(ctx, &wire.AllocateRequest{Token: []byte("tok-1"), Spec: spec("standup"), Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	if a.Key == 0 || a.Replayed || a.Tier != "primary-large" || a.Bridge.ID != fmt.Sprintf("br-%d", a.Key) || a.Bridge.AttendeeCode != "222" {
		t.Fatalf("allocation %+v", a)
	}
	again, err := c.Allocate(ctx, &wire.AllocateRequest{Token: []byte("tok-1"), Spec: spec("standup")})
	if err != nil || !again.Replayed || again.Key != a.Key {
		t.Fatalf("replayed allocation %+v, %v", again, err)
	}

	r, err := c.Lookup(ctx, a.Key)
	if err != nil {
		t.Fatal(err)
	}
	want := Reservation{Key: a.Key, Tier: "primary-large", Bridge: a.Bridge, Spec: specOf(new(spec("standup"))), Meta: meta}
	if fmt.Sprint(r) != fmt.Sprint(want) {
		t.Fatalf("lookup\n got %+v\nwant %+v", r, want)
	}
	if w := r.Spec.Wire(); w.Validate() != nil || !bytes.Equal(w.Name, []byte("standup")) || specOf(&w) != r.Spec {
		t.Errorf("Spec.Wire round trip: %+v", w)
	}

	s2 := spec("retro")
	u, err := c.Update(ctx, a.Key, &s2, []byte("m2"))
	if err != nil || u.Spec.Name != "retro" || string(u.Meta) != "m2" {
		t.Fatalf("update %+v, %v", u, err)
	}
	if err := c.Release(ctx, a.Key); err != nil {
		t.Fatal(err)
	}
	_, err = c.Lookup(ctx, a.Key)
	var re *wire.RemoteError
	if !errors.Is(err, wire.StatusNotFound) || !errors.As(err, &re) || !strings.Contains(re.Message, "no session") {
		t.Fatalf("lookup after release: %v", err)
	}
	if err := c.Release(ctx, a.Key); !errors.Is(err, wire.StatusNotFound) {
		t.Fatalf("second release: %v", err)
	}
}

// TestResultsDoNotAlias: returned values own their memory (reply buffers
// are pooled and reused).
func TestResultsDoNotAlias(t *testing.T) {
	d := startDaemon(t)
	c := dialT(t, d)
	ctx := context.Background()
	a, err := c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("one"), Meta: []byte("meta-one")})
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Lookup(ctx, a.Key)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, err := c.Allocate(ctx, &wire.AllocateRequest{Spec: spec(fmt.Sprintf("other-%02d", i)), Meta: []byte("xxxxxxxx")}); err != nil {
			t.Fatal(err)
		}
	}
	if string(r.Meta) != "meta-one" || r.Spec.Name != "one" || a.Bridge.ID != fmt.Sprintf("br-%d", a.Key) {
		t.Fatalf("results changed under us: %+v / %+v", r, a)
	}
}

func TestConcurrentPipelined(t *testing.T) {
	d := startDaemon(t)
	c := dialT(t, d, WithConns(3))
	testsupport.WaitFor(t, "the condition", func() bool { return d.accepted.Load() == 3 })
	const workers, per = 24, 40
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		keys = map[uint64]bool{}
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				name := fmt.Sprintf("w%d-%d", w, i)
				a, err := c.Allocate(context.Background(), &wire.AllocateRequest{Spec: spec(name)})
				if err != nil {
					t.Error(err)
					return
				}
				r, err := c.Lookup(context.Background(), a.Key)
				if err != nil || r.Spec.Name != name {
					t.Errorf("lookup %d: %+v, %v", a.Key, r, err)
					return
				}
				mu.Lock()
				if keys[a.Key] {
					t.Errorf("key %d twice", a.Key)
				}
				keys[a.Key] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(keys) != workers*per {
		t.Errorf("%d keys, want %d", len(keys), workers*per)
	}
}

func TestInvalidArgumentsNotSent(t *testing.T) {
	d := startDaemon(t)
	c := dialT(t, d)
	ctx := context.Background()
	cases := map[string]*wire.AllocateRequest{
		"long token": {Token: make([]byte, wire.MaxToken+1), Spec: spec("x")},
		"long meta":  {Spec: spec("x"), Meta: make([]byte, wire.MaxMeta+1)},
		"bad tz":     {Spec: wire.Spec{TimeZone: 99}},
	}
	for name, req := range cases {
		if _, err := c.Allocate(ctx, req); !errors.Is(err, wire.ErrFieldTooLong) && !errors.Is(err, wire.ErrBadValue) {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := wire.Spec{Tone: 9}
	if _, err := c.Update(ctx, 1, &bad, nil); !errors.Is(err, wire.ErrBadValue) {
		t.Errorf("update with a bad tone: %v", err)
	}
	if n := d.requests.Load(); n != 0 {
		t.Errorf("%d invalid requests reached the daemon", n)
	}
}

// TestRedialAfterConnLoss: calls in flight when the daemon drops the
// connection fail with mux.ErrConnLost; the next call redials.
func TestRedialAfterConnLoss(t *testing.T) {
	d := startDaemon(t)
	d.hold = make(chan struct{})
	c := dialT(t, d)
	errc := make(chan error, 4)
	for range 4 {
		go func() {
			_, err := c.Allocate(context.Background(), &wire.AllocateRequest{Spec: spec("held")})
			errc <- err
		}()
	}
	testsupport.WaitFor(t, "the condition", func() bool { return d.requests.Load() == 4 })
	d.dropConns()
	for range 4 {
		if err := <-errc; !errors.Is(err, mux.ErrConnLost) || !mux.Sent(err) {
			t.Fatalf("in-flight allocate: %v, want mux.ErrConnLost", err)
		}
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("ping after the drop: %v", err)
	}
	if got := d.accepted.Load(); got != 2 {
		t.Errorf("daemon accepted %d conns, want 2 (one redial)", got)
	}
}

// TestRefusedCallIsSentAgain: the daemon at its max_conns refuses the
// client's redial with a GOODBYE frame, three times: an ALLOCATE without a
// token written on those connections was never read, so the client sends
// it again (after a backoff) until a connection is served, and it is
// executed exactly once. Before, the refusal failed the call
// (mux.ErrConnLost: a tokenless ALLOCATE is never resent).
func TestRefusedCallIsSentAgain(t *testing.T) {
	d := startDaemon(t)
	c := dialT(t, d)
	testsupport.WaitFor(t, "the condition", func() bool { return d.accepted.Load() == 1 })
	d.dropConns()
	testsupport.WaitFor(t, "the condition", func() bool { return !c.slots[0].mc.Load().Alive() })
	d.refuse.Store(3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("refused thrice")}); err != nil {
		t.Fatalf("allocate refused at max_conns three times, then served: %v", err)
	}
	if got, refused := d.requests.Load(), d.refused.Load(); got != 1 || refused != 3 {
		t.Errorf("daemon executed %d requests and refused %d connections, want 1 and 3", got, refused)
	}
}

// TestRefusedUntilDeadline: against a daemon that keeps refusing, the
// call is retried until its deadline, then fails as refused (not sent, the
// GOODBYE's OVERLOADED: "busy, retry", even when the deadline passed
// during a try), and nothing was executed. Before, the error was often the
// context's alone, or a write's EPIPE, and never matched OVERLOADED.
//
// One outcome other than the refusal is right too: the deadline passed
// while the last try's frame was written and its connection's GOODBYE not
// yet read (on a loaded machine the refusal can arrive late); the client
// cannot know the daemon did not read it, so it reports the call sent,
// outcome unknown, with the deadline. The call is made up to five times;
// every one must end in one of the two, and at least one in the refusal.
func TestRefusedUntilDeadline(t *testing.T) {
	d := startDaemon(t)
	c := dialT(t, d)
	testsupport.WaitFor(t, "the condition", func() bool { return d.accepted.Load() == 1 })
	d.dropConns()
	testsupport.WaitFor(t, "the condition", func() bool { return !c.slots[0].mc.Load().Alive() })
	d.refuse.Store(1 << 20)
	refusals := 0
	for try := 0; try < 5 && refusals == 0; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		_, err := c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("refused")})
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("a call with a 300ms deadline took %v", took)
		}
		if dl, _ := ctx.Deadline(); time.Now().Before(dl) {
			t.Errorf("the call gave up before its deadline: %v", err)
		}
		cancel()
		switch {
		case err != nil && errors.Is(err, mux.ErrRefused) && errors.Is(err, wire.StatusOverloaded) && !mux.Sent(err):
			refusals++
		case err != nil && mux.Sent(err) && errors.Is(err, context.DeadlineExceeded):
			t.Logf("try %d: the deadline passed before the last connection's GOODBYE was read: %v", try, err)
		default:
			t.Fatalf("allocate against a daemon refusing every connection: %v; want mux.ErrRefused, OVERLOADED, not sent", err)
		}
	}
	if refusals == 0 {
		t.Errorf("no call of five ended as refused (OVERLOADED, not sent)")
	}
	if got := d.requests.Load(); got != 0 {
		t.Errorf("daemon executed %d requests, want 0", got)
	}
}

// TestRefusedThenDeadlineInATry: the daemon refuses the call's
// connections, and the deadline passes during a later try (here in the
// redial's dial; the same goes for a write): the call still fails as
// refused (OVERLOADED, not sent), with the deadline. Before, it failed
// with the dial's timeout alone, which a front end takes for a daemon
// that is down.
func TestRefusedThenDeadlineInATry(t *testing.T) {
	d := startDaemon(t)
	var dials atomic.Int32
	c := dialT(t, d, WithDialer(func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) > 3 { // Dial's, then two refused redials
			<-ctx.Done()
			return nil, ctx.Err()
		}
		var nd net.Dialer
		return nd.DialContext(ctx, network, addr)
	}))
	testsupport.WaitFor(t, "the condition", func() bool { return d.accepted.Load() == 1 })
	d.refuse.Store(1 << 20)
	d.dropConns()
	testsupport.WaitFor(t, "the condition", func() bool { return !c.slots[0].mc.Load().Alive() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := c.Ping(ctx)
	if n := d.refused.Load(); n != 2 {
		t.Fatalf("%d connections refused, want 2", n)
	}
	if err == nil || !errors.Is(err, mux.ErrRefused) || !errors.Is(err, wire.StatusOverloaded) || !errors.Is(err, context.DeadlineExceeded) || mux.Sent(err) {
		t.Fatalf("a call refused, then out of time in its next dial: %v; want refused (OVERLOADED, not sent) and the deadline", err)
	}
}

// TestConcurrentRedialShared: many callers finding the conn dead share one
// redial.
func TestConcurrentRedialShared(t *testing.T) {
	d := startDaemon(t)
	c := dialT(t, d)
	testsupport.WaitFor(t, "the condition", func() bool { return d.accepted.Load() == 1 })
	d.dropConns()
	testsupport.WaitFor(t, "the condition", func() bool { return !c.slots[0].mc.Load().Alive() })
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Ping(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := d.accepted.Load(); got != 2 {
		t.Errorf("daemon accepted %d conns, want 2", got)
	}
}

func TestDaemonGone(t *testing.T) {
	d := startDaemon(t)
	c := dialT(t, d)
	d.stop()
	testsupport.WaitFor(t, "the condition", func() bool { return !c.slots[0].mc.Load().Alive() })
	err := c.Ping(context.Background())
	if err == nil || mux.Sent(err) {
		t.Fatalf("ping with no daemon: %v, want a dial error", err)
	}
	if _, err := Dial(context.Background(), filepath.Join(t.TempDir(), "none.sock")); err == nil {
		t.Fatal("Dial to a missing socket succeeded")
	}
}

func TestClose(t *testing.T) {
	d := startDaemon(t)
	d.hold = make(chan struct{})
	c := dialT(t, d, WithConns(2))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Allocate(context.Background(), &wire.AllocateRequest{Spec: spec("held")})
		errc <- err
	}()
	testsupport.WaitFor(t, "the condition", func() bool { return d.requests.Load() == 1 })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, mux.ErrConnLost) {
		t.Errorf("in-flight call at Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := c.Ping(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("ping after Close: %v", err)
	}
}

func TestDialOptions(t *testing.T) {
	d := startDaemon(t)
	if _, err := Dial(context.Background(), d.path, WithMaxFrame(100)); err == nil {
		t.Error("WithMaxFrame(100) accepted")
	}
	dialed := 0
	c := dialT(t, d, WithConns(0), WithMaxFrame(wire.MinMaxFrame), WithDialer(func(ctx context.Context, network, addr string) (net.Conn, error) {
		dialed++
		var nd net.Dialer
		return nd.DialContext(ctx, network, addr)
	}))
	if dialed != 1 || len(c.slots) != 1 {
		t.Errorf("dialed %d, %d slots", dialed, len(c.slots))
	}
	// A frame over the limit is refused locally.
	_, err := c.Allocate(context.Background(), &wire.AllocateRequest{Spec: spec("x"), Meta: make([]byte, wire.MinMaxFrame)})
	if !errors.Is(err, wire.ErrFrameTooLarge) || mux.Sent(err) {
		t.Errorf("oversize allocate: %v", err)
	}
}
