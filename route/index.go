package route

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/VictoriaMetrics/fastcache"

	"switchboard/wire"
)

// index is the daemon's cache of sessions and idempotency tokens, on
// fastcache. It is a cache, never the source of truth (docs/libraries.md F2):
// entries may vanish under memory pressure, a miss on a session key asks the
// telephony tiers, and the telephony server rejects a duplicate key.
//
// Session entries: "k" + 8-byte key → a session record, one of
//
//	live:      0x01, server id length (1 byte), server id, wire.Reservation encoding
//	tombstone: 0x00, 8-byte expiry (Unix ns, big endian)
//
// The server id is the HELLO id of the telephony server holding the
// reservation: follow-ups go to it and nowhere else. A tombstone is what a
// delete leaves for sessionTombstoneTTL: a put that does not create the
// session (the reply to an UPDATE or a LOOKUP handled after a RELEASE
// removed the session) finds it and stores nothing, so a released session
// is never resurrected (docs/protocol.md, "The daemon's session index").
//
// Token entries: "t" + token → 8-byte expiry (Unix ns) + wire.AllocateResponse
// encoding. Every value is well under fastcache's 64 KiB entry limit (docs/libraries.md F1):
// a reservation's meta is bounded by wire.MaxMeta, a server id by
// wire.MaxShort.
//
// index is safe for concurrent use. Deletes and the puts that must respect
// them take one of a few striped mutexes (never across I/O); the put of a
// fresh allocation (a key nobody else knows yet) takes none.
type index struct {
	c   *fastcache.Cache
	ttl time.Duration
	now func() time.Time

	stripes [indexStripes]sync.Mutex
}

// indexStripes is the number of mutexes serializing a key's delete with a
// later put that must not undo it.
const indexStripes = 64

// sessionTombstoneTTL is how long a deleted session's tombstone refuses puts:
// far longer than any request (request_timeout is at most a few seconds) can
// still be holding a reply about it.
const sessionTombstoneTTL = 2 * time.Minute

// Session record tags.
const (
	recTombstone = 0x00
	recLive      = 0x01
)

func newIndex(sizeMB int, ttl time.Duration, now func() time.Time) *index {
	return &index{c: fastcache.New(sizeMB << 20), ttl: ttl, now: now}
}

func (x *index) close() { x.c.Reset() }

func sessionKey(k *[9]byte, key uint64) []byte {
	k[0] = 'k'
	binary.BigEndian.PutUint64(k[1:], key)
	return k[:]
}

func (x *index) stripe(key uint64) *sync.Mutex {
	return &x.stripes[(key*0x9E3779B97F4A7C15)>>(64-6)]
}

// appendSessionRecord appends the live record of r held by serverID.
func appendSessionRecord(dst []byte, serverID string, r *wire.Reservation) []byte {
	dst = append(dst, recLive, byte(len(serverID)))
	dst = append(dst, serverID...)
	return r.AppendTo(dst)
}

// parseSessionRecord splits a live record into its server id and its
// reservation encoding; ok is false for a tombstone or a corrupt record.
func parseSessionRecord(v []byte) (serverID, res []byte, ok bool) {
	if len(v) < 2 || v[0] != recLive || len(v) < 2+int(v[1]) {
		return nil, nil, false
	}
	n := int(v[1])
	return v[2 : 2+n], v[2+n:], true
}

// putSession stores r, held by serverID, for a session just created (a
// fresh key: no tombstone can exist); scratch is a reusable buffer, returned
// grown.
func (x *index) putSession(serverID string, r *wire.Reservation, scratch []byte) []byte {
	var k [9]byte
	scratch = appendSessionRecord(scratch[:0], serverID, r)
	x.c.Set(sessionKey(&k, r.Key), scratch)
	return scratch
}

// refreshSession stores r, held by serverID, unless the session was deleted
// (its tombstone is in force): for what a LOOKUP or an UPDATE learned, whose
// reply may be handled after a RELEASE removed the session. It reports
// whether it stored r.
func (x *index) refreshSession(serverID string, r *wire.Reservation, scratch []byte) ([]byte, bool) {
	var k [9]byte
	sk := sessionKey(&k, r.Key)
	mu := x.stripe(r.Key)
	mu.Lock()
	defer mu.Unlock()
	old, found := x.c.HasGet(scratch[:0], sk)
	if found && x.tombstoned(old) {
		return old, false
	}
	scratch = appendSessionRecord(old[:0], serverID, r)
	x.c.Set(sk, scratch)
	return scratch, true
}

// tombstoned reports whether v is a tombstone still in force.
func (x *index) tombstoned(v []byte) bool {
	return len(v) == 9 && v[0] == recTombstone && int64(binary.BigEndian.Uint64(v[1:])) > x.now().UnixNano()
}

// getSession appends the record of key to dst. found reports a live record;
// deleted a tombstone in force (the session was released: NOT_FOUND without
// asking anyone).
func (x *index) getSession(key uint64, dst []byte) (v []byte, found, deleted bool) {
	var k [9]byte
	v, ok := x.c.HasGet(dst[:0], sessionKey(&k, key))
	switch {
	case !ok:
		return v, false, false
	case len(v) > 0 && v[0] == recLive:
		return v, true, false
	default:
		return v, false, x.tombstoned(v)
	}
}

// delSession removes key's session and leaves its tombstone.
func (x *index) delSession(key uint64) {
	var k [9]byte
	var v [9]byte
	v[0] = recTombstone
	binary.BigEndian.PutUint64(v[1:], uint64(x.now().Add(sessionTombstoneTTL).UnixNano()))
	mu := x.stripe(key)
	mu.Lock()
	x.c.Set(sessionKey(&k, key), v[:])
	mu.Unlock()
}

// forgetSession drops a stale or corrupt entry without a tombstone (the
// session may well exist: it is looked up on the servers).
func (x *index) forgetSession(key uint64) {
	var k [9]byte
	mu := x.stripe(key)
	mu.Lock()
	x.c.Del(sessionKey(&k, key))
	mu.Unlock()
}

func tokenKey(dst, token []byte) []byte {
	dst = append(dst[:0], 't')
	return append(dst, token...)
}

// getToken appends the remembered, unexpired answer to token to dst.
func (x *index) getToken(token, kbuf, dst []byte) ([]byte, []byte, bool) {
	kbuf = tokenKey(kbuf, token)
	v, ok := x.c.HasGet(dst[:0], kbuf)
	if !ok || len(v) < 8 {
		return kbuf, v, false
	}
	if int64(binary.BigEndian.Uint64(v)) < x.now().UnixNano() {
		x.c.Del(kbuf)
		return kbuf, v, false
	}
	return kbuf, v, true
}

// putTokenRaw remembers an already-encoded AllocateResponse payload.
func (x *index) putTokenRaw(token, payload []byte, kbuf, scratch []byte) ([]byte, []byte) {
	kbuf = tokenKey(kbuf, token)
	scratch = binary.BigEndian.AppendUint64(scratch[:0], uint64(x.now().Add(x.ttl).UnixNano()))
	scratch = append(scratch, payload...)
	x.c.Set(kbuf, scratch)
	return kbuf, scratch
}

// replayedKey is the index key marking that token's answer was given to a
// request other than the one that allocated it: "r" + token.
func replayedKey(dst, token []byte) []byte {
	dst = append(dst[:0], 'r')
	return append(dst, token...)
}

// markReplayed records that token's answer was replayed (a retry, or a
// request that joined the allocation in flight). Rare: retries only.
func (x *index) markReplayed(token []byte) {
	var b [80]byte
	x.c.Set(replayedKey(b[:0], token), nil)
}

// replayed reports whether token's answer was given to another request.
func (x *index) replayed(token []byte) bool {
	var b [80]byte
	return x.c.Has(replayedKey(b[:0], token))
}
