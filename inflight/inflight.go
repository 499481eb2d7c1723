package inflight

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Slot layout. Every slot is SlotSize bytes, 8-byte aligned (the header word
// is stored and loaded atomically), in native byte order: the file is read
// only by the machine that wrote it.
//
//	off  size  field
//	0    8     header: state (bits 0–7) | response length (bits 8–23) | CRC-32C (bits 32–63)
//	8    8     session key
//	16   1     tier length (≤ MaxTier)
//	17   1     token length (≤ MaxToken)
//	18   64    tier
//	82   128   token
//	210  6     unused
//	216  808   response (ACKED only)
//
// The CRC covers the state byte, bytes 8 … 18+MaxTier+MaxToken (the intent
// body, with unused tier and token bytes) and, for ACKED, the response.
const (
	SlotSize    = 1024
	MaxTier     = 64
	MaxToken    = 128
	MaxResponse = SlotSize - respOff

	keyOff    = 8
	tierLenAt = 16
	tokLenAt  = 17
	tierOff   = 18
	tokOff    = tierOff + MaxTier
	intentEnd = tokOff + MaxToken
	respOff   = 216
)

// File header: the first fileHeader bytes; slots start at the next page.
const (
	magic      = "SBINFL01"
	fileHeader = 4096
)

// State is a slot's state.
type State uint8

const (
	Empty  State = 0 // free, or a write cut short
	Intent State = 1 // a RESERVE may have been sent: outcome unknown
	Acked  State = 2 // the RESERVE succeeded; the answer may not have reached the client
)

func (s State) String() string {
	switch s {
	case Empty:
		return "empty"
	case Intent:
		return "intent"
	case Acked:
		return "acked"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Slot names an acquired slot. The zero Slot is none.
type Slot uint32

// Record is one slot's content as read back.
type Record struct {
	Slot  Slot
	State State
	Key   uint64
	Tier  []byte
	Token []byte // empty: the request carried none
	Resp  []byte // the AllocateResponse payload (Acked only)
}

// Errors.
var (
	// ErrCorrupt: the file is not an in-flight table (bad magic, size).
	ErrCorrupt = errors.New("inflight: not an in-flight table")
	// ErrTooLong: a tier, token or response does not fit a slot.
	ErrTooLong = errors.New("inflight: field too long for a slot")
	// errEmpty: the slot holds no valid record (free or torn).
	errEmpty = errors.New("inflight: empty or torn slot")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func header(st State, respLen int, sum uint32) uint64 {
	return uint64(st) | uint64(respLen)<<8 | uint64(sum)<<32
}

// EncodeIntent writes an INTENT body into s (SlotSize bytes) and returns
// the header word that makes it valid. The header word itself (s[0:8]) is
// not written.
func EncodeIntent(s []byte, token []byte, key uint64, tier []byte) (uint64, error) {
	if len(tier) > MaxTier || len(token) > MaxToken {
		return 0, ErrTooLong
	}
	_ = s[SlotSize-1]
	binary.NativeEndian.PutUint64(s[keyOff:], key)
	s[tierLenAt] = byte(len(tier))
	s[tokLenAt] = byte(len(token))
	copy(s[tierOff:tokOff], tier)
	clear(s[tierOff+len(tier) : tokOff])
	copy(s[tokOff:intentEnd], token)
	clear(s[tokOff+len(token) : intentEnd])
	return header(Intent, 0, intentSum(s, Intent)), nil
}

// EncodeAck writes resp into the response region of s, which must hold an
// intent body, and returns the ACKED header word.
func EncodeAck(s []byte, resp []byte) (uint64, error) {
	if len(resp) > MaxResponse {
		return 0, ErrTooLong
	}
	_ = s[SlotSize-1]
	copy(s[respOff:], resp)
	sum := crc32.Update(intentSum(s, Acked), castagnoli, s[respOff:respOff+len(resp)])
	return header(Acked, len(resp), sum), nil
}

// stateSeed[st] is the CRC-32C of the state byte st: the checksum starts
// from it, so a header cannot be turned into another state's by its bits.
var stateSeed = [3]uint32{
	crc32.Checksum([]byte{0}, castagnoli),
	crc32.Checksum([]byte{byte(Intent)}, castagnoli),
	crc32.Checksum([]byte{byte(Acked)}, castagnoli),
}

func intentSum(s []byte, st State) uint32 {
	return crc32.Update(stateSeed[st], castagnoli, s[keyOff:intentEnd])
}

// Decode reads a slot (SlotSize bytes, header word included) into r. Its
// byte slices alias s. It fails on a free slot, a torn write or garbage.
func Decode(s []byte, r *Record) error {
	if len(s) != SlotSize {
		return ErrCorrupt
	}
	return decode(binary.NativeEndian.Uint64(s), s, r)
}

func decode(h uint64, s []byte, r *Record) error {
	st := State(h)
	respLen := int(h>>8) & 0xffff
	sum := uint32(h >> 32)
	if h>>24&0xff != 0 {
		return errEmpty
	}
	var want uint32
	switch st {
	case Intent:
		if respLen != 0 {
			return errEmpty
		}
		want = intentSum(s, Intent)
	case Acked:
		if respLen > MaxResponse {
			return errEmpty
		}
		want = crc32.Update(intentSum(s, Acked), castagnoli, s[respOff:respOff+respLen])
	default:
		return errEmpty
	}
	tl, kl := int(s[tierLenAt]), int(s[tokLenAt])
	if sum != want || tl > MaxTier || kl > MaxToken {
		return errEmpty
	}
	*r = Record{State: st, Key: binary.NativeEndian.Uint64(s[keyOff:]),
		Tier: s[tierOff : tierOff+tl], Token: s[tokOff : tokOff+kl]}
	if st == Acked {
		r.Resp = s[respOff : respOff+respLen]
	}
	return nil
}

// Table is the mapped slot table. Acquire, Free, Read and Len are safe for
// concurrent use; Intend and Ack on one slot must be called only by the
// slot's owner (whoever acquired it), never concurrently with each other or
// with Free of that slot.
type Table struct {
	f    *os.File
	mem  []byte
	n    int
	head atomic.Uint64   // tag<<32 | (top index + 1); 0 in the low half: empty
	next []atomic.Uint32 // next[i]: index+1 of the slot below i on the stack
	used atomic.Int64

	discarded int

	stopFault, faulted chan struct{} // prefault's stop signal and end
}

// Discarded returns how many slots Open found neither empty nor valid (a
// write cut short by the previous process's death, or damage).
func (t *Table) Discarded() int { return t.discarded }

// Open opens or creates the table at path with slots slots (at least the
// number of records the previous process left). It returns those records
// (copied out of the file), already moved into slots 1…k of the new table,
// which stay acquired until the caller frees them. The rebuilt file is
// fsynced and renamed over path before it is mapped.
func Open(path string, slots int) (*Table, []Record, error) {
	if slots < 1 {
		return nil, nil, fmt.Errorf("inflight: %d slots", slots)
	}
	old, bad, err := recoverFile(path)
	if err != nil {
		return nil, nil, err
	}
	slots = max(slots, len(old))
	size := fileHeader + slots*SlotSize
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("inflight: %w", err)
	}
	fail := func(err error) (*Table, []Record, error) {
		f.Close()
		os.Remove(tmp)
		return nil, nil, fmt.Errorf("inflight: %w", err)
	}
	if err := f.Truncate(int64(size)); err != nil {
		return fail(err)
	}
	if err := allocate(f, int64(size)); err != nil {
		return fail(err)
	}
	var hdr [24]byte
	copy(hdr[:], magic)
	binary.NativeEndian.PutUint32(hdr[8:], SlotSize)
	binary.NativeEndian.PutUint32(hdr[12:], uint32(slots))
	binary.NativeEndian.PutUint32(hdr[16:], crc32.Checksum(hdr[:16], castagnoli))
	if _, err := f.WriteAt(hdr[:], 0); err != nil {
		return fail(err)
	}
	for i, r := range old {
		if _, err := f.WriteAt(r.raw, int64(fileHeader+i*SlotSize)); err != nil {
			return fail(err)
		}
	}
	// Records carried over must be on disk before the old file goes; a
	// table without records has nothing to lose (a power loss before the
	// rename reaches the disk leaves the old, empty table).
	if len(old) > 0 {
		if err := f.Sync(); err != nil {
			return fail(err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	if len(old) > 0 {
		if d, err := os.Open(filepath.Dir(path)); err == nil {
			d.Sync()
			d.Close()
		}
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("inflight: mmap: %w", err)
	}
	t := &Table{f: f, mem: mem, n: slots, next: make([]atomic.Uint32, slots), discarded: bad,
		stopFault: make(chan struct{}), faulted: make(chan struct{})}
	recs := make([]Record, len(old))
	for i := range old {
		recs[i] = old[i].Record
		recs[i].Slot = Slot(i + 1)
	}
	t.used.Store(int64(len(old)))
	for i := slots - 1; i >= len(old); i-- {
		t.push(uint32(i + 1))
	}
	go t.prefault(len(old))
	return t, recs, nil
}

// prefault touches every page of the slots for writing, in the order the
// free stack hands slots out, so that the request path does not take the
// first-write fault of a shared file mapping (the file system readies the
// page: tens of microseconds on ext4). It runs in the background because
// it takes tens of milliseconds for a large table, which a start should
// not wait for; a slot used before its page is reached takes that fault
// once. It writes only the unused bytes of a slot (never read, not
// checksummed), so it cannot disturb a slot in use. Close stops and awaits
// it.
func (t *Table) prefault(from int) {
	defer close(t.faulted)
	for i := from; i < t.n; i++ {
		if i%256 == 0 {
			select {
			case <-t.stopFault:
				return
			default:
			}
		}
		off := fileHeader + i*SlotSize
		if off%pageSize < SlotSize { // first slot of a page
			t.mem[off+intentEnd] = 0
		}
	}
}

const pageSize = 4096

type oldRecord struct {
	Record
	raw []byte
}

// recoverFile reads the valid records of the table at path (none if it
// does not exist). bad counts slots that were neither empty nor valid.
func recoverFile(path string) ([]oldRecord, int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("inflight: %w", err)
	}
	n, err := parseFileHeader(b)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	var out []oldRecord
	bad := 0
	for i := 0; i < n; i++ {
		s := b[fileHeader+i*SlotSize : fileHeader+(i+1)*SlotSize]
		var r Record
		if err := Decode(s, &r); err != nil {
			if binary.NativeEndian.Uint64(s) != 0 {
				bad++
			}
			continue
		}
		raw := append([]byte(nil), s...)
		if err := Decode(raw, &r); err != nil {
			panic("inflight: a copied slot no longer decodes")
		}
		out = append(out, oldRecord{Record: r, raw: raw})
	}
	return out, bad, nil
}

func parseFileHeader(b []byte) (int, error) {
	if len(b) < fileHeader || string(b[:8]) != magic ||
		binary.NativeEndian.Uint32(b[16:]) != crc32.Checksum(b[:16], castagnoli) ||
		binary.NativeEndian.Uint32(b[8:]) != SlotSize {
		return 0, ErrCorrupt
	}
	n := int(binary.NativeEndian.Uint32(b[12:]))
	if len(b) != fileHeader+n*SlotSize {
		return 0, ErrCorrupt
	}
	return n, nil
}

// Close unmaps and closes the table. What its slots hold stays in the file
// for the next Open.
func (t *Table) Close() error {
	close(t.stopFault)
	<-t.faulted
	err := unix.Munmap(t.mem)
	if cerr := t.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Slots returns the table's size.
func (t *Table) Slots() int { return t.n }

// Len returns how many slots are acquired.
func (t *Table) Len() int { return int(t.used.Load()) }

func (t *Table) word(off int) *uint64 {
	return (*uint64)(unsafe.Pointer(&t.mem[off]))
}

func (t *Table) slot(s Slot) (int, []byte) {
	off := fileHeader + (int(s)-1)*SlotSize
	return off, t.mem[off : off+SlotSize : off+SlotSize]
}

// Acquire takes a free slot, or fails at once when there is none.
func (t *Table) Acquire() (Slot, bool) {
	for {
		h := t.head.Load()
		top := uint32(h)
		if top == 0 {
			return 0, false
		}
		below := t.next[top-1].Load()
		if t.head.CompareAndSwap(h, (h>>32+1)<<32|uint64(below)) {
			t.used.Add(1)
			return Slot(top), true
		}
	}
}

// Free clears s and returns it to the free stack.
func (t *Table) Free(s Slot) {
	off, _ := t.slot(s)
	atomic.StoreUint64(t.word(off), 0)
	t.used.Add(-1)
	t.push(uint32(s))
}

func (t *Table) push(i uint32) {
	for {
		h := t.head.Load()
		t.next[i-1].Store(uint32(h))
		if t.head.CompareAndSwap(h, (h>>32+1)<<32|uint64(i)) {
			return
		}
	}
}

// Intend records that a RESERVE for key on tier (for token, possibly
// empty) is about to be sent from slot s. A previous intent of s is
// replaced: the caller must have made its outcome durable elsewhere first.
func (t *Table) Intend(s Slot, token []byte, key uint64, tier []byte) error {
	off, b := t.slot(s)
	w := t.word(off)
	if atomic.LoadUint64(w) != 0 {
		atomic.StoreUint64(w, 0)
	}
	h, err := EncodeIntent(b, token, key, tier)
	if err != nil {
		return err
	}
	atomic.StoreUint64(w, h)
	return nil
}

// Ack records that the RESERVE of s's intent succeeded with the
// AllocateResponse payload resp.
func (t *Table) Ack(s Slot, resp []byte) error {
	off, b := t.slot(s)
	h, err := EncodeAck(b, resp)
	if err != nil {
		return err
	}
	atomic.StoreUint64(t.word(off), h)
	return nil
}

// Read decodes slot s into r; r's byte slices alias the mapping and are
// valid until s is freed. Only the slot's owner may call it.
func (t *Table) Read(s Slot, r *Record) error {
	off, b := t.slot(s)
	if err := decode(atomic.LoadUint64(t.word(off)), b, r); err != nil {
		return err
	}
	r.Slot = s
	return nil
}
