package grpcpeer

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	pb "switchboard/bench/grpcpeer/peerpb"
	"switchboard/internal/testsupport"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startPeer starts a peer (three stubs, a front) in a short temporary
// directory and a client of it over two connections, all stopped at
// cleanup. The attempt timeout is generous: a loaded machine must not turn
// a slow answer into a failover.
func startPeer(t *testing.T, o Options) (*Service, *Client) {
	t.Helper()
	dir := testsupport.ShortTempDir(t)
	sock := filepath.Join(dir, "peer.sock")
	svc, err := Start(Config{Socket: sock, AttemptTimeout: 5 * time.Second}, o)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(sock, 2, o)
	if err != nil {
		_ = svc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if err := svc.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return svc, c
}

func testSpec() *pb.Spec {
	return &pb.Spec{
		Name: "EMEA Sales Pipeline Review", Start: 1_790_000_000, TimeZone: 22, Duration: 60, Tone: 2,
		Repeat:        &pb.Recurrence{Kind: 2, Interval: 1, Until: 1_800_000_000, Days: 1 << 2},
		FullAttendees: 25, LimitedAttendees: 100,
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// allocateN runs callers goroutines, each allocating each times with a
// token of its own (prefix-caller-i), and returns the answers.
func allocateN(t *testing.T, ctx context.Context, c *Client, prefix string, callers, each int) []*pb.AllocateResponse {
	t.Helper()
	var (
		mu  sync.Mutex
		out []*pb.AllocateResponse
		wg  sync.WaitGroup
	)
	errs := make(chan error, callers)
	for g := range callers {
		wg.Go(func() {
			for i := range each {
				req := &pb.AllocateRequest{Token: fmt.Sprintf("%s-%d-%d", prefix, g, i), Spec: testSpec(), Meta: []byte("an opaque meeting record")}
				resp, err := c.Allocate(ctx, req)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				out = append(out, resp)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return out
}

// TestPeerAllocatesAndFailsOver proves the peer does the work it is
// measured for, in both configurations: concurrent allocations get
// distinct keys, reserved on the first tier; a token replays its first
// answer without a second reserve; every release reaches the stub that
// holds the key; and with the first tier's stub down, allocations go to
// the next tier and are released there.
func TestPeerAllocatesAndFailsOver(t *testing.T) {
	for _, o := range []Options{{}, {Tuned: true}} {
		t.Run(fmt.Sprintf("tuned=%v", o.Tuned), func(t *testing.T) {
			const callers, each = 8, 10
			svc, c := startPeer(t, o)
			ctx := testCtx(t)
			primary, nextgen := svc.Stubs[0], svc.Stubs[1]

			got := allocateN(t, ctx, c, "tok", callers, each)
			seen := map[uint64]bool{}
			for _, r := range got {
				if r.Replayed || r.Tier != Tiers[0] || r.GetBridge().GetId() == "" || r.GetBridge().GetHostCode() == "" {
					t.Fatalf("answer %v", r)
				}
				if r.Key < FirstKey || r.Key > lastKey || seen[r.Key] {
					t.Fatalf("key %d out of range or issued twice", r.Key)
				}
				seen[r.Key] = true
			}
			if st := primary.Stats(); st.Reserved != callers*each || st.Live != callers*each {
				t.Fatalf("primary after allocating: %+v", st)
			}

			// A token seen before replays, and no stub is asked again.
			replay, err := c.Allocate(ctx, &pb.AllocateRequest{Token: "tok-3-7", Spec: testSpec()})
			if err != nil || !replay.Replayed || !seen[replay.Key] {
				t.Fatalf("replay %v, %v", replay, err)
			}
			if st := primary.Stats(); st.Reserved != callers*each {
				t.Fatalf("a replay reached the stub: %+v", st)
			}

			// The primary's stub down: the next tier takes every allocation.
			if err := primary.Close(); err != nil {
				t.Fatal(err)
			}
			over := allocateN(t, ctx, c, "over", 2, 5)
			for _, r := range over {
				if r.Tier != Tiers[1] || seen[r.Key] {
					t.Fatalf("with %s down: %v", Tiers[0], r)
				}
				seen[r.Key] = true
			}
			if st := nextgen.Stats(); st.Reserved != 10 || st.Live != 10 {
				t.Fatalf("%s after failover: %+v", Tiers[1], st)
			}
			for _, r := range over {
				if err := c.Release(ctx, r.Key); err != nil {
					t.Fatalf("release %d on %s: %v", r.Key, Tiers[1], err)
				}
			}
			if st := nextgen.Stats(); st.Released != 10 || st.Live != 0 {
				t.Fatalf("%s after releasing: %+v", Tiers[1], st)
			}
			// A key held by the downed primary cannot be released: the
			// session is kept for a retry.
			if err := c.Release(ctx, got[0].Key); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("release on a downed tier: %v, want ErrUnavailable", err)
			}
			if n := svc.Front.Live(); n != callers*each {
				t.Fatalf("front live %d, want %d", n, callers*each)
			}
			if err := c.Release(ctx, 42); !errors.Is(err, ErrNotFound) {
				t.Fatalf("releasing an unknown key: %v, want ErrNotFound", err)
			}
		})
	}
}

// TestPeerRefuses checks the peer's refusals map to the sentinels, and
// that every tier down is ErrUnavailable.
func TestPeerRefuses(t *testing.T) {
	svc, c := startPeer(t, Options{})
	ctx := testCtx(t)

	bad := testSpec()
	bad.TimeZone = 99
	if _, err := c.Allocate(ctx, &pb.AllocateRequest{Spec: bad}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("bad spec: %v, want ErrBadRequest", err)
	}
	if _, err := c.Allocate(ctx, &pb.AllocateRequest{Token: string(make([]byte, MaxToken+1)), Spec: testSpec()}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("long token: %v, want ErrBadRequest", err)
	}
	// A full tier is passed over too.
	svc.Stubs[0].SetCapacity(1)
	for _, want := range []string{Tiers[0], Tiers[1]} {
		r, err := c.Allocate(ctx, &pb.AllocateRequest{Spec: testSpec()})
		if err != nil || r.Tier != want {
			t.Fatalf("allocate: %v, %v; want tier %s", r, err, want)
		}
	}
	for _, st := range svc.Stubs {
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Allocate(ctx, &pb.AllocateRequest{Spec: testSpec()}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("every stub down: %v, want ErrUnavailable", err)
	}
	c.Close()
	if _, err := c.Allocate(ctx, &pb.AllocateRequest{Spec: testSpec()}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
}
