package etcdstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

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
	// LeaserKey holds the writer of the last lease: a random identity
	// drawn by each store, written with the mark by every lease
	// transaction. Two leases that end at the same mark at the same
	// revision (a data directory restored under a daemon that leased past
	// it, and another daemon leasing the same counters again in the
	// restored timeline) differ by it: the daemon whose lease was undone
	// finds another writer at its lease's revision and reports the
	// restore.
	LeaserKey = "leaser"
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

// checkEvery is how often the watch goroutine reads the mark afresh while
// its watch runs (look): the etcd client resumes a watch over a broken
// connection by itself, from the revision after the last it delivered, so
// a reconnection is not seen by the watch goroutine, and a history
// rewritten at or before that revision (a restore, and the same counters
// leased again) is seen only by a read.
const checkEvery = 5 * time.Second

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
	// Log receives the store's reports of a restore of etcd found after
	// the fact (error level), which no call returns when the daemon is
	// idle. Default none.
	Log *zap.Logger
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
	if c.Log == nil {
		c.Log = zap.NewNop()
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
	// Rollbacks counts the restores this store found after the fact: a
	// write of the mark that did not raise it, or another writer at the
	// revision of this store's own lease.
	Rollbacks uint64
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

	// kick asks the watch goroutine to report its progress now (or to
	// end its delay before watching again); leased tells the fleet
	// registration that a lease committed. Both of capacity 1.
	kick, leased chan struct{}
	// id is this store's LeaserKey value; own the revision of its last
	// lease (0: none), read by the watch goroutine.
	id        string
	own       atomic.Int64
	rollbacks atomic.Uint64
	// found counts the times this store found the mark put back or etcd
	// gone back (refusing): the history its watch knew is then undone.
	found atomic.Uint64
	// ownFound is found when own was set: a restore found since makes
	// the lease history (and ownLease does not report it).
	ownFound atomic.Uint64

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
	// caught is the revision (of the current epoch) up to which the
	// watch delivered every write of the mark, and raised seen by it;
	// moved is closed (and replaced) when caught rises or epoch changes.
	caught int64
	moved  chan struct{}
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
// time since: then got starts the new timeline (unless another request
// found it first: the response is refused all the same).
func (s *Store) wentBack(sn snap, got int64) bool {
	s.revs.mu.Lock()
	defer s.revs.mu.Unlock()
	if got < sn.rev && s.revs.epoch != sn.epoch {
		return true
	}
	if got < sn.rev {
		s.revs.epoch++
		s.revs.max = got
		s.revs.caught = 0
		close(s.revs.moved)
		s.revs.moved = make(chan struct{})
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
	var id [8]byte
	_, _ = rand.Read(id[:])
	s := &Store{cli: cli, cfg: cfg, now: now, sem: make(chan struct{}, 1), step: cfg.MinBlock,
		wake: make(chan struct{}, 1), rewatch: make(chan struct{}, 1),
		kick: make(chan struct{}, 1), leased: make(chan struct{}, 1), id: hex.EncodeToString(id[:])}
	s.revs.moved = make(chan struct{})
	s.st = Status{Prefix: cfg.Prefix, Step: s.step}
	s.publish()
	return s, nil
}

// Status returns a snapshot of the store. It never waits for etcd.
func (s *Store) Status() Status {
	st := *s.status.Load()
	st.Seen = s.seen.Load()
	st.Rollbacks = s.rollbacks.Load()
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
func (s *Store) read(ctx context.Context) (bk, mk, fk *mvccKV, seen uint64, rev int64, err error) {
	sn := s.snap()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(s.key(BindingKey)), clientv3.OpGet(s.key(MarkKey)), clientv3.OpGet(s.key(FenceKey))).Commit()
	if err != nil {
		return nil, nil, nil, 0, 0, s.unreachable("read key space", err)
	}
	rs := resp.Responses
	bk, mk, fk = first(rs[0].GetResponseRange().Kvs), first(rs[1].GetResponseRange().Kvs), first(rs[2].GetResponseRange().Kvs)
	if err := s.rewound(ctx, sn, resp.Header.Revision, mk, fk); err != nil {
		return nil, nil, nil, 0, 0, err
	}
	return bk, mk, fk, sn.seen, resp.Header.Revision, nil
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
	s.own.Store(0) // its last lease is history
	s.found.Add(1)
	s.raiseSeen(mark + 1)
	s.rollbacks.Add(1)
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
		s.bind(b, hi, 0, rev, rev, 0, rev, 0, rev)
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
// holds. readRev is the revision of the read the store binds from: the
// watch delivers every write of the mark after it (or, where etcd
// compacted that history, checks the fleet), so that a write made between
// the bind and the watch's first read (another daemon's lease, then a
// restore putting the mark back) is not taken as never having happened. A
// watch that began from its own first read instead missed exactly that
// when its goroutine ran late: the store re-leased another daemon's
// counters after a restore (TestAdv13bWholeRestoreWhileWatchBroken, under
// load). Called with the token held.
func (s *Store) bind(b keygen.Binding, hi, mark uint64, rev, bindRev int64, fence uint64, fenceRev int64, recorded uint64, readRev int64) {
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
	go s.watch(ctx, done, watchState{watched: readRev, epoch: s.snap().epoch})
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
	bkv, mkv, fkv, seen, readRev, err := s.read(ctx)
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
	s.bind(b, hi, mark, mkv.modRev, bkv.modRev, fence, modRev(fkv), rec, readRev)
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

// watchState is the watch goroutine's own view of the mark's history.
type watchState struct {
	// watched is the revision up to which every write of the mark was
	// delivered, in etcd's timeline epoch: at first the revision of the
	// read the store bound from (bind); 0 after a gap or a new timeline
	// (the next watch then starts from a fresh read).
	watched int64
	epoch   uint64
	// gap: the watch could not resume from watched (etcd compacted that
	// history): writes of the mark in between may have gone unseen.
	gap bool
	// last is the last write of the mark known (delivered by the watch
	// in revision order, or read), and lastRev its revision.
	last    uint64
	lastRev int64
	// found is Store.found when last was set: a restore found since
	// (by any path) makes the next write start the history again.
	found uint64
}

// watch is the store's goroutine from bind to Close: it watches the mark
// key and raises seen to every mark written, so that this daemon learns
// every other daemon's lease within milliseconds and refuses a mark put
// back below it even when its own last lease ends exactly where the
// restored mark stands. It also keeps RecordFile. A broken watch starts
// again after a delay (watchMinBackoff, doubling to watchMaxBackoff, cut
// short when a lease waits for it) from the revision after the last one
// it delivered, so that a lease made while it was broken is delivered
// late rather than never; where etcd compacted that history, it checks
// the fleet's last leases first (checkFleet), then starts from a fresh
// read.
func (s *Store) watch(ctx context.Context, done chan<- struct{}, st watchState) {
	defer close(done)
	defer s.record()
	delay := watchMinBackoff
	for {
		if s.watchOnce(ctx, &st) {
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
			case <-s.kick:
				t.Stop()
				waiting = false
			case <-t.C:
				waiting = false
			}
		}
		delay = min(2*delay, watchMaxBackoff)
	}
}

// look reads the mark, the fence and the leaser, raises seen to the mark
// (or one above it if etcd went back in time) and raises the fence where
// the mark stands below what the store saw before the read (fenceUp), so
// that the whole fleet refuses a mark put back as soon as one daemon sees
// it. It also checks that this store's last lease is still its own in
// etcd's history (ownLease). It returns the read's revision. Watch
// goroutine only.
func (s *Store) look(ctx context.Context, st *watchState) (int64, error) {
	own := s.own.Load()
	sn := s.snap()
	tctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	resp, err := s.cli.Txn(tctx).Then(clientv3.OpGet(s.key(MarkKey)), clientv3.OpGet(s.key(FenceKey))).Commit()
	cancel()
	if err != nil {
		return 0, err
	}
	mkv, fkv := first(resp.Responses[0].GetResponseRange().Kvs), first(resp.Responses[1].GetResponseRange().Kvs)
	if resp.Header.Revision < sn.rev && mkv != nil {
		// Raised before the new timeline is adopted (wentBack): a lease
		// that reads after it must find seen above the mark.
		if mark, err := parseMark(mkv.value, s.hi); err == nil {
			s.raiseSeen(mark + 1)
		}
	}
	back := s.wentBack(sn, resp.Header.Revision)
	if back {
		s.rollbacks.Add(1)
		s.cfg.Log.Error("etcd's revision went back: etcd was restored from an older snapshot; leases are refused until the mark is moved forward (switchboard -skip-keys N, past every key issued since the backup)",
			zap.String("prefix", s.cfg.Prefix), zap.Int64("revision_seen", sn.rev), zap.Int64("revision_now", resp.Header.Revision),
			zap.Uint64("mark", markOf(mkv)), zap.Int64("mark_revision", modRev(mkv)), zap.Uint64("seen", sn.seen))
	}
	if mkv != nil {
		if mark, err := parseMark(mkv.value, s.hi); err == nil && back {
			s.raiseSeen(mark + 1) // as rewound does; the lease path refuses
		} else if err == nil {
			s.raiseSeen(mark)
			if !back {
				// The read is the last write: the watch goroutine
				// delivered nothing since it was sent. One older than
				// what the watch delivered means that history was put
				// back (found above: the mark below seen); the next
				// write is compared with the history as it stands.
				st.last, st.lastRev = mark, mkv.modRev
			}
		}
	}
	seen := sn.seen
	switch {
	case back || (mkv != nil && markOf(mkv) < seen):
		// A restore, found: this store's last lease is history
		// (ownLease would take the operator's skip, which may land at
		// its revision, for another restore).
		s.own.CompareAndSwap(own, 0)
		s.found.Add(1)
		if back {
			seen = s.seen.Load()
		}
	default:
		if err := s.ownLease(ctx, mkv, fkv); err != nil {
			return 0, err
		}
	}
	s.fenceUp(ctx, seen, s.bindRev, mkv, fkv)
	return resp.Header.Revision, nil
}

// ownLease checks that this store's last lease is still its own in etcd's
// history (mkv is the mark freshly read): in one timeline the mark's last
// write is that lease or a later one, and the leaser at the lease's
// revision is this store. A mark last written before it, or another writer
// (or none) there, means the history was rewritten since (a restore, and
// the same counters leased again by another daemon, possibly at the very
// revision of this store's lease): rolledBack. History compacted past the
// lease: nothing to tell. Watch goroutine only.
func (s *Store) ownLease(ctx context.Context, mkv, fkv *mvccKV) error {
	own := s.own.Load()
	if own == 0 || mkv == nil || s.seen.Load() > markOf(mkv) || s.found.Load() != s.ownFound.Load() {
		return nil // no lease yet, the mark refused already, or a restore found since the lease
	}
	if mkv.modRev < own {
		s.rolledBack(ctx, markOf(mkv), mkv, fkv, fmt.Sprintf("this daemon leased at revision %d, but the mark was last written at revision %d", own, mkv.modRev))
		return nil
	}
	tctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	resp, err := s.cli.Get(tctx, s.key(LeaserKey), clientv3.WithRev(own))
	cancel()
	switch {
	case errors.Is(err, rpctypes.ErrCompacted):
		return nil
	case err != nil:
		return err
	}
	// Only another writer at this very revision is reported: no write
	// there at all is also what the operator's skip after a restore can
	// leave (its lease landing later), which is no new restore.
	lkv := first(resp.Kvs)
	if lkv == nil || lkv.modRev != own || string(lkv.value) == s.id {
		return nil
	}
	s.rolledBack(ctx, markOf(mkv), mkv, fkv, fmt.Sprintf("this daemon leased at revision %d, but etcd's history now shows the lease of writer %s there", own, lkv.value))
	return nil
}

// rolledBack reports a restore found after the fact: the mark went back
// and forward again, so counters were (or may be) leased twice. The store
// refuses marks up to mark (seen raised one past it), raises the fence
// for the fleet and logs at error level. Watch goroutine only.
func (s *Store) rolledBack(ctx context.Context, mark uint64, mkv, fkv *mvccKV, what string) {
	s.own.CompareAndSwap(s.own.Load(), 0) // its last lease is history
	s.found.Add(1)
	before := s.seen.Load()
	s.raiseSeen(mark + 1)
	s.rollbacks.Add(1)
	s.cfg.Log.Error("etcd's key space was restored under this daemon: counters may have been issued twice; leases are refused until the mark is moved forward (switchboard -skip-keys N, past every key issued since the backup)",
		zap.String("prefix", s.cfg.Prefix), zap.String("evidence", what),
		zap.Uint64("mark", mark), zap.Int64("mark_revision", modRev(mkv)),
		zap.Uint64("seen_before", before), zap.Uint64("refused_below", s.seen.Load()))
	if mkv != nil && fkv != nil {
		s.fenceUp(ctx, s.seen.Load(), s.bindRev, mkv, fkv)
		return
	}
	_, _ = s.look(ctx, &watchState{}) // the fence from a fresh read
}

// checkFleet is run when the watch could not resume (history compacted):
// a lease made in the gap may have been undone by a restore before this
// store could see it. The fleet entries hold each daemon's last lease: one
// that ends above the mark means the mark was put back below it, and seen
// is raised to it (the lease path refuses, the fence is raised by the
// next look). Watch goroutine only.
func (s *Store) checkFleet(ctx context.Context) error {
	tctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	resp, err := s.cli.Txn(tctx).Then(clientv3.OpGet(s.key(MarkKey)), clientv3.OpGet(s.key(FleetDir), clientv3.WithPrefix())).Commit()
	cancel()
	if err != nil {
		return err
	}
	mkv := first(resp.Responses[0].GetResponseRange().Kvs)
	mark := markOf(mkv)
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		var m Member
		if json.Unmarshal(kv.Value, &m) != nil || m.LastLeaseEnd <= mark {
			continue
		}
		before := s.seen.Load()
		s.raiseSeen(m.LastLeaseEnd)
		s.rollbacks.Add(1)
		s.cfg.Log.Error("etcd's mark stands below the last lease of a daemon of the fleet, which this daemon's watch missed: etcd was restored; leases are refused until the mark is moved forward (switchboard -skip-keys N, past every key issued since the backup)",
			zap.String("prefix", s.cfg.Prefix), zap.String("instance", m.Instance),
			zap.Uint64("its_last_lease_end", m.LastLeaseEnd), zap.Uint64("mark", mark), zap.Int64("mark_revision", modRev(mkv)),
			zap.Uint64("seen_before", before))
	}
	return nil
}

// watchOnce watches the mark until the watch breaks, ctx ends or etcd is
// found to have gone back in time; it reports whether the watch was
// established. It resumes from st.watched where it can; else it checks the
// fleet (after a gap) and starts from a fresh read.
func (s *Store) watchOnce(ctx context.Context, st *watchState) (established bool) {
	if st.epoch != s.snap().epoch {
		// etcd went back in time: its revisions are new.
		st.watched, st.last, st.lastRev = 0, 0, 0
	}
	if st.gap {
		if err := s.checkFleet(ctx); err != nil {
			return false
		}
		st.gap = false
	}
	// A fresh read each time: it tells a mark put back, or this store's
	// own lease undone, as soon as etcd answers again.
	rev, err := s.look(ctx, st)
	if err != nil {
		return false
	}
	epoch := s.snap().epoch
	if st.watched == 0 || st.epoch != epoch {
		// Nothing to resume from: the read stands for every write up
		// to its revision.
		st.watched, st.epoch = rev, epoch
		s.advance(epoch, rev)
	}
	// A leader is required: a member cut off from the cluster ends the
	// watch instead of keeping it silent, and the next one may go to
	// another member.
	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer wcancel()
	wch := s.cli.Watch(wctx, s.key(MarkKey), clientv3.WithRev(st.watched+1), clientv3.WithCreatedNotify())
	check := time.NewTicker(checkEvery)
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return established
		case <-check.C:
			_, _ = s.look(ctx, st)
		case <-s.rewatch:
			return true // start again in etcd's new timeline
		case <-s.wake:
			s.record()
		case <-s.kick:
			// A lease waits for this watch to reach its read's revision.
			_ = s.cli.RequestProgress(wctx)
		case wr, ok := <-wch:
			if !ok {
				return established // client closed
			}
			if wr.CompactRevision != 0 {
				// The history after st.watched is gone: check the
				// fleet, then start from a fresh read.
				st.watched, st.gap = 0, true
				return true
			}
			if wr.Err() != nil {
				return established // no leader, cancelled
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
				s.observe(ctx, st, ev)
				st.watched = max(st.watched, ev.Kv.ModRevision)
			}
			if wr.IsProgressNotify() {
				st.watched = max(st.watched, wr.Header.Revision)
			}
			s.advance(epoch, st.watched)
			s.record()
		}
	}
}

// observe applies one write of the mark delivered by the watch. Every
// lease (and skip) raises the mark: a write that does not raise it above
// the write before it means it was put back (a restore), possibly and
// forward again to where it stood. A fresh read then tells (look): a mark
// below seen is refused and fenced, this store's own lease undone is
// reported (ownLease). After a restore found already, the next write
// (the operator's skip) starts the history again.
func (s *Store) observe(ctx context.Context, st *watchState, ev *clientv3.Event) {
	if ev.Type != clientv3.EventTypePut {
		return
	}
	m, err := parseMark(ev.Kv.Value, s.hi)
	if err != nil {
		return
	}
	rev := ev.Kv.ModRevision
	if rev <= st.lastRev {
		s.raiseSeen(m) // known already (read before the watch delivered it)
		return
	}
	prev, prevRev := st.last, st.lastRev
	if f := s.found.Load(); f != st.found {
		prevRev, st.found = 0, f // a restore found already: history starts again (the operator's skip)
	}
	st.last, st.lastRev = m, rev
	switch {
	case prevRev != 0 && m <= prev:
		s.raiseSeen(m)
		s.cfg.Log.Warn("a write of etcd's mark did not raise it: reading it afresh",
			zap.String("prefix", s.cfg.Prefix), zap.Uint64("mark", m), zap.Int64("revision", rev),
			zap.Uint64("previous_mark", prev), zap.Int64("previous_revision", prevRev))
		_, _ = s.look(ctx, st)
	case m < s.seen.Load():
		// Put back, or only older than a mark seen since: a fresh
		// read tells.
		_, _ = s.look(ctx, st)
	default:
		s.raiseSeen(m)
	}
}

// advance records that the watch delivered every write of the mark up to
// revision rev of the timeline epoch.
func (s *Store) advance(epoch uint64, rev int64) {
	s.revs.mu.Lock()
	defer s.revs.mu.Unlock()
	if s.revs.epoch == epoch && rev > s.revs.caught {
		s.revs.caught = rev
		close(s.revs.moved)
		s.revs.moved = make(chan struct{})
	}
}

// awaitWatch waits, at most the request timeout, until the watch has
// delivered every write of the mark up to revision rev (a read's), so
// that a lease made while the watch was broken has raised seen before
// this store leases from a mark read at rev. A timeout is a store error
// like any other (keygen.ErrUnavailable). Called with the token held.
func (s *Store) awaitWatch(ctx context.Context, rev int64) error {
	if s.cfg.Retire {
		return nil // no watch: the operator's store only retires counters
	}
	deadline := time.NewTimer(s.cfg.RequestTimeout)
	defer deadline.Stop()
	// The progress request is sent again now and then: one sent while
	// the watch was being set up may go unanswered.
	again := time.NewTicker(max(s.cfg.RequestTimeout/8, time.Millisecond))
	defer again.Stop()
	for {
		s.revs.mu.Lock()
		caught, moved := s.revs.caught, s.revs.moved
		s.revs.mu.Unlock()
		if caught >= rev {
			return nil
		}
		poke(s.kick)
		select {
		case <-moved:
		case <-again.C:
		case <-deadline.C:
			return s.unreachable("lease", fmt.Errorf("the watch of the mark did not reach revision %d within %v (it reached %d)", rev, s.cfg.RequestTimeout, caught))
		case <-ctx.Done():
			return ctx.Err()
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
			bkv, mkv, fkv, seen, rev, err := s.read(ctx)
			if err != nil {
				return err
			}
			if err := s.adopt(ctx, bkv, mkv, fkv, seen, now); err != nil {
				return err
			}
			if err := s.caughtUp(ctx, rev); err != nil {
				return err
			}
			if s.mark < s.seen.Load() {
				continue // the watch delivered a higher mark: read again
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
			Then(clientv3.OpPut(mk, strconv.FormatUint(end, 10)), clientv3.OpPut(fk, strconv.FormatUint(fence, 10)), clientv3.OpPut(s.key(LeaserKey), s.id)).
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
			s.ownFound.Store(s.found.Load())
			s.own.Store(rev)
			s.raiseSeen(end)
			s.segNext, s.segEnd, s.segAt = start, end, now
			s.st.LastLeaseAt, s.st.LastStart, s.st.LastEnd = now, start, end
			s.publish()
			poke(s.leased) // the fleet entry shows it at once
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
		if err := s.caughtUp(ctx, resp.Header.Revision); err != nil {
			return err
		}
	}
}

// caughtUp waits for the watch to deliver every write of the mark up to
// revision rev (awaitWatch); on failure the mark is read again at the
// next attempt. Called with the token held.
func (s *Store) caughtUp(ctx context.Context, rev int64) error {
	if err := s.awaitWatch(ctx, rev); err != nil {
		s.known = false
		return err
	}
	return nil
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
		s.own.Store(0) // its last lease is history
		s.found.Add(1)
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
