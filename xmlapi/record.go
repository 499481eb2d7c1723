package xmlapi

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// The meeting record is the meta blob the daemon stores with a reservation
// and hands back on LOOKUP and UPDATE (docs/protocol.md §9.5): the whole
// meeting, so that the front end keeps no state and Get works after either
// process restarts.
//
// Encoding, version 1:
//
//	"WX" 0x01                      magic and version
//	then records: tag uvarint, length uvarint, length bytes
//
// in any order, each tag at most once except attendees. Tags:
//
//	1  owner webExID (the account that created the meeting)
//	2  owner site ("id:<n>" or "name:<lower-case name>")
//	3  sections present, uvarint bit set (bit = section index)
//	4  full-access attendee (nested records, tags 1–7 below), repeated
//	5  limited-access attendee, repeated
//	6  full-access list present (empty)
//	7  limited-access list present (empty)
//	16+f  meeting field f (fieldID): the text for string fields, else a
//	      zig-zag varint
//
// Attendee tags: 1 name, 2 firstName, 3 lastName, 4 email, 5 phone,
// 6 mobilePhone, 7 fax.
//
// Compatibility: a decoder skips tags it does not know, so version 1 can
// grow new optional fields; a change that old decoders must not misread
// bumps the version byte, and a decoder refuses a version it does not know
// (ErrRecordVersion).
const (
	recordVersion = 1
	tagOwner      = 1
	tagSite       = 2
	tagSections   = 3
	tagFull       = 4
	tagLimited    = 5
	tagHasFull    = 6
	tagHasLimited = 7
	tagField0     = 16
)

var recordMagic = [2]byte{'W', 'X'}

// record is a stored meeting and its owner.
type record struct {
	owner string // webExID of the creating account
	site  string // siteKey of that account
	m     meeting
}

func appendTLV(dst []byte, tag uint64, b []byte) []byte {
	dst = binary.AppendUvarint(dst, tag)
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func appendTLVString(dst []byte, tag uint64, s string) []byte {
	dst = binary.AppendUvarint(dst, tag)
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendTLVInt(dst []byte, tag uint64, n int64) []byte {
	var tmp [binary.MaxVarintLen64]byte
	return appendTLV(dst, tag, binary.AppendVarint(tmp[:0], n))
}

func appendAttendee(dst []byte, tag uint64, a *attendee) []byte {
	var tmp [1024]byte
	b := tmp[:0]
	for i, s := range [...]string{a.name, a.firstName, a.lastName, a.email, a.phone, a.mobilePhone, a.fax} {
		if s != "" {
			b = appendTLVString(b, uint64(i+1), s)
		}
	}
	return appendTLV(dst, tag, b)
}

// appendRecord appends the encoding of r to dst.
func appendRecord(dst []byte, r *record) []byte {
	dst = append(dst, recordMagic[0], recordMagic[1], recordVersion)
	dst = appendTLVString(dst, tagOwner, r.owner)
	dst = appendTLVString(dst, tagSite, r.site)
	m := &r.m
	if m.sections != 0 {
		dst = appendTLVInt(dst, tagSections, int64(m.sections))
	}
	for f := range numFields {
		if !m.isSet(f) {
			continue
		}
		tag := uint64(tagField0 + int(f))
		if fields[f].kind == kString {
			dst = appendTLVString(dst, tag, m.v[f].s)
		} else {
			dst = appendTLVInt(dst, tag, m.v[f].n)
		}
	}
	if m.hasFull {
		dst = appendTLV(dst, tagHasFull, nil)
	}
	if m.hasLimited {
		dst = appendTLV(dst, tagHasLimited, nil)
	}
	for i := range m.full {
		dst = appendAttendee(dst, tagFull, &m.full[i])
	}
	for i := range m.limited {
		dst = appendAttendee(dst, tagLimited, &m.limited[i])
	}
	return dst
}

// tlvReader walks tag-length-value records.
type tlvReader struct{ b []byte }

// next returns the next record; ok is false at the end, err on a broken
// record.
func (t *tlvReader) next() (tag uint64, v []byte, ok bool, err error) {
	if len(t.b) == 0 {
		return 0, nil, false, nil
	}
	tag, n := binary.Uvarint(t.b)
	if n <= 0 {
		return 0, nil, false, fmt.Errorf("%w: bad tag", ErrRecord)
	}
	t.b = t.b[n:]
	l, n := binary.Uvarint(t.b)
	if n <= 0 || l > uint64(len(t.b)-n) {
		return 0, nil, false, fmt.Errorf("%w: bad length of tag %d", ErrRecord, tag)
	}
	v = t.b[n : n+int(l)]
	t.b = t.b[n+int(l):]
	return tag, v, true, nil
}

func readInt(v []byte) (int64, error) {
	n, k := binary.Varint(v)
	if k <= 0 || k != len(v) {
		return 0, fmt.Errorf("%w: bad integer", ErrRecord)
	}
	return n, nil
}

func readString(v []byte) (string, error) {
	if !utf8.Valid(v) {
		return "", fmt.Errorf("%w: bad text", ErrRecord)
	}
	return string(v), nil
}

func decodeAttendee(v []byte) (attendee, error) {
	var a attendee
	dsts := [...]*string{&a.name, &a.firstName, &a.lastName, &a.email, &a.phone, &a.mobilePhone, &a.fax}
	t := tlvReader{b: v}
	for {
		tag, val, ok, err := t.next()
		if err != nil {
			return a, err
		}
		if !ok {
			return a, nil
		}
		if tag >= 1 && tag <= uint64(len(dsts)) {
			if *dsts[tag-1], err = readString(val); err != nil {
				return a, err
			}
		}
	}
}

// decodeRecord decodes a meta blob written by appendRecord.
func decodeRecord(b []byte) (*record, error) {
	if len(b) < 3 || b[0] != recordMagic[0] || b[1] != recordMagic[1] {
		return nil, ErrRecord
	}
	if b[2] != recordVersion {
		return nil, fmt.Errorf("%w: %d", ErrRecordVersion, b[2])
	}
	r := &record{}
	m := &r.m
	t := tlvReader{b: b[3:]}
	for {
		tag, v, ok, err := t.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		switch {
		case tag == tagOwner:
			r.owner, err = readString(v)
		case tag == tagSite:
			r.site, err = readString(v)
		case tag == tagSections:
			var n int64
			n, err = readInt(v)
			m.sections = uint16(n)
		case tag == tagFull || tag == tagLimited:
			var a attendee
			if a, err = decodeAttendee(v); err == nil {
				if tag == tagFull {
					m.full = append(m.full, a)
				} else {
					m.limited = append(m.limited, a)
				}
			}
		case tag == tagHasFull:
			m.hasFull = true
		case tag == tagHasLimited:
			m.hasLimited = true
		case tag >= tagField0 && tag < tagField0+uint64(numFields):
			f := fieldID(tag - tagField0)
			var val value
			if fields[f].kind == kString {
				val.s, err = readString(v)
			} else {
				val.n, err = readInt(v)
				if err == nil && fields[f].kind == kEnum && (val.n < 0 || val.n >= int64(len(fields[f].enum))) {
					err = fmt.Errorf("%w: %s value %d", ErrRecord, fields[f].name, val.n)
				}
			}
			if err == nil {
				m.set(f, val)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if r.owner == "" {
		return nil, fmt.Errorf("%w: no owner", ErrRecord)
	}
	return r, nil
}
