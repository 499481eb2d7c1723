package telsim

import (
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"switchboard/wire"
)

// shardBits sets the number of shards of the reservation table (and of the
// attendee-code set): 64, enough that two cores rarely meet on one mutex.
const (
	shardBits  = 6
	shardCount = 1 << shardBits
)

// Access code domains. Attendee codes are 9 digits (what a caller types to
// join), unique among the live reservations of a server; host codes are 8
// digits, so a host code can never equal an attendee code.
const (
	attendeeLo, attendeeN = 100_000_000, 900_000_000
	hostLo, hostN         = 10_000_000, 90_000_000
)

// record is one reservation. It is immutable once published in the table:
// UPDATE publishes a new record sharing the old one's bridge, so a reader
// that loaded a *record encodes it without holding any lock.
type record struct {
	bridge wire.Bridge // slices of one buffer, shared between versions
	spec   wire.Spec   // Name aliases buf
	meta   []byte      // aliases buf
	code   uint32      // the attendee code, as a number (for the code set)
}

// shard is one slice of the key space.
type shard struct {
	mu sync.Mutex
	m  map[uint64]*record
	// tomb holds keys RELEASEd while unknown: key → expiry (Unix ns). A
	// RESERVE of such a key is refused until then (see tombstone).
	tomb map[uint64]int64
	// pad to a cache line so that neighbouring shards' mutexes do not share
	// one (8-byte mutex + two 8-byte map pointers + 40).
	_ [40]byte
}

// codeShard is one slice of the live attendee-code set.
type codeShard struct {
	mu sync.Mutex
	m  map[uint32]struct{}
	_  [48]byte // cache-line padding, as in shard
}

// table is the reservation table shared by every connection of a Server. It
// is safe for concurrent use; no lock is held across I/O (there is none in
// here) and never more than one key shard plus one code shard at a time, in
// that order.
type table struct {
	shards [shardCount]shard
	codes  [shardCount]codeShard

	live     atomic.Int64 // reservations in the table
	capacity atomic.Int64 // limit on live for new reservations

	// bridge id = idPrefix + decimal sequence number: unique within this
	// server, and across restarts because idPrefix holds a random nonce.
	idPrefix string
	seq      atomic.Uint64
	toll     []byte // toll call-in number, shared (read-only) by every bridge
	tollFree []byte // toll-free call-in number, likewise

	tombTTL      int64 // ns
	tombPerShard int
	now          func() int64 // Unix ns
}

func newTable(capacity int, idPrefix, toll, tollFree string, tombTTL time.Duration, maxTombs int, now func() int64) *table {
	t := &table{idPrefix: idPrefix, toll: []byte(toll), tollFree: []byte(tollFree),
		tombTTL: int64(tombTTL), tombPerShard: max(1, maxTombs/shardCount), now: now}
	t.capacity.Store(int64(capacity))
	for i := range t.shards {
		t.shards[i].m = make(map[uint64]*record)
		t.shards[i].tomb = make(map[uint64]int64)
		t.codes[i].m = make(map[uint32]struct{})
	}
	return t
}

// shardOf spreads keys over shards with a Fibonacci hash (keys may be
// sequential in tests).
func shardOf(k uint64) int { return int((k * 0x9E3779B97F4A7C15) >> (64 - shardBits)) }

// copyData returns a record holding private copies of spec and meta: the
// request's buffer is reused for the next frame.
func copyData(spec *wire.Spec, meta []byte) *record {
	r := &record{spec: *spec}
	n := len(spec.Name)
	if n+len(meta) > 0 {
		buf := make([]byte, n+len(meta))
		copy(buf, spec.Name)
		copy(buf[n:], meta)
		r.spec.Name = buf[:n:n]
		r.meta = buf[n:]
	} else {
		r.spec.Name = nil
		r.meta = nil
	}
	return r
}

// newBridge fills r.bridge with a fresh bridge id, the call-in numbers and a
// random host code; the attendee code's nine bytes are left for claimCode.
// One allocation holds the id and both codes.
func (t *table) newBridge(r *record, rng *rand.Rand) {
	buf := make([]byte, 0, len(t.idPrefix)+20+8+9)
	buf = append(buf, t.idPrefix...)
	buf = strconv.AppendUint(buf, t.seq.Add(1), 10)
	nid := len(buf)
	buf = strconv.AppendUint(buf, uint64(hostLo+rng.IntN(hostN)), 10)
	nhost := len(buf)
	buf = append(buf, "000000000"...)
	r.bridge = wire.Bridge{
		ID:           buf[:nid:nid],
		Toll:         t.toll,
		TollFree:     t.tollFree,
		HostCode:     buf[nid:nhost:nhost],
		AttendeeCode: buf[nhost:len(buf):len(buf)],
	}
}

// claimCode picks a random attendee code not held by a live reservation,
// records it in the code set and writes its digits into r.
func (t *table) claimCode(r *record, rng *rand.Rand) {
	for {
		c := uint32(attendeeLo + rng.IntN(attendeeN))
		cs := &t.codes[shardOf(uint64(c))]
		cs.mu.Lock()
		_, taken := cs.m[c]
		if !taken {
			cs.m[c] = struct{}{}
		}
		cs.mu.Unlock()
		if !taken {
			r.code = c
			strconv.AppendUint(r.bridge.AttendeeCode[:0], uint64(c), 10)
			return
		}
	}
}

func (t *table) dropCode(c uint32) {
	cs := &t.codes[shardOf(uint64(c))]
	cs.mu.Lock()
	delete(cs.m, c)
	cs.mu.Unlock()
}

// acquire takes one unit of capacity, or reports that none is left.
func (t *table) acquire() bool {
	for {
		n := t.live.Load()
		if n >= t.capacity.Load() {
			return false
		}
		if t.live.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// reserve stores a new reservation under key. It answers KEY_EXISTS before
// CAPACITY: a duplicate is a duplicate even on a full server; a key
// RELEASEd while unknown (tombstoned) is a duplicate too, tomb reports it.
func (t *table) reserve(key uint64, spec *wire.Spec, meta []byte, rng *rand.Rand) (r *record, st wire.Status, tomb bool) {
	r = copyData(spec, meta)
	t.newBridge(r, rng)
	sh := &t.shards[shardOf(key)]
	sh.mu.Lock()
	if _, ok := sh.m[key]; ok {
		sh.mu.Unlock()
		return nil, wire.StatusKeyExists, false
	}
	if exp, ok := sh.tomb[key]; ok {
		if exp > t.now() {
			sh.mu.Unlock()
			return nil, wire.StatusKeyExists, true
		}
		delete(sh.tomb, key)
	}
	if !t.acquire() {
		sh.mu.Unlock()
		return nil, wire.StatusCapacity, false
	}
	t.claimCode(r, rng)
	sh.m[key] = r
	sh.mu.Unlock()
	return r, wire.StatusOK, false
}

// update replaces the spec and meta of the reservation under key.
func (t *table) update(key uint64, spec *wire.Spec, meta []byte) (*record, wire.Status) {
	r := copyData(spec, meta)
	sh := &t.shards[shardOf(key)]
	sh.mu.Lock()
	old, ok := sh.m[key]
	if ok {
		r.bridge, r.code = old.bridge, old.code
		sh.m[key] = r
	}
	sh.mu.Unlock()
	if !ok {
		return nil, wire.StatusNotFound
	}
	return r, wire.StatusOK
}

// release removes the reservation under key and frees its capacity and
// code. An unknown key is answered NOT_FOUND and tombstoned: a RESERVE of it
// still on its way (queued here, or delayed in the network) is refused when
// it arrives, so NOT_FOUND is a final answer.
func (t *table) release(key uint64) wire.Status {
	sh := &t.shards[shardOf(key)]
	sh.mu.Lock()
	r, ok := sh.m[key]
	if ok {
		delete(sh.m, key)
	} else {
		t.tombstone(sh, key)
	}
	sh.mu.Unlock()
	if !ok {
		return wire.StatusNotFound
	}
	t.dropCode(r.code)
	t.live.Add(-1)
	return wire.StatusOK
}

// tombstone records key in sh (whose mutex is held) until now + TTL. At the
// shard's bound it looks at a few tombstones (map order: arbitrary), drops
// the expired ones and, if none had expired, one of them anyway: the bound
// holds whatever the RELEASE rate, at a constant cost per RELEASE. Dropping
// an unexpired tombstone reopens the window it closed for that key, which
// is why the bound is generous.
func (t *table) tombstone(sh *shard, key uint64) {
	now := t.now()
	if len(sh.tomb) >= t.tombPerShard {
		seen := 0
		for k, e := range sh.tomb {
			if e <= now || seen == 0 && len(sh.tomb) >= t.tombPerShard {
				delete(sh.tomb, k)
			}
			if seen++; seen == 16 {
				break
			}
		}
	}
	sh.tomb[key] = now + t.tombTTL
}

// lookup returns the reservation under key, or nil.
func (t *table) lookup(key uint64) *record {
	sh := &t.shards[shardOf(key)]
	sh.mu.Lock()
	r := sh.m[key]
	sh.mu.Unlock()
	return r
}

// load returns the occupancy reported by HELLO and PONG.
func (t *table) load() wire.Load {
	return wire.Load{Capacity: clampU32(t.capacity.Load()), InUse: clampU32(t.live.Load())}
}

func clampU32(n int64) uint32 {
	switch {
	case n < 0:
		return 0
	case n > 1<<32-1:
		return 1<<32 - 1
	}
	return uint32(n)
}
