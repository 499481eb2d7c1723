package etcdstore

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"switchboard/keygen"
)

// SchemeVersion is the key scheme recorded in the binding: the version of
// keygen's counter-to-key permutation. A store written by another scheme is
// refused.
const SchemeVersion = 1

// Names of the keys under the prefix.
const (
	// BindingKey holds the binding as JSON ({"scheme", "digits",
	// "fingerprint"}), written once by Create.
	BindingKey = "binding"
	// MarkKey holds the high-water mark, a decimal counter: every counter
	// below it may have been issued, none at or above it has.
	MarkKey = "mark"
	// FenceKey holds the fence: the highest mark ever leased, a decimal
	// counter written with the mark by Create and by every lease
	// transaction, so that the two hold the same value at the same
	// revision. A mark below the fence was put back (etcd restored from an
	// older backup, or the mark edited) while the fence was not; a mark
	// equal to it but written at another revision was put back key by key.
	// Both are refused (keygen.ErrStateStale) by every daemon, running or
	// starting, whether or not it leased the counters in between. A daemon
	// that finds the mark below a mark it saw writes the fence alone,
	// raising it to that mark, so that the whole fleet refuses too.
	FenceKey = "fence"
	// FleetDir is the directory of the daemons' registrations (Register).
	FleetDir = "fleet/"
)

// Defaults of Config fields; a zero field means its default.
const (
	DefaultPrefix         = "/switchboard/keys/"
	DefaultRequestTimeout = 2 * time.Second
	DefaultMinBlock       = keygen.DefaultBlockSize
	DefaultMaxBlock       = 1 << 20
	DefaultPeriod         = 10 * time.Second
)

// Bounds of the delay before the watch of the mark key starts again after
// it broke (doubling from the first to the second).
const (
	watchMinBackoff = 100 * time.Millisecond
	watchMaxBackoff = 5 * time.Second
)

// Config configures a Store. Zero fields mean the documented defaults.
type Config struct {
	// Prefix is the etcd key prefix of the key space; it ends in "/".
	// Default "/switchboard/keys/".
	Prefix string
	// RequestTimeout bounds each etcd request. Default 2s.
	RequestTimeout time.Duration
	// MinBlock is the smallest segment leased from etcd (and where a new
	// store starts): keygen's block size. Default 4096.
	MinBlock uint64
	// MaxBlock bounds the segment, so a crash loses at most that many
	// counters. At least MinBlock. Default 1<<20.
	MaxBlock uint64
	// Period is the target lifetime of a segment: one used up faster doubles
	// the next, one that lasted more than twice as long halves it.
	// Default 10s.
	Period time.Duration
	// RecordFile, if set, is a local file (in the daemon's data directory)
	// where the store records the highest mark it leased or saw in etcd
	// (Status.Seen: its own leases, its reads, and every other daemon's
	// lease seen by its watch of the mark key), within milliseconds of
	// seeing it (best effort, not fsynced). Bind refuses an etcd mark
	// below the record (keygen.ErrStateStale): etcd was restored from an
	// older backup, and leasing from it would reissue keys, this daemon's
	// or another's. Default none.
	RecordFile string
	// Retire is for the operator's one-shot commands (skip, migrate),
	// which only retire the counters they lease: none of them ever becomes
	// a key. Such a store binds and leases even where the mark is below
	// the fence (FenceKey) or the fence is missing, which is how the mark
	// is moved forward past it after a restore; it does not watch the mark
	// key. A daemon's store never sets it. Default false.
	Retire bool
}

func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MinBlock == 0 {
		c.MinBlock = DefaultMinBlock
	}
	if c.MaxBlock == 0 {
		c.MaxBlock = max(DefaultMaxBlock, c.MinBlock)
	}
	if c.Period == 0 {
		c.Period = DefaultPeriod
	}
	return c
}

// Validate reports the first problem of c (after defaults), wrapping
// keygen.ErrInvalidConfig.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case !strings.HasPrefix(c.Prefix, "/") || !strings.HasSuffix(c.Prefix, "/"):
		return fmt.Errorf("%w: etcd prefix %q must start and end with /", keygen.ErrInvalidConfig, c.Prefix)
	case c.RequestTimeout < 0:
		return fmt.Errorf("%w: etcd request timeout %v is negative", keygen.ErrInvalidConfig, c.RequestTimeout)
	case c.MinBlock > keygen.MaxBlockSize:
		return fmt.Errorf("%w: block size %d, at most %d", keygen.ErrInvalidConfig, c.MinBlock, keygen.MaxBlockSize)
	case c.MaxBlock < c.MinBlock:
		return fmt.Errorf("%w: etcd max block %d is below the block size %d", keygen.ErrInvalidConfig, c.MaxBlock, c.MinBlock)
	case c.Period <= 0:
		return fmt.Errorf("%w: etcd block period %v must be positive", keygen.ErrInvalidConfig, c.Period)
	}
	return nil
}

// Status is a snapshot of a Store for the admin status and metrics.
type Status struct {
	Prefix string
	// Bound is true once the binding was read from etcd and matched.
	Bound bool
	// Step is the size of the next segment leased from etcd.
	Step uint64
	// SegmentLeft is the number of counters leased from etcd and not yet
	// handed to the generator (buffered in the store).
	SegmentLeft uint64
	// Mark is the high-water mark as last seen in etcd.
	Mark uint64
	// Seen is the highest mark this store leased or saw in etcd (its
	// leases, its reads and its watch of the mark key, which sees every
	// other daemon's lease), or one above the mark it found after etcd's
	// revision went back: it refuses to lease from a mark below it
	// (keygen.ErrStateStale).
	Seen uint64
	// LastLeaseAt, LastStart and LastEnd describe the last segment leased
	// from etcd (zero before the first).
	LastLeaseAt        time.Time
	LastStart, LastEnd uint64
	// Txns counts lease transactions sent; LostRaces those that lost to
	// another daemon and were retried; Unknown those whose outcome is
	// unknown (their range was never used).
	Txns, LostRaces, Unknown uint64
	// LastError is the most recent failure talking to etcd ("" if none
	// since the last success), and LastErrorAt when it happened.
	LastError   string
	LastErrorAt time.Time
}

// Store is a keygen.LeaseStore on etcd. It is safe for concurrent use; Bind,
// Lease and Create are serialised (each is a read-modify-write of the mark)
// and give up when their context ends. The client stays the caller's: Close
// does not close it.
type Store struct {
	cli *clientv3.Client
	cfg Config
	now func() time.Time
	sem chan struct{} // capacity 1: the token to run Bind, Create, Lease or Close

	// Guarded by sem; b, hi and bindRev are set once, by bind, before
	// the watch goroutine starts, which reads them.
	closed   bool
	bound    bool
	b        keygen.Binding
	hi       uint64 // the domain size: counters are [0, hi)
	known    bool   // mark and rev are what etcd holds, as far as we know
	mark     uint64
	rev      int64  // mod revision of the mark key
	bindRev  int64  // mod revision of the binding key bound to
	fence    uint64 // the fence (FenceKey) as last seen in etcd
	fenceRev int64  // its mod revision (0: no fence key, Retire only)
	segNext  uint64 // the segment leased from etcd and not yet handed out: [segNext, segEnd)
	segEnd   uint64
	step     uint64
	segAt    time.Time // when the current segment was leased
	st       Status    // published copy in status
	stop     func()    // stops the watch goroutine (nil: none running)

	// seen is the highest mark this store leased or saw in etcd (or one
	// above a mark found after etcd went back in time): the mark must
	// never be below it. Raised by leases, reads and the watch goroutine,
	// never lowered.
	seen atomic.Uint64
	revs revisions
	// wake asks the watch goroutine to write RecordFile (seen rose);
	// rewatch to watch again in etcd's new timeline (its revision went
	// back). Both of capacity 1, sent to without blocking.
	wake, rewatch chan struct{}
	// recorded is the mark RecordFile holds; owned by the watch goroutine
	// once it runs (set by bind before).
	recorded uint64

	status atomic.Pointer[Status]
}

// revisions is the highest etcd revision this store saw in a response
// (the header revision: the whole cluster's, not only this key space's).
// etcd's revision only grows, unless etcd is restored from a snapshot
// without --bump-revision: a linearizable response (every read and
// transaction of this store is one) carrying a revision below one seen
// before the request was sent means etcd went back in time. The watch's
// responses only raise it: a watch may be served by a member that lags.
type revisions struct {
	mu    sync.Mutex
	max   int64
	epoch uint64 // counts the times etcd was found to go back; max restarts then
}

// snap is what a request is checked against: taken before it is sent.
type snap struct {
	rev   int64
	epoch uint64
	seen  uint64
}

func (s *Store) snap() snap {
	s.revs.mu.Lock()
	sn := snap{rev: s.revs.max, epoch: s.revs.epoch}
	s.revs.mu.Unlock()
	sn.seen = s.seen.Load()
	return sn
}

// wentBack records the header revision got of a linearizable response to
// a request sent after sn was taken, and reports whether etcd went back in
// time since: then got starts the new timeline.
func (s *Store) wentBack(sn snap, got int64) bool {
	s.revs.mu.Lock()
	defer s.revs.mu.Unlock()
	if got < sn.rev && s.revs.epoch == sn.epoch {
		s.revs.epoch++
		s.revs.max = got
		return true
	}
	s.revs.max = max(s.revs.max, got)
	return false
}

// raiseSeen raises seen to m and asks the watch goroutine to record it.
func (s *Store) raiseSeen(m uint64) {
	for {
		old := s.seen.Load()
		if m <= old {
			return
		}
		if s.seen.CompareAndSwap(old, m) {
			poke(s.wake)
			return
		}
	}
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

var _ keygen.LeaseStore = (*Store)(nil)

// New returns a store of the key space under cfg.Prefix on the etcd cluster
// cli talks to. It sends nothing: Bind (or Create) does. now is the clock
// timing segments (nil: time.Now).
func New(cli *clientv3.Client, cfg Config, now func() time.Time) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cli == nil {
		return nil, fmt.Errorf("%w: no etcd client", keygen.ErrInvalidConfig)
	}
	if now == nil {
		now = time.Now
	}
	cfg = cfg.withDefaults()
	s := &Store{cli: cli, cfg: cfg, now: now, sem: make(chan struct{}, 1), step: cfg.MinBlock,
		wake: make(chan struct{}, 1), rewatch: make(chan struct{}, 1)}
	s.st = Status{Prefix: cfg.Prefix, Step: s.step}
	s.publish()
	return s, nil
}

// Status returns a snapshot of the store. It never waits for etcd.
func (s *Store) Status() Status {
	st := *s.status.Load()
	st.Seen = s.seen.Load()
	return st
}

// publish makes s.st visible to Status; called with the token held.
func (s *Store) publish() {
	st := s.st
	st.Bound, st.Step, st.Mark = s.bound, s.step, s.mark
	st.SegmentLeft = s.segEnd - s.segNext
	s.status.Store(&st)
}

func (s *Store) acquire(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
		if s.closed {
			<-s.sem
			return keygen.ErrClosed
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) release() { s.publish(); <-s.sem }

func (s *Store) key(name string) string { return s.cfg.Prefix + name }

// binding is BindingKey's JSON.
type binding struct {
	Scheme      int    `json:"scheme"`
	Digits      int    `json:"digits"`
	Fingerprint string `json:"fingerprint"`
}

func encodeBinding(b keygen.Binding) string {
	j, _ := json.Marshal(binding{Scheme: SchemeVersion, Digits: b.Digits, Fingerprint: b.Fingerprint.String()})
	return string(j)
}

// mismatch compares the stored binding with b and names every field that
// differs ("" when they agree).
func mismatch(stored []byte, b keygen.Binding) (string, error) {
	var sb binding
	if err := json.Unmarshal(stored, &sb); err != nil {
		return "", err
	}
	fp, err := hex.DecodeString(sb.Fingerprint)
	if err != nil || len(fp) != len(keygen.Fingerprint{}) {
		return "", fmt.Errorf("bad fingerprint %q", sb.Fingerprint)
	}
	var diff []string
	if sb.Scheme != SchemeVersion {
		diff = append(diff, fmt.Sprintf("scheme version: etcd holds %d, this daemon uses %d", sb.Scheme, SchemeVersion))
	}
	if sb.Digits != b.Digits {
		diff = append(diff, fmt.Sprintf("digits: etcd holds %d, this daemon is configured for %d", sb.Digits, b.Digits))
	}
	if sb.Fingerprint != b.Fingerprint.String() {
		diff = append(diff, fmt.Sprintf("secret fingerprint: etcd holds %s, this daemon's secret has %s (a different keys.secret or keygen.secret)", sb.Fingerprint, b.Fingerprint))
	}
	return strings.Join(diff, "; "), nil
}

func checkBinding(b keygen.Binding) error {
	if b.Digits < keygen.MinDigits || b.Digits > keygen.MaxDigits {
		return fmt.Errorf("%w: digits %d", keygen.ErrInvalidConfig, b.Digits)
	}
	if b.Node.Count > 1 || b.Node.ID != 0 {
		return fmt.Errorf("%w: node %d of %d: the etcd store has no node partitions (every daemon leases from the whole key space); remove keys.node", keygen.ErrInvalidConfig, b.Node.ID, b.Node.Count)
	}
	return nil
}

// unreachable wraps an etcd error as transient: the generator keeps serving
// buffered keys and retries.
func (s *Store) unreachable(op string, err error) error {
	s.st.LastError, s.st.LastErrorAt = fmt.Sprintf("%s: %v", op, err), s.now()
	// The cause is kept as text, not wrapped: an etcd timeout must not
	// read as the caller's own deadline (context.DeadlineExceeded).
	return fmt.Errorf("%w: etcd %s: %v", keygen.ErrUnavailable, op, err)
}

func (s *Store) ok() { s.st.LastError = "" }

func parseMark(v []byte, hi uint64) (uint64, error) {
	m, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil || m > hi {
		return 0, fmt.Errorf("%w: etcd mark %q is not a counter in [0, %d]", keygen.ErrStateCorrupt, v, hi)
	}
	return m, nil
}

// read fetches the binding, the mark and the fence in one snapshot (a
// linearizable read: etcd's default, which this store never changes). It
// refuses a response showing that etcd went back in time (rewound); seen
// is the store's seen when the read was sent: a mark read below it was
// put back.
func (s *Store) read(ctx context.Context) (bk, mk, fk *mvccKV, seen uint64, err error) {
	sn := s.snap()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(s.key(BindingKey)), clientv3.OpGet(s.key(MarkKey)), clientv3.OpGet(s.key(FenceKey))).Commit()
	if err != nil {
		return nil, nil, nil, 0, s.unreachable("read key space", err)
	}
	rs := resp.Responses
	bk, mk, fk = first(rs[0].GetResponseRange().Kvs), first(rs[1].GetResponseRange().Kvs), first(rs[2].GetResponseRange().Kvs)
	if err := s.rewound(ctx, sn, resp.Header.Revision, mk, fk); err != nil {
		return nil, nil, nil, 0, err
	}
	return bk, mk, fk, sn.seen, nil
}

// markOf is the counter mkv holds (0 if none or unreadable: the mark is
// then refused anyway).
func markOf(mkv *mvccKV) uint64 {
	if mkv == nil {
		return 0
	}
	m, _ := strconv.ParseUint(string(mkv.value), 10, 64)
	return m
}

// rewound refuses (keygen.ErrStateStale) a linearizable response of
// revision got, to a request sent after sn was taken, in which etcd's
// revision went back (etcd restored from a snapshot without
// --bump-revision): counters leased after the snapshot, by any daemon, may
// be leased again. mkv and fkv are the mark and the fence the response
// shows (or wrote): the store then refuses every mark below mark+1 (and
// below what it saw before) until the operator moves it forward, raises
// the fence for the fleet (fenceUp), and watches again in the new
// timeline. Called with the token held.
func (s *Store) rewound(ctx context.Context, sn snap, got int64, mkv, fkv *mvccKV) error {
	if !s.wentBack(sn, got) {
		return nil
	}
	mark := markOf(mkv)
	s.known = false
	s.raiseSeen(mark + 1)
	poke(s.rewatch)
	s.fenceUp(ctx, s.seen.Load(), s.bindRev, mkv, fkv)
	err := fmt.Errorf("%w: etcd's revision went back from %d to %d: etcd was restored from an older snapshot (without --bump-revision), and leasing from its mark (%d) could reissue keys leased after the snapshot. Move the mark under %s forward past every key issued since the snapshot (switchboard -skip-keys N, N at least %d); the daemons lease again by themselves once it is at least %d",
		keygen.ErrStateStale, sn.rev, got, mark, s.cfg.Prefix, max(s.seen.Load()-mark, 1), s.seen.Load())
	s.st.LastError, s.st.LastErrorAt = err.Error(), s.now()
	return err
}

// fenceUp raises etcd's fence to seen where the mark (mkv, freshly read)
// stands below seen, with a transaction that changes nothing if the mark
// or the fence moved since the read, or if the binding is not the one of
// mod revision bindRev (the key space this store bound to, or is binding
// to: a key space created again under another binding is not fenced by
// the old one's marks). Every daemon of the fleet then
// refuses the mark put back, a daemon started on an empty data directory
// too, and tells the operator how far to skip. Nothing is leased: the
// fence only says that marks up to seen existed. Best effort (each daemon
// that saw past the mark refuses it by itself anyway); never for the
// operator's Retire stores.
func (s *Store) fenceUp(ctx context.Context, seen uint64, bindRev int64, mkv, fkv *mvccKV) {
	if s.cfg.Retire || mkv == nil || fkv == nil || markOf(mkv) >= seen || markOf(fkv) >= seen {
		return
	}
	bk, mk, fk := s.key(BindingKey), s.key(MarkKey), s.key(FenceKey)
	tctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	_, _ = s.cli.Txn(tctx).
		If(clientv3.Compare(clientv3.ModRevision(bk), "=", bindRev),
			clientv3.Compare(clientv3.ModRevision(mk), "=", mkv.modRev),
			clientv3.Compare(clientv3.ModRevision(fk), "=", fkv.modRev)).
		Then(clientv3.OpPut(fk, strconv.FormatUint(seen, 10))).Commit()
}

// fenced parses the mark and the fence (mkv must exist) and refuses
// (keygen.ErrStateStale) a mark that the fence shows was put back, unless
// the store is the operator's (Config.Retire).
func (s *Store) fenced(hi uint64, mkv, fkv *mvccKV) (mark, fence uint64, err error) {
	mark, err = parseMark(mkv.value, hi)
	if err != nil {
		return 0, 0, err
	}
	if fkv == nil {
		if s.cfg.Retire {
			return mark, 0, nil
		}
		return 0, 0, fmt.Errorf("%w: etcd %s holds a %s (%d) but no %s, the highest mark ever leased, which every lease writes with it: whether the mark was put back cannot be told, and leasing from it could reissue keys. Move the mark forward past every key issued (switchboard -skip-keys N), which writes the %s again",
			keygen.ErrStateStale, s.cfg.Prefix, MarkKey, mark, FenceKey, FenceKey)
	}
	fence, err = strconv.ParseUint(string(fkv.value), 10, 64)
	if err != nil || fence > hi {
		return 0, 0, fmt.Errorf("%w: etcd %s %q is not a counter in [0, %d]", keygen.ErrStateCorrupt, s.key(FenceKey), fkv.value, hi)
	}
	switch {
	case s.cfg.Retire:
	case mark < fence:
		return 0, 0, fmt.Errorf("%w: the etcd %s under %s is %d, below its %s %d (the highest mark ever leased): the mark was put back (etcd restored from an older backup, or the mark edited), and leasing from it would reissue keys. Move the mark forward past every key issued since (switchboard -skip-keys N, N at least %d)",
			keygen.ErrStateStale, MarkKey, s.cfg.Prefix, mark, FenceKey, fence, fence-mark)
	case mark == fence && mkv.modRev != fkv.modRev:
		return 0, 0, fmt.Errorf("%w: the etcd %s and %s under %s (%d) were written at revisions %d and %d, not by one lease: they were put back key by key (restored from a copy, or edited), and leasing from them could reissue keys. Move the mark forward past every key issued since the copy (switchboard -skip-keys N)",
			keygen.ErrStateStale, MarkKey, FenceKey, s.cfg.Prefix, mark, mkv.modRev, fkv.modRev)
	}
	return mark, fence, nil
}

func modRev(kv *mvccKV) int64 {
	if kv == nil {
		return 0
	}
	return kv.modRev
}

// mvccKV is the part of an etcd key-value this store uses.
type mvccKV struct {
	value  []byte
	modRev int64
}

func first[T interface {
	GetValue() []byte
	GetModRevision() int64
}](kvs []T) *mvccKV {
	if len(kvs) == 0 {
		return nil
	}
	return &mvccKV{value: kvs[0].GetValue(), modRev: kvs[0].GetModRevision()}
}

// Create implements keygen.LeaseStore: it writes the binding and a mark of
// 0 where the prefix holds neither, in one transaction, and refuses
// (keygen.ErrKeySpaceExists) wherever it holds a key space. Unlike the file
// store, it never replaces a binding under which nothing was leased yet:
// the key space is the fleet's, and a daemon may already be bound to it
// (or an operator on another host may have just created it). A key space
// under another binding is refused with an error that also wraps
// keygen.ErrBindingChanged and names each field that differs.
func (s *Store) Create(ctx context.Context, b keygen.Binding) (keygen.Partition, error) {
	if err := checkBinding(b); err != nil {
		return keygen.Partition{}, err
	}
	if err := s.acquire(ctx); err != nil {
		return keygen.Partition{}, err
	}
	defer s.release()
	if s.bound {
		return keygen.Partition{}, fmt.Errorf("%w: store already bound", keygen.ErrKeySpaceExists)
	}
	hi := keygen.DomainSize(b.Digits)
	bk, mk, fk := s.key(BindingKey), s.key(MarkKey), s.key(FenceKey)
	tctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	resp, err := s.cli.Txn(tctx).
		If(clientv3.Compare(clientv3.CreateRevision(bk), "=", 0), clientv3.Compare(clientv3.CreateRevision(mk), "=", 0), clientv3.Compare(clientv3.CreateRevision(fk), "=", 0)).
		Then(clientv3.OpPut(bk, encodeBinding(b)), clientv3.OpPut(mk, "0"), clientv3.OpPut(fk, "0")).
		Else(clientv3.OpGet(bk), clientv3.OpGet(mk)).Commit()
	cancel()
	if err != nil {
		return keygen.Partition{}, s.unreachable("create key space", err)
	}
	s.ok()
	if resp.Succeeded {
		rev := resp.Header.Revision
		s.bind(b, hi, 0, rev, rev, 0, rev, 0)
		return keygen.Partition{Lo: 0, Hi: hi, Next: 0, Created: true}, nil
	}
	oldB, oldM := first(resp.Responses[0].GetResponseRange().Kvs), first(resp.Responses[1].GetResponseRange().Kvs)
	if oldB == nil || oldM == nil {
		return keygen.Partition{}, fmt.Errorf("%w: %s holds only part of a key space (%s, %s, %s); it is kept as it is (inspect it: a half-written key space is not created by switchboard)",
			keygen.ErrStateCorrupt, s.cfg.Prefix, BindingKey, MarkKey, FenceKey)
	}
	diff, err := mismatch(oldB.value, b)
	if err != nil {
		return keygen.Partition{}, fmt.Errorf("%w: %s: %v", keygen.ErrStateCorrupt, bk, err)
	}
	mark, err := parseMark(oldM.value, hi)
	if err != nil {
		mark = 0
	}
	if diff != "" {
		return keygen.Partition{}, fmt.Errorf("%w: %w: etcd %s already holds a key space under another binding (%s; next counter %d); it is kept as it is, never rebound, even unused: a daemon may already lease from it. Give this host the fleet's secret and digits (it needs no -init-keys), or use another keys.etcd.prefix for another key space",
			keygen.ErrKeySpaceExists, keygen.ErrBindingChanged, s.cfg.Prefix, diff, mark)
	}
	return keygen.Partition{}, fmt.Errorf("%w: etcd %s already holds a key space (next counter %d, same binding); it is kept as it is (to move its mark forward, skip keys instead)",
		keygen.ErrKeySpaceExists, s.cfg.Prefix, mark)
}

// bind makes the store bound and starts its watch of the mark key (not
// for the operator's Retire stores); recorded is the mark RecordFile
// holds. Called with the token held.
func (s *Store) bind(b keygen.Binding, hi, mark uint64, rev, bindRev int64, fence uint64, fenceRev int64, recorded uint64) {
	s.bound, s.b, s.hi, s.bindRev = true, b, hi, bindRev
	s.known, s.mark, s.rev = true, mark, rev
	s.fence, s.fenceRev = fence, fenceRev
	s.raiseSeen(mark)
	s.recorded = recorded
	if s.cfg.Retire || s.closed {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go s.watch(ctx, done)
	s.stop = func() { cancel(); <-done }
}

// checkBinding checks that etcd's binding (bkv, freshly read) is still the
// one this store bound to, unchanged since: a binding rewritten under a
// bound daemon (by hand, or by a restore) means the fleet may now issue
// keys of another permutation from the same counters, so the store stops
// leasing until the daemon binds again. Called with the token held.
func (s *Store) checkBound(bkv *mvccKV) error {
	if bkv == nil {
		return fmt.Errorf("%w: etcd %s no longer holds %s: the key space was deleted; recreate it (switchboard -init-keys) with a skip past every key issued", keygen.ErrStateMissing, s.cfg.Prefix, BindingKey)
	}
	if bkv.modRev == s.bindRev {
		return nil
	}
	diff, err := mismatch(bkv.value, s.b)
	switch {
	case err != nil:
		diff = fmt.Sprintf("unreadable: %v", err)
	case diff == "":
		diff = "same content, written again"
	}
	return fmt.Errorf("%w: etcd's %s under %s was rewritten since this daemon bound to it (%s): it stops leasing, since keys of two bindings must never share one key space. Put back the fleet's binding, then restart the daemon",
		keygen.ErrBindingChanged, BindingKey, s.cfg.Prefix, diff)
}

// Bind implements keygen.LeaseStore: it reads the binding and the mark and
// refuses a key space recorded under another binding
// (keygen.ErrBindingChanged, naming each field that differs), never
// rebinding it: other daemons may be leasing from it. A prefix with no key
// space fails with keygen.ErrStateMissing; etcd not answering with an error
// wrapping keygen.ErrUnavailable.
func (s *Store) Bind(ctx context.Context, b keygen.Binding) (keygen.Partition, error) {
	if err := checkBinding(b); err != nil {
		return keygen.Partition{}, err
	}
	if err := s.acquire(ctx); err != nil {
		return keygen.Partition{}, err
	}
	defer s.release()
	hi := keygen.DomainSize(b.Digits)
	if s.bound {
		if s.b != b {
			return keygen.Partition{}, fmt.Errorf("keygen: etcd store already bound to another binding")
		}
		return keygen.Partition{Lo: 0, Hi: hi, Next: max(s.mark, s.segNext)}, nil
	}
	bkv, mkv, fkv, seen, err := s.read(ctx)
	if err != nil {
		return keygen.Partition{}, err
	}
	s.ok()
	switch {
	case bkv == nil && mkv == nil:
		return keygen.Partition{}, fmt.Errorf("%w: etcd holds no key space under %s (no %s and no %s): it was never created, or it was deleted and its high-water mark lost. Create it explicitly (switchboard -init-keys, or -migrate-keys from a file store), skipping past every key issued if there were any",
			keygen.ErrStateMissing, s.cfg.Prefix, BindingKey, MarkKey)
	case bkv == nil || mkv == nil:
		return keygen.Partition{}, fmt.Errorf("%w: etcd %s holds only one of %s and %s", keygen.ErrStateCorrupt, s.cfg.Prefix, BindingKey, MarkKey)
	}
	diff, err := mismatch(bkv.value, b)
	if err != nil {
		return keygen.Partition{}, fmt.Errorf("%w: %s: %v", keygen.ErrStateCorrupt, s.key(BindingKey), err)
	}
	if diff != "" {
		return keygen.Partition{}, fmt.Errorf("%w: etcd %s was created for another key space: %s. Put back the fleet's settings and secret on this host",
			keygen.ErrBindingChanged, s.cfg.Prefix, diff)
	}
	mark, fence, err := s.fenced(hi, mkv, fkv)
	if err != nil {
		return keygen.Partition{}, err
	}
	rec, _ := s.readRecord(b)
	if floor := max(rec, seen); floor > mark {
		s.fenceUp(ctx, floor, bkv.modRev, mkv, fkv)
		return keygen.Partition{}, fmt.Errorf("%w: the etcd mark under %s is %d, but this host already leased or saw a mark of %d in it (%s): etcd was restored from an older backup, and leasing from it would reissue the keys issued since, by this daemon or another. Move the mark forward past every key issued since the backup (switchboard -skip-keys N, N at least %d); the daemons lease again by themselves once it is at least %d",
			keygen.ErrStateStale, s.cfg.Prefix, mark, floor, s.cfg.RecordFile, floor-mark, floor)
	}
	s.bind(b, hi, mark, mkv.modRev, bkv.modRev, fence, modRev(fkv), rec)
	return keygen.Partition{Lo: 0, Hi: hi, Next: mark}, nil
}

// recordLine is RecordFile's content: what key space the mark belongs to.
func (s *Store) recordLine(b keygen.Binding, mark uint64) string {
	return fmt.Sprintf("switchboard etcd mark v1 %s %s %d\n", s.cfg.Prefix, b.Fingerprint, mark)
}

// readRecord returns the mark RecordFile holds for this prefix and binding.
func (s *Store) readRecord(b keygen.Binding) (uint64, bool) {
	if s.cfg.RecordFile == "" {
		return 0, false
	}
	data, err := os.ReadFile(s.cfg.RecordFile)
	if err != nil {
		return 0, false
	}
	var prefix, fp string
	var mark uint64
	if _, err := fmt.Sscanf(string(data), "switchboard etcd mark v1 %s %s %d\n", &prefix, &fp, &mark); err != nil || prefix != s.cfg.Prefix || fp != b.Fingerprint.String() {
		return 0, false
	}
	return mark, true
}

// record writes seen to RecordFile if it rose since the last write (best
// effort: a lost record only weakens the restore check). Only the watch
// goroutine calls it, so the file has one writer.
func (s *Store) record() {
	seen := s.seen.Load()
	if s.cfg.RecordFile == "" || seen <= s.recorded {
		return
	}
	tmp := s.cfg.RecordFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(s.recordLine(s.b, seen)), 0o600); err != nil {
		return
	}
	if err := os.Rename(tmp, s.cfg.RecordFile); err == nil {
		s.recorded = seen
	}
}

// watch is the store's goroutine from bind to Close: it watches the mark
// key and raises seen to every mark written, so that this daemon learns
// every other daemon's lease within milliseconds and refuses a mark put
// back below it even when its own last lease ends exactly where the
// restored mark stands. It also keeps RecordFile. A broken watch starts
// again after a delay (watchMinBackoff, doubling to watchMaxBackoff);
// each start reads the mark first, then watches from the revision after
// that read, so no lease goes unseen while etcd keeps its history.
func (s *Store) watch(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	defer s.record()
	delay := watchMinBackoff
	for {
		if s.watchOnce(ctx) {
			delay = watchMinBackoff
		}
		s.record()
		t := time.NewTimer(delay)
		for waiting := true; waiting; {
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-s.wake:
				s.record()
			case <-t.C:
				waiting = false
			}
		}
		delay = min(2*delay, watchMaxBackoff)
	}
}

// look reads the mark and the fence, raises seen to the mark (or one above
// it if etcd went back in time) and raises the fence where the mark stands
// below what the store saw before the read (fenceUp), so that the whole
// fleet refuses a mark put back as soon as one daemon sees it. It returns
// the read's revision. Watch goroutine only.
func (s *Store) look(ctx context.Context) (int64, error) {
	sn := s.snap()
	tctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	resp, err := s.cli.Txn(tctx).Then(clientv3.OpGet(s.key(MarkKey)), clientv3.OpGet(s.key(FenceKey))).Commit()
	cancel()
	if err != nil {
		return 0, err
	}
	mkv, fkv := first(resp.Responses[0].GetResponseRange().Kvs), first(resp.Responses[1].GetResponseRange().Kvs)
	back := s.wentBack(sn, resp.Header.Revision)
	if mkv != nil {
		if mark, err := parseMark(mkv.value, s.hi); err == nil && back {
			s.raiseSeen(mark + 1) // as rewound does; the lease path reports it
		} else if err == nil {
			s.raiseSeen(mark)
		}
	}
	seen := sn.seen
	if back {
		seen = s.seen.Load()
	}
	s.fenceUp(ctx, seen, s.bindRev, mkv, fkv)
	return resp.Header.Revision, nil
}

// watchOnce reads the mark and watches it until the watch breaks, ctx
// ends or etcd is found to have gone back in time; it reports whether the
// watch was established.
func (s *Store) watchOnce(ctx context.Context) (established bool) {
	rev, err := s.look(ctx)
	if err != nil {
		return false
	}
	epoch := s.snap().epoch
	// A leader is required: a member cut off from the cluster ends the
	// watch instead of keeping it silent, and the next one may go to
	// another member.
	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer wcancel()
	wch := s.cli.Watch(wctx, s.key(MarkKey), clientv3.WithRev(rev+1), clientv3.WithCreatedNotify())
	for {
		select {
		case <-ctx.Done():
			return established
		case <-s.rewatch:
			return true // start again in etcd's new timeline
		case <-s.wake:
			s.record()
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil {
				return established // compacted past the revision, no leader, client closed
			}
			established = true
			s.revs.mu.Lock()
			same := s.revs.epoch == epoch
			if same {
				s.revs.max = max(s.revs.max, wr.Header.Revision)
			}
			s.revs.mu.Unlock()
			if !same {
				return true // etcd went back in time since this watch began
			}
			for _, ev := range wr.Events {
				m, err := parseMark(ev.Kv.Value, s.hi)
				switch {
				case err != nil || ev.Type != clientv3.EventTypePut:
				case m < s.seen.Load():
					// Put back, or only older than a mark seen
					// since: a fresh read tells.
					_, _ = s.look(ctx)
				default:
					s.raiseSeen(m)
				}
			}
			s.record()
		}
	}
}

// Lease implements keygen.LeaseStore: it hands out at most n counters of
// the current segment, leasing the next segment from etcd first when the
// current one is used up. The segment is durable in etcd (the transaction
// moving the mark past it committed) before any of it is returned.
func (s *Store) Lease(ctx context.Context, n uint64) (start, end uint64, err error) {
	if err := s.acquire(ctx); err != nil {
		return 0, 0, err
	}
	defer s.release()
	switch {
	case !s.bound:
		return 0, 0, keygen.ErrNotBound
	case n == 0:
		return 0, 0, fmt.Errorf("%w: lease of 0 counters", keygen.ErrInvalidConfig)
	}
	if s.segNext == s.segEnd {
		if err := s.leaseSegment(ctx, n); err != nil {
			return 0, 0, err
		}
	}
	start = s.segNext
	end = start + min(n, s.segEnd-start)
	s.segNext = end
	return start, end, nil
}

// leaseSegment moves the mark in etcd past a new segment of at least n
// counters (fewer only at the domain's end) and makes it the current one.
func (s *Store) leaseSegment(ctx context.Context, n uint64) error {
	now := s.now()
	step := s.step
	if !s.segAt.IsZero() {
		// Leaf's dynamic step: the segment just used up lasted now-segAt.
		// Adopted only once the segment is leased, so that failed
		// attempts (etcd down) do not resize it again and again.
		switch took := now.Sub(s.segAt); {
		case took < s.cfg.Period:
			step = min(2*step, s.cfg.MaxBlock)
		case took > 2*s.cfg.Period:
			step = max(step/2, s.cfg.MinBlock)
		}
	}
	want := max(n, step)
	bk, mk, fk := s.key(BindingKey), s.key(MarkKey), s.key(FenceKey)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.known && s.mark < s.seen.Load() {
			// A higher mark was seen (another daemon's lease, through
			// the watch): read it rather than compare against a
			// revision that a restored snapshot may hold again.
			s.known = false
		}
		if !s.known {
			bkv, mkv, fkv, seen, err := s.read(ctx)
			if err != nil {
				return err
			}
			if err := s.adopt(ctx, bkv, mkv, fkv, seen, now); err != nil {
				return err
			}
		}
		if s.mark >= s.hi {
			return fmt.Errorf("%w: all %d counters of the etcd key space %s were leased", keygen.ErrExhausted, s.hi, s.cfg.Prefix)
		}
		start, end := s.mark, s.mark+min(want, s.hi-s.mark)
		fence := max(s.fence, end)
		sn := s.snap()
		tctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		s.st.Txns++
		// The binding's and the fence's revisions are compared too: a
		// daemon never leases under a binding replaced after it bound, nor
		// from a mark put back below the fence since it last looked.
		resp, err := s.cli.Txn(tctx).
			If(clientv3.Compare(clientv3.ModRevision(mk), "=", s.rev),
				clientv3.Compare(clientv3.ModRevision(bk), "=", s.bindRev),
				clientv3.Compare(clientv3.ModRevision(fk), "=", s.fenceRev)).
			Then(clientv3.OpPut(mk, strconv.FormatUint(end, 10)), clientv3.OpPut(fk, strconv.FormatUint(fence, 10))).
			Else(clientv3.OpGet(bk), clientv3.OpGet(mk), clientv3.OpGet(fk)).Commit()
		cancel()
		if err != nil {
			// The transaction may or may not have committed: never use
			// [start, end); re-read the mark before the next attempt.
			s.known = false
			s.st.Unknown++
			return s.unreachable("lease", err)
		}
		s.ok()
		if resp.Succeeded {
			rev := resp.Header.Revision
			// Committed in a timeline older than one already seen
			// (etcd went back and its mark happens to carry the mod
			// revision this store knew): [start, end) may be another
			// daemon's since the snapshot; never use it.
			written := &mvccKV{value: []byte(strconv.FormatUint(end, 10)), modRev: rev}
			if err := s.rewound(ctx, sn, rev, written, &mvccKV{value: []byte(strconv.FormatUint(fence, 10)), modRev: rev}); err != nil {
				return err
			}
			s.step = step
			s.mark, s.rev, s.fence, s.fenceRev = end, rev, fence, rev
			s.raiseSeen(end)
			s.segNext, s.segEnd, s.segAt = start, end, now
			s.st.LastLeaseAt, s.st.LastStart, s.st.LastEnd = now, start, end
			return nil
		}
		// Another daemon moved the mark: take its value and try above it
		// (unless the binding changed or the mark was put back).
		s.st.LostRaces++
		rs := resp.Responses
		mkv := first(rs[1].GetResponseRange().Kvs)
		fkv := first(rs[2].GetResponseRange().Kvs)
		if err := s.rewound(ctx, sn, resp.Header.Revision, mkv, fkv); err != nil {
			return err
		}
		if err := s.adopt(ctx, first(rs[0].GetResponseRange().Kvs), mkv, fkv, sn.seen, now); err != nil {
			return err
		}
	}
}

// adopt checks the binding, the mark and the fence read from etcd while
// bound and makes them the store's view of etcd. It refuses a replaced
// binding (keygen.ErrBindingChanged), a deleted key space
// (keygen.ErrStateMissing) and a mark put back below the fence or below
// seen, the store's seen when the read was sent (keygen.ErrStateStale);
// the store then re-reads etcd at the next attempt. Called with the token
// held.
func (s *Store) adopt(ctx context.Context, bkv, mkv, fkv *mvccKV, seen uint64, now time.Time) error {
	s.known = false
	err := s.checkBound(bkv)
	if err == nil && mkv == nil {
		err = fmt.Errorf("%w: etcd %s no longer holds %s: the key space was deleted; recreate it (switchboard -init-keys) with a skip past every key issued", keygen.ErrStateMissing, s.cfg.Prefix, MarkKey)
	}
	var mark, fence uint64
	if err == nil {
		mark, fence, err = s.fenced(s.hi, mkv, fkv)
	}
	if err == nil && mark < seen {
		// This store saw (or leased up to) a higher mark before it sent
		// the read: etcd went back in time (restored from an older
		// backup) with its fence. Marks seen while the read was in
		// flight are not compared: they may be newer than the read.
		err = fmt.Errorf("%w: the etcd mark under %s is %d, below %d which this daemon already leased or saw (its own lease or another daemon's): etcd was restored from an older backup. Skip the mark forward past every key issued since the backup (switchboard -skip-keys N, N at least %d); the daemons lease again by themselves once it is at least %d",
			keygen.ErrStateStale, s.cfg.Prefix, mark, seen, seen-mark, seen)
		s.fenceUp(ctx, seen, s.bindRev, mkv, fkv)
	}
	if err != nil {
		s.st.LastError, s.st.LastErrorAt = err.Error(), now
		return err
	}
	s.known, s.mark, s.rev = true, mark, mkv.modRev
	s.raiseSeen(mark)
	s.fence, s.fenceRev = fence, modRev(fkv)
	return nil
}

// Close implements keygen.LeaseStore: it waits for a call in progress and
// makes later calls fail with keygen.ErrClosed. The etcd client stays open
// (it is the caller's). Idempotent.
func (s *Store) Close() error {
	s.sem <- struct{}{}
	s.closed = true
	stop := s.stop
	s.stop = nil
	s.publish()
	<-s.sem
	if stop != nil {
		stop() // the watch goroutine writes RecordFile a last time
	}
	return nil
}
