package httpbaseline

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"switchboard/internal/testsupport"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startService starts a baseline in a short temporary directory and a
// client of it, both stopped at cleanup.
func startService(t *testing.T, conns int) (*Service, *Client) {
	t.Helper()
	dir := testsupport.ShortTempDir(t)
	svc, err := Start(filepath.Join(dir, "baseline.sock"))
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(svc.Daemon.cfg.Socket, conns)
	t.Cleanup(func() {
		c.Close()
		if err := svc.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return svc, c
}

func testSpec() Spec {
	return Spec{
		Name: "EMEA Sales Pipeline Review", Start: 1_790_000_000, TimeZone: 22, Duration: 60, Tone: 2,
		Repeat:        Recurrence{Kind: 2, Interval: 1, Until: 1_800_000_000, Days: 1 << 2},
		FullAttendees: 25, LimitedAttendees: 100,
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestBaselineAllocates proves the baseline does the work it is measured
// for: concurrent allocations get distinct keys, each one reserved on the
// stub over HTTP; a token replays its first answer without a second
// reserve; every release reaches the stub; and keep-alive holds the number
// of connections on both hops to the number of concurrent callers.
func TestBaselineAllocates(t *testing.T) {
	const callers, each = 8, 25
	svc, c := startService(t, callers)
	ctx := testCtx(t)
	meta := []byte("an opaque meeting record")

	keys := make([][]AllocateResponse, callers)
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for g := range callers {
		wg.Go(func() {
			for i := range each {
				req := AllocateRequest{Token: fmt.Sprintf("tok-%d-%d", g, i), Spec: testSpec(), Meta: meta}
				resp, err := c.Allocate(ctx, &req)
				if err != nil {
					errs <- err
					return
				}
				keys[g] = append(keys[g], resp)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	seen := map[uint64]bool{}
	for _, rs := range keys {
		for _, r := range rs {
			if r.Replayed || r.Tier != Tier || r.Bridge.ID == "" || r.Bridge.HostCode == "" {
				t.Fatalf("answer %+v", r)
			}
			if r.Key < FirstKey || r.Key > lastKey || seen[r.Key] {
				t.Fatalf("key %d out of range or issued twice", r.Key)
			}
			seen[r.Key] = true
		}
	}
	if st := svc.Stub.Stats(); st.Reserved != callers*each || st.Live != callers*each {
		t.Fatalf("stub after allocating: %+v", st)
	}

	// A token seen before replays, and the stub is not asked again.
	replay, err := c.Allocate(ctx, &AllocateRequest{Token: "tok-3-7", Spec: testSpec()})
	if err != nil || !replay.Replayed || replay.Key != keys[3][7].Key || replay.Bridge != keys[3][7].Bridge {
		t.Fatalf("replay %+v, %v; want key %d replayed", replay, err, keys[3][7].Key)
	}
	if st := svc.Stub.Stats(); st.Reserved != callers*each {
		t.Fatalf("a replay reached the stub: %+v", st)
	}

	for k := range seen {
		if err := c.Release(ctx, k); err != nil {
			t.Fatalf("release %d: %v", k, err)
		}
	}
	st := svc.Stub.Stats()
	if st.Released != callers*each || st.Live != 0 || svc.Daemon.Live() != 0 {
		t.Fatalf("after releasing: stub %+v, daemon live %d", st, svc.Daemon.Live())
	}
	// Without keep-alive every request would dial: 400 connections per hop.
	// With it, about one per caller; a few more are normal, as
	// http.Transport dials while waiting for a busy connection to come back.
	if st.Conns > 2*callers || svc.Daemon.Conns() > 2*callers {
		t.Fatalf("connections: %d to the stub, %d to the daemon; want at most %d each (keep-alive)",
			st.Conns, svc.Daemon.Conns(), 2*callers)
	}

	// A released token allocates anew.
	again, err := c.Allocate(ctx, &AllocateRequest{Token: "tok-3-7", Spec: testSpec()})
	if err != nil || again.Replayed || seen[again.Key] {
		t.Fatalf("after release, token reused: %+v, %v", again, err)
	}
}

func TestBaselineRefuses(t *testing.T) {
	svc, c := startService(t, 1)
	ctx := testCtx(t)

	if err := c.Release(ctx, 123); !errors.Is(err, ErrNotFound) {
		t.Fatalf("releasing an unknown key: %v, want ErrNotFound", err)
	}
	bad := testSpec()
	bad.TimeZone = 99
	if _, err := c.Allocate(ctx, &AllocateRequest{Spec: bad}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("bad spec: %v, want ErrBadRequest", err)
	}
	if _, err := c.Allocate(ctx, &AllocateRequest{Token: string(make([]byte, MaxToken+1)), Spec: testSpec()}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("long token: %v, want ErrBadRequest", err)
	}

	// The stub at capacity: the daemon passes CAPACITY on.
	svc.Stub.SetCapacity(1)
	if _, err := c.Allocate(ctx, &AllocateRequest{Spec: testSpec()}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Allocate(ctx, &AllocateRequest{Spec: testSpec()}); !errors.Is(err, ErrCapacity) {
		t.Fatalf("stub full: %v, want ErrCapacity", err)
	}

	// The stub gone: UNAVAILABLE, and the session is kept for a retry.
	if err := svc.Stub.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Allocate(ctx, &AllocateRequest{Spec: testSpec()}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("stub down: %v, want ErrUnavailable", err)
	}
	if err := c.Release(ctx, FirstKey); !errors.Is(err, ErrUnavailable) || svc.Daemon.Live() != 1 {
		t.Fatalf("release with the stub down: %v, live %d; want ErrUnavailable, 1", err, svc.Daemon.Live())
	}

	c.Close()
	if _, err := c.Allocate(ctx, &AllocateRequest{Spec: testSpec()}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
}
