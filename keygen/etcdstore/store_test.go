package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"switchboard/internal/clock/clocktest"
	"switchboard/internal/etcdtest"
	"switchboard/keygen"
	"switchboard/keygen/etcdstore"
)

var testSecret = []byte("switchboard-etcd-test-secret-0123")

func binding(digits int, secret []byte) keygen.Binding {
	return keygen.Binding{Digits: digits, Node: keygen.NodeConfig{Count: 1}, Fingerprint: keygen.FingerprintOf(secret)}
}

func dial(t *testing.T, srv *etcdtest.Server) *clientv3.Client {
	t.Helper()
	cli, err := etcdstore.Dial(etcdstore.ClientConfig{Endpoints: []string{srv.Endpoint()}, DialTimeout: 2 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// newClock returns a settable clock for the segment sizing.
func newClock() *clocktest.Clock {
	return clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
}

func newStore(t *testing.T, cli *clientv3.Client, cfg etcdstore.Config, clk *clocktest.Clock) *etcdstore.Store {
	t.Helper()
	if cfg.Prefix == "" {
		cfg.Prefix = "/" + strings.ReplaceAll(t.Name(), "/", "_") + "/"
	}
	var now func() time.Time
	if clk != nil {
		now = clk.Now
	}
	s, err := etcdstore.New(cli, cfg, now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// TestCreateBindLease: Create writes the key space once, Bind attaches to
// it, leases are consecutive and the mark in etcd is past every one.
func TestCreateBindLease(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := dial(t, srv)
	b := binding(9, testSecret)
	init := newStore(t, cli, etcdstore.Config{Prefix: "/sb/"}, nil)
	part, err := init.Create(ctx(t), b)
	if err != nil || !part.Created || part.Lo != 0 || part.Hi != keygen.DomainSize(9) || part.Next != 0 {
		t.Fatalf("Create = %+v, %v", part, err)
	}
	if _, err := newStore(t, cli, etcdstore.Config{Prefix: "/sb/"}, nil).Create(ctx(t), b); !errors.Is(err, keygen.ErrKeySpaceExists) {
		t.Fatalf("second Create: %v, want ErrKeySpaceExists", err)
	}
	s := newStore(t, cli, etcdstore.Config{Prefix: "/sb/", MinBlock: 100}, nil)
	if part, err := s.Bind(ctx(t), b); err != nil || part.Next != 0 {
		t.Fatalf("Bind = %+v, %v", part, err)
	}
	var prev uint64
	for range 5 {
		start, end, err := s.Lease(ctx(t), 40)
		if err != nil || start != prev || end-start > 40 || end <= start {
			t.Fatalf("Lease = [%d, %d), %v after %d", start, end, err, prev)
		}
		prev = end
	}
	resp, err := cli.Get(ctx(t), "/sb/mark")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get mark: %v", err)
	}
	if got := string(resp.Kvs[0].Value); got != fmt.Sprint(s.Status().LastEnd) || s.Status().LastEnd < prev {
		t.Fatalf("mark %s, last segment end %d, leased up to %d", got, s.Status().LastEnd, prev)
	}
}

// TestBindRefusesOtherBinding: a daemon with another secret or digit
// count is refused, and the message names the field.
func TestBindRefusesOtherBinding(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := dial(t, srv)
	s := newStore(t, cli, etcdstore.Config{Prefix: "/sb/"}, nil)
	if _, err := s.Create(ctx(t), binding(9, testSecret)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Lease(ctx(t), 10); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		b    keygen.Binding
		want string
	}{
		{"secret", binding(9, []byte("another-secret-of-the-wrong-host")), "secret fingerprint"},
		{"digits", binding(10, testSecret), "digits: etcd holds 9, this daemon is configured for 10"},
	} {
		_, err := newStore(t, cli, etcdstore.Config{Prefix: "/sb/"}, nil).Bind(ctx(t), tc.b)
		if !errors.Is(err, keygen.ErrBindingChanged) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Bind: %v, want ErrBindingChanged naming %q", tc.name, err, tc.want)
		}
		if tc.name == "digits" && strings.Contains(fmt.Sprint(err), "fingerprint") {
			t.Errorf("digits: message names the fingerprint, which agrees: %v", err)
		}
	}
}

// TestBindNeverCreates: Bind on an empty prefix fails with
// ErrStateMissing and writes nothing; node ids are refused.
func TestBindNeverCreates(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := dial(t, srv)
	s := newStore(t, cli, etcdstore.Config{Prefix: "/sb/"}, nil)
	if _, err := s.Bind(ctx(t), binding(9, testSecret)); !errors.Is(err, keygen.ErrStateMissing) {
		t.Fatalf("Bind: %v, want ErrStateMissing", err)
	}
	resp, err := cli.Get(ctx(t), "/sb/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("prefix holds %d keys (%v), want none", len(resp.Kvs), err)
	}
	b := binding(9, testSecret)
	b.Node = keygen.NodeConfig{ID: 1, Count: 3}
	if _, err := s.Create(ctx(t), b); !errors.Is(err, keygen.ErrInvalidConfig) || !strings.Contains(err.Error(), "node") {
		t.Fatalf("Create with a node partition: %v, want ErrInvalidConfig about the node", err)
	}
}

// TestConcurrentStoresNeverOverlap: several stores (daemons) lease from one
// key space at once through their own clients; every counter is handed out
// at most once, and lost races were retried.
func TestConcurrentStoresNeverOverlap(t *testing.T) {
	srv := etcdtest.Start(t)
	b := binding(9, testSecret)
	if _, err := newStore(t, dial(t, srv), etcdstore.Config{Prefix: "/sb/"}, nil).Create(ctx(t), b); err != nil {
		t.Fatal(err)
	}
	const stores, leases = 4, 40
	type rng struct{ start, end uint64 }
	var (
		mu     sync.Mutex
		ranges []rng
		lost   atomic.Uint64
		wg     sync.WaitGroup
	)
	for range stores {
		s := newStore(t, dial(t, srv), etcdstore.Config{Prefix: "/sb/", MinBlock: 7, MaxBlock: 7}, nil)
		if _, err := s.Bind(ctx(t), b); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for range leases {
				start, end, err := s.Lease(ctx(t), 7)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				ranges = append(ranges, rng{start, end})
				mu.Unlock()
			}
			lost.Add(s.Status().LostRaces)
		})
	}
	wg.Wait()
	slices.SortFunc(ranges, func(a, b rng) int { return int(a.start) - int(b.start) })
	for i := 1; i < len(ranges); i++ {
		if ranges[i].start < ranges[i-1].end {
			t.Fatalf("ranges overlap: [%d, %d) and [%d, %d)", ranges[i-1].start, ranges[i-1].end, ranges[i].start, ranges[i].end)
		}
	}
	if len(ranges) != stores*leases {
		t.Fatalf("%d ranges, want %d", len(ranges), stores*leases)
	}
	t.Logf("%d leases, %d lost races retried", len(ranges), lost.Load())
}

// TestDynamicStep: a store that uses up segments faster than the period
// doubles them up to MaxBlock; one that is slow halves them down to
// MinBlock.
func TestDynamicStep(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := dial(t, srv)
	clk := newClock()
	b := binding(9, testSecret)
	s := newStore(t, cli, etcdstore.Config{MinBlock: 100, MaxBlock: 800, Period: 10 * time.Second}, clk)
	if _, err := s.Create(ctx(t), b); err != nil {
		t.Fatal(err)
	}
	var txns []uint64 // segment sizes seen in etcd
	lease := func() {
		t.Helper()
		before := s.Status().Txns
		if _, _, err := s.Lease(ctx(t), 100); err != nil {
			t.Fatal(err)
		}
		if st := s.Status(); st.Txns != before {
			txns = append(txns, st.LastEnd-st.LastStart)
		}
	}
	for range 30 { // fast: 1 s per block of 100
		lease()
		clk.Advance(time.Second)
	}
	if got := s.Status().Step; got != 800 {
		t.Fatalf("step after fast leasing = %d, want the bound 800 (segments %v)", got, txns)
	}
	if !slices.Equal(txns[:4], []uint64{100, 200, 400, 800}) {
		t.Fatalf("segments %v, want doubling 100, 200, 400, 800", txns)
	}
	txns = nil
	for range 30 { // slow: 30 s per block of 100
		lease()
		clk.Advance(30 * time.Second)
	}
	if got := s.Status().Step; got != 100 {
		t.Fatalf("step after slow leasing = %d, want the floor 100 (segments %v)", got, txns)
	}
}

// lossyKV commits transactions on the real etcd and then reports a
// timeout, as when the answer is lost after the request was sent.
type lossyKV struct {
	clientv3.KV
	lose atomic.Bool // commit, then report a timeout
	fail atomic.Bool // report a timeout without sending
}

func (k *lossyKV) Txn(ctx context.Context) clientv3.Txn { return &lossyTxn{Txn: k.KV.Txn(ctx), kv: k} }

type lossyTxn struct {
	clientv3.Txn
	kv *lossyKV
}

func (t *lossyTxn) If(c ...clientv3.Cmp) clientv3.Txn  { t.Txn = t.Txn.If(c...); return t }
func (t *lossyTxn) Then(o ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Then(o...); return t }
func (t *lossyTxn) Else(o ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Else(o...); return t }
func (t *lossyTxn) Commit() (*clientv3.TxnResponse, error) {
	if t.kv.fail.Load() {
		return nil, context.DeadlineExceeded
	}
	resp, err := t.Txn.Commit()
	if err == nil && t.kv.lose.Load() {
		return nil, context.DeadlineExceeded
	}
	return resp, err
}

// TestUnknownOutcomeNeverUsed: a lease transaction that committed but
// whose answer was lost is never used: the next lease re-reads the mark and
// starts above what that transaction wrote.
func TestUnknownOutcomeNeverUsed(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := dial(t, srv)
	lossy := &lossyKV{KV: cli.KV}
	cli.KV = lossy
	s := newStore(t, cli, etcdstore.Config{MinBlock: 50, MaxBlock: 50}, nil)
	if _, err := s.Create(ctx(t), binding(9, testSecret)); err != nil {
		t.Fatal(err)
	}
	if _, end, err := s.Lease(ctx(t), 50); err != nil || end != 50 {
		t.Fatalf("first lease: [.., %d), %v", end, err)
	}
	lossy.lose.Store(true)
	_, _, err := s.Lease(ctx(t), 50)
	if !errors.Is(err, keygen.ErrUnavailable) {
		t.Fatalf("lease with a lost answer: %v, want ErrUnavailable", err)
	}
	if st := s.Status(); st.Unknown != 1 || st.LastError == "" {
		t.Fatalf("status after the lost answer: %+v", st)
	}
	lossy.lose.Store(false)
	start, end, err := s.Lease(ctx(t), 50)
	if err != nil || start != 100 || end != 150 {
		t.Fatalf("lease after the lost answer = [%d, %d), %v; want [100, 150): [50, 100) was written by the lost transaction", start, end, err)
	}
}

// TestEtcdDownFailsFastAndRecovers: with etcd stopped, a lease that needs
// etcd fails within the request timeout with ErrUnavailable; counters
// already leased keep being handed out; once etcd is back, leasing resumes
// above every earlier lease.
func TestEtcdDownFailsFastAndRecovers(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := dial(t, srv)
	s := newStore(t, cli, etcdstore.Config{MinBlock: 10, MaxBlock: 10, RequestTimeout: 500 * time.Millisecond, Period: time.Hour}, nil)
	if _, err := s.Create(ctx(t), binding(9, testSecret)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Lease(ctx(t), 5); err != nil { // segment [0, 10), hands out [0, 5)
		t.Fatal(err)
	}
	srv.Stop()
	if start, end, err := s.Lease(ctx(t), 5); err != nil || start != 5 || end != 10 {
		t.Fatalf("lease from the buffered segment while etcd is down = [%d, %d), %v", start, end, err)
	}
	t0 := time.Now()
	_, _, err := s.Lease(ctx(t), 5)
	if !errors.Is(err, keygen.ErrUnavailable) {
		t.Fatalf("lease with etcd down: %v, want ErrUnavailable", err)
	}
	if took := time.Since(t0); took > 20*time.Second {
		t.Fatalf("lease with etcd down took %v", took)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	var start uint64
	deadline := time.Now().Add(30 * time.Second)
	for {
		start, _, err = s.Lease(ctx(t), 5)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || start < 10 {
		t.Fatalf("lease after etcd came back: start %d, %v", start, err)
	}
}

// TestMarkBackwardsRefused: a mark lower than what this store already
// leased (etcd restored from an older backup) is refused, never leased
// from.
func TestMarkBackwardsRefused(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := dial(t, srv)
	s := newStore(t, cli, etcdstore.Config{Prefix: "/sb/", MinBlock: 10, MaxBlock: 10}, nil)
	if _, err := s.Create(ctx(t), binding(9, testSecret)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, _, err := s.Lease(ctx(t), 10); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Put(ctx(t), "/sb/mark", "10"); err != nil { // the "restore"
		t.Fatal(err)
	}
	if _, _, err := s.Lease(ctx(t), 10); !errors.Is(err, keygen.ErrStateStale) {
		t.Fatalf("lease after the mark went back: %v, want ErrStateStale", err)
	}
}

// TestStepNotResizedByFailedAttempts: failed lease attempts (etcd down)
// do not resize the next segment again and again: once etcd answers, the
// segment has grown by one step, as for a single attempt.
func TestStepNotResizedByFailedAttempts(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := dial(t, srv)
	lossy := &lossyKV{KV: cli.KV}
	cli.KV = lossy
	clk := newClock()
	s := newStore(t, cli, etcdstore.Config{MinBlock: 100, MaxBlock: 6400, Period: 10 * time.Second}, clk)
	if _, err := s.Create(ctx(t), binding(9, testSecret)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Lease(ctx(t), 100); err != nil { // segment of 100
		t.Fatal(err)
	}
	lossy.fail.Store(true)
	for range 5 {
		clk.Advance(time.Second) // each attempt finds the segment used up fast
		if _, _, err := s.Lease(ctx(t), 100); !errors.Is(err, keygen.ErrUnavailable) {
			t.Fatalf("lease with etcd failing: %v", err)
		}
	}
	lossy.fail.Store(false)
	if _, _, err := s.Lease(ctx(t), 100); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); st.LastEnd-st.LastStart != 200 || st.Step != 200 {
		t.Fatalf("segment after the failures [%d, %d), step %d; want one doubling to 200", st.LastStart, st.LastEnd, st.Step)
	}
}

// TestLeaseRefusesRewrittenBinding: etcd's binding rewritten under a
// bound daemon (here by hand, as a restore or an operator could) stops its
// leases with ErrBindingChanged: the lease transaction compares the
// binding's revision, not only the mark's, so the daemon never leases
// counters that the fleet may now turn into keys of another permutation.
func TestLeaseRefusesRewrittenBinding(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := dial(t, srv)
	b := binding(9, testSecret)
	s := newStore(t, cli, etcdstore.Config{Prefix: "/sb/", MinBlock: 10, MaxBlock: 10}, nil)
	if _, err := s.Create(ctx(t), b); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Lease(ctx(t), 10); err != nil {
		t.Fatal(err)
	}
	other := binding(9, []byte("another-secret-of-another-operator"))
	rebound := fmt.Sprintf(`{"scheme":%d,"digits":9,"fingerprint":"%s"}`, etcdstore.SchemeVersion, other.Fingerprint)
	if _, err := cli.Put(ctx(t), "/sb/binding", rebound); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the transaction's Else branch, then the re-read
		if start, end, err := s.Lease(ctx(t), 10); !errors.Is(err, keygen.ErrBindingChanged) {
			t.Fatalf("lease after the binding was rewritten: [%d, %d) %v, want ErrBindingChanged", start, end, err)
		}
	}
}

// fleetOfTwo creates a key space under /sb/ and returns two bound stores
// (blocks of 64) after a leased [0, 64) and b leased [64, 128), and the
// etcd values of mark and fence between the two leases (a backup).
func fleetOfTwo(t *testing.T, cli *clientv3.Client) (a, b *etcdstore.Store, backup map[string]string) {
	t.Helper()
	bd := binding(9, testSecret)
	if _, err := newStore(t, cli, etcdstore.Config{Prefix: "/sb/"}, nil).Create(ctx(t), bd); err != nil {
		t.Fatal(err)
	}
	a = newStore(t, cli, etcdstore.Config{Prefix: "/sb/", MinBlock: 64, MaxBlock: 64}, nil)
	b = newStore(t, cli, etcdstore.Config{Prefix: "/sb/", MinBlock: 64, MaxBlock: 64}, nil)
	for _, s := range []*etcdstore.Store{a, b} {
		if _, err := s.Bind(ctx(t), bd); err != nil {
			t.Fatal(err)
		}
	}
	if start, _, err := a.Lease(ctx(t), 64); err != nil || start != 0 {
		t.Fatalf("a's lease: %d, %v", start, err)
	}
	backup = map[string]string{}
	for _, k := range []string{etcdstore.MarkKey, etcdstore.FenceKey} {
		resp, err := cli.Get(ctx(t), "/sb/"+k)
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("backup of %s: %v %v", k, resp, err)
		}
		backup[k] = string(resp.Kvs[0].Value)
	}
	if start, _, err := b.Lease(ctx(t), 64); err != nil || start != 64 {
		t.Fatalf("b's lease: %d, %v", start, err)
	}
	return a, b, backup
}

// TestKeyByKeyRestoreRefused: mark and fence both put back from a copy,
// one put each (a restore key by key), hold the same value at different
// revisions, which no lease writes: a running daemon that never saw the
// newer mark refuses to lease (it would repeat the other daemon's
// counters), and so does a daemon starting.
func TestKeyByKeyRestoreRefused(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := dial(t, srv)
	a, _, backup := fleetOfTwo(t, cli)
	for _, k := range []string{etcdstore.FenceKey, etcdstore.MarkKey} {
		if _, err := cli.Put(ctx(t), "/sb/"+k, backup[k]); err != nil {
			t.Fatal(err)
		}
	}
	if start, end, err := a.Lease(ctx(t), 64); !errors.Is(err, keygen.ErrStateStale) {
		t.Fatalf("running daemon after the restore: [%d, %d) %v, want ErrStateStale", start, end, err)
	}
	if _, err := newStore(t, cli, etcdstore.Config{Prefix: "/sb/"}, nil).Bind(ctx(t), binding(9, testSecret)); !errors.Is(err, keygen.ErrStateStale) {
		t.Fatalf("daemon starting after the restore: %v, want ErrStateStale", err)
	}
}

// TestSkipPastFenceResumes: after the mark was put back below the fence,
// the operator's skip (a Retire store) moves it forward; one that stops
// short of the fence leaves the daemons refusing, one that passes it lets
// a running daemon lease again, above every counter leased before, with no
// restart.
func TestSkipPastFenceResumes(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := dial(t, srv)
	a, _, backup := fleetOfTwo(t, cli)
	if _, err := cli.Put(ctx(t), "/sb/mark", backup[etcdstore.MarkKey]); err != nil { // the restore: mark 64, fence 128
		t.Fatal(err)
	}
	if _, _, err := a.Lease(ctx(t), 64); !errors.Is(err, keygen.ErrStateStale) {
		t.Fatalf("running daemon after the restore: %v, want ErrStateStale", err)
	}
	cfg := keygen.Config{Digits: 9, BlockSize: 64, Secret: testSecret}
	skip := func(n uint64) {
		t.Helper()
		if _, err := keygen.Skip(cfg, newStore(t, cli, etcdstore.Config{Prefix: "/sb/", MinBlock: 1, MaxBlock: 1, Retire: true}, nil), n); err != nil {
			t.Fatalf("skip %d: %v", n, err)
		}
	}
	skip(32) // mark 96, fence still 128
	if _, _, err := a.Lease(ctx(t), 64); !errors.Is(err, keygen.ErrStateStale) {
		t.Fatalf("running daemon after a skip short of the fence: %v, want ErrStateStale", err)
	}
	skip(32) // mark 128
	if start, end, err := a.Lease(ctx(t), 64); err != nil || start < 128 {
		t.Fatalf("running daemon after the skip past the fence: [%d, %d) %v, want a lease from 128 up", start, end, err)
	}
}

// TestMissingFenceRefused: a key space whose fence is missing (deleted,
// or written by hand without it) is refused by a daemon, which cannot tell
// whether its mark was put back; the operator's skip writes it again.
func TestMissingFenceRefused(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := dial(t, srv)
	b := binding(9, testSecret)
	if _, err := newStore(t, cli, etcdstore.Config{Prefix: "/sb/"}, nil).Create(ctx(t), b); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(ctx(t), "/sb/fence"); err != nil {
		t.Fatal(err)
	}
	if _, err := newStore(t, cli, etcdstore.Config{Prefix: "/sb/"}, nil).Bind(ctx(t), b); !errors.Is(err, keygen.ErrStateStale) {
		t.Fatalf("Bind without a fence: %v, want ErrStateStale", err)
	}
	if _, err := keygen.Skip(keygen.Config{Digits: 9, BlockSize: 64, Secret: testSecret}, newStore(t, cli, etcdstore.Config{Prefix: "/sb/", Retire: true}, nil), 10); err != nil {
		t.Fatal(err)
	}
	if part, err := newStore(t, cli, etcdstore.Config{Prefix: "/sb/"}, nil).Bind(ctx(t), b); err != nil || part.Next < 10 {
		t.Fatalf("Bind after the skip: %+v %v", part, err)
	}
}
