package daemon

import (
	"encoding/binary"
	"time"

	"github.com/VictoriaMetrics/fastcache"

	"switchboard/wire"
)

// index is the daemon's cache of sessions and idempotency tokens, on
// fastcache. It is a cache, never the source of truth (libraries.md P14):
// entries may vanish under memory pressure, a miss on a session key asks the
// telephony tiers, and the telephony server rejects a duplicate key.
//
// Session entries: "k" + 8-byte key → wire.Reservation encoding.
// Token entries: "t" + token → 8-byte expiry (Unix ns) + wire.AllocateResponse
// encoding. Every value is well under fastcache's 64 KiB entry limit (P13):
// a reservation's meta is bounded by wire.MaxMeta.
//
// index is safe for concurrent use.
type index struct {
	c   *fastcache.Cache
	ttl time.Duration
	now func() time.Time
}

func newIndex(sizeMB int, ttl time.Duration, now func() time.Time) *index {
	return &index{c: fastcache.New(sizeMB << 20), ttl: ttl, now: now}
}

func (x *index) close() { x.c.Reset() }

func sessionKey(k *[9]byte, key uint64) []byte {
	k[0] = 'k'
	binary.BigEndian.PutUint64(k[1:], key)
	return k[:]
}

// putSession stores r; scratch is a reusable buffer, returned grown.
func (x *index) putSession(r *wire.Reservation, scratch []byte) []byte {
	var k [9]byte
	scratch = r.AppendTo(scratch[:0])
	x.c.Set(sessionKey(&k, r.Key), scratch)
	return scratch
}

// getSession appends the encoded reservation of key to dst.
func (x *index) getSession(key uint64, dst []byte) ([]byte, bool) {
	var k [9]byte
	return x.c.HasGet(dst[:0], sessionKey(&k, key))
}

func (x *index) delSession(key uint64) {
	var k [9]byte
	x.c.Del(sessionKey(&k, key))
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
