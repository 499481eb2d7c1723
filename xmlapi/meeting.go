package xmlapi

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"switchboard/wire"
)

// section is a child element of bodyContent that groups fields
// (auo:audioOnlyType, docs/webex-xml.md §4.1).
type section uint8

const (
	secAccessControl section = iota
	secMetaData
	secSchedule
	secTeleconference
	secTracking
	secRepeat
	secRemind
	secAttendeeOptions
	secBody // fields that are direct children of bodyContent
	numSections
)

var sectionNames = [numSections]string{"accessControl", "metaData", "schedule", "teleconference", "tracking",
	"repeat", "remind", "attendeeOptions", ""}

// kind is how a field's text is read and written.
type kind uint8

const (
	kString kind = iota // free text, at most max characters
	kInt                // decimal integer in lo..hi
	kBool               // true/false/1/0, any case
	kEnum               // one of enum (any case; stored as its index)
	kDate               // MM/DD/YYYY HH:MM:SS; stored as the wall clock read as UTC, Unix seconds
	kDays               // repeat/dayInWeek/day*: stored as a bit set, bit 0 SUNDAY
)

// fieldID indexes meeting.v; the order within a section is the XSD order,
// which Get renders.
type fieldID uint8

const (
	fListing fieldID = iota
	fSessionPassword
	fConfName
	fSessionType
	fStartDate
	fTimeZoneID
	fTimeZone
	fDuration
	fEntryExitTone
	fHostWebExID
	fRequestConferenceNumber
	fAccountIndex
	fExtTelephonyDescription
	fIntlLocalCallIn
	fTeleconfLocation
	fTracking1 // trackingCode1; trackingCode2…10 follow
)

const (
	fRepeatType fieldID = fTracking1 + 10 + iota
	fExpirationDate
	fDayInWeek
	fDayInMonth
	fInterval
	fWeekInMonth
	fEnableReminder
	fDaysAhead
	fHoursAhead
	fMinutesAhead
	fRequireUcfDiagnosis
	fExcludePassword
	fRequireAccount
	fEmailInvitations
	fValidateFormat
	numFields
)

// fieldDesc describes one field of the meeting.
type fieldDesc struct {
	sec    section
	name   string
	kind   kind
	max    int   // kString: most characters
	lo, hi int64 // kInt: range
	enum   []string
	com    bool // rendered in the com: namespace (common.xsd types)
}

var (
	listingEnum = []string{"PUBLIC", "PRIVATE"}
	// Stored index i is wire.Tone(i+1).
	toneEnum = []string{"BEEP", "ANNOUNCENAME", "NOTONE"}
	// Stored index i is wire.RepeatKind(i).
	repeatEnum = []string{"NO_REPEAT", "DAILY", "WEEKLY", "MONTHLY"}
	dayNames   = []string{"SUNDAY", "MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY"}
)

// Limits the schema does not give are ours (docs/webex-xml.md §5 gives
// confName 512, tracking codes 128; sessionPassword 16 follows
// cisco-ie/webex-api-client and meet:meetingPassword). They bound the
// meeting record, which must fit in wire.MaxMeta.
var fields = func() [numFields]fieldDesc {
	var f [numFields]fieldDesc
	f[fListing] = fieldDesc{sec: secAccessControl, name: "listing", kind: kEnum, enum: listingEnum}
	f[fSessionPassword] = fieldDesc{sec: secAccessControl, name: "sessionPassword", kind: kString, max: 16}
	f[fConfName] = fieldDesc{sec: secMetaData, name: "confName", kind: kString, max: 512}
	f[fSessionType] = fieldDesc{sec: secMetaData, name: "sessionType", kind: kInt, lo: -1, hi: 16}
	f[fStartDate] = fieldDesc{sec: secSchedule, name: "startDate", kind: kDate}
	f[fTimeZoneID] = fieldDesc{sec: secSchedule, name: "timeZoneID", kind: kInt, lo: 0, hi: int64(MaxTimeZoneID)}
	f[fTimeZone] = fieldDesc{sec: secSchedule, name: "timeZone", kind: kString, max: 64}
	f[fDuration] = fieldDesc{sec: secSchedule, name: "duration", kind: kInt, lo: 0, hi: 1<<31 - 1}
	f[fEntryExitTone] = fieldDesc{sec: secSchedule, name: "entryExitTone", kind: kEnum, enum: toneEnum}
	f[fHostWebExID] = fieldDesc{sec: secSchedule, name: "hostWebExID", kind: kString, max: 64}
	f[fRequestConferenceNumber] = fieldDesc{sec: secTeleconference, name: "requestConferenceNumber", kind: kBool}
	f[fAccountIndex] = fieldDesc{sec: secTeleconference, name: "accountIndex", kind: kInt, lo: 1, hi: 3}
	f[fExtTelephonyDescription] = fieldDesc{sec: secTeleconference, name: "extTelephonyDescription", kind: kString, max: 2048}
	f[fIntlLocalCallIn] = fieldDesc{sec: secTeleconference, name: "intlLocalCallIn", kind: kBool}
	f[fTeleconfLocation] = fieldDesc{sec: secTeleconference, name: "teleconfLocation", kind: kString, max: 256}
	for i := range fieldID(10) {
		f[fTracking1+i] = fieldDesc{sec: secTracking, name: "trackingCode" + strconv.Itoa(int(i)+1), kind: kString, max: 128, com: true}
	}
	f[fRepeatType] = fieldDesc{sec: secRepeat, name: "repeatType", kind: kEnum, enum: repeatEnum}
	f[fExpirationDate] = fieldDesc{sec: secRepeat, name: "expirationDate", kind: kDate}
	f[fDayInWeek] = fieldDesc{sec: secRepeat, name: "dayInWeek", kind: kDays}
	f[fDayInMonth] = fieldDesc{sec: secRepeat, name: "dayInMonth", kind: kInt, lo: 1, hi: 31}
	f[fInterval] = fieldDesc{sec: secRepeat, name: "interval", kind: kInt, lo: 1, hi: wire.MaxInterval}
	f[fWeekInMonth] = fieldDesc{sec: secRepeat, name: "weekInMonth", kind: kInt, lo: 1, hi: 6}
	f[fEnableReminder] = fieldDesc{sec: secRemind, name: "enableReminder", kind: kBool}
	f[fDaysAhead] = fieldDesc{sec: secRemind, name: "daysAhead", kind: kInt, lo: 0, hi: 365}
	f[fHoursAhead] = fieldDesc{sec: secRemind, name: "hoursAhead", kind: kInt, lo: 0, hi: 23}
	f[fMinutesAhead] = fieldDesc{sec: secRemind, name: "minutesAhead", kind: kInt, lo: 0, hi: 59}
	f[fRequireUcfDiagnosis] = fieldDesc{sec: secAttendeeOptions, name: "requireUcfDiagnosis", kind: kBool}
	f[fExcludePassword] = fieldDesc{sec: secAttendeeOptions, name: "excludePassword", kind: kBool}
	f[fRequireAccount] = fieldDesc{sec: secAttendeeOptions, name: "requireAccount", kind: kBool}
	f[fEmailInvitations] = fieldDesc{sec: secAttendeeOptions, name: "emailInvitations", kind: kBool}
	f[fValidateFormat] = fieldDesc{sec: secBody, name: "validateFormat", kind: kBool}
	return f
}()

// path is the element path named in FAILURE reasons, e.g.
// "schedule/startDate".
func (d *fieldDesc) path() string {
	if d.sec == secBody {
		return d.name
	}
	return sectionNames[d.sec] + "/" + d.name
}

// fieldIndex finds a field by section and lower-case element name.
var fieldIndex = func() map[section]map[string]fieldID {
	m := map[section]map[string]fieldID{}
	for i := range fields {
		d := &fields[i]
		if m[d.sec] == nil {
			m[d.sec] = map[string]fieldID{}
		}
		m[d.sec][strings.ToLower(d.name)] = fieldID(i)
	}
	return m
}()

// value is one field's value: s for kString, n for every other kind.
type value struct {
	s string
	n int64
}

// attendee is an auo:attendeeType.
type attendee struct {
	name, firstName, lastName, email string
	phone, mobilePhone, fax          string
}

// attendeeLimits bound attendee fields (our limits; the schema has none).
var attendeeLimits = struct{ name, part, email, phone int }{name: 256, part: 64, email: 320, phone: 64}

// meeting is the front end's model of a teleconference-only session: every
// field of auo:audioOnlyType the request carried, plus presence, so that a
// Set changes only what it names. It is what the meta blob stores. Not safe
// for concurrent use.
type meeting struct {
	has      uint64 // bit f: field f present
	sections uint16 // bit s: section element s present
	v        [numFields]value

	full, limited       []attendee
	hasFull, hasLimited bool // the list element was present (a Set replaces the list)
}

func (m *meeting) isSet(f fieldID) bool { return m.has&(1<<f) != 0 }

func (m *meeting) set(f fieldID, v value) {
	m.v[f] = v
	m.has |= 1 << f
}

func (m *meeting) clear(f fieldID) {
	m.v[f] = value{}
	m.has &^= 1 << f
}

func (m *meeting) str(f fieldID) string { return m.v[f].s }
func (m *meeting) num(f fieldID) int64  { return m.v[f].n }

// parseField reads the text of field f. Reasons quote the value only for
// fields whose values are formats or enumerations, never free text (a
// password must not reach a reason, hence a log).
func parseField(f fieldID, text string) (value, *Fault) {
	d := &fields[f]
	switch d.kind {
	case kString:
		if n := utf8.RuneCountInString(text); n > d.max {
			return value{}, invalidFault(d.path(), "%d characters, at most %d", n, d.max)
		}
		if !utf8.ValidString(text) {
			return value{}, invalidFault(d.path(), "not valid text")
		}
		return value{s: text}, nil
	case kInt:
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return value{}, invalidFault(d.path(), "%q is not an integer", clip(text))
		}
		if n < d.lo || n > d.hi {
			return value{}, invalidFault(d.path(), "%d not in %d..%d", n, d.lo, d.hi)
		}
		return value{n: n}, nil
	case kBool:
		b, ok := parseBool(text)
		if !ok {
			return value{}, invalidFault(d.path(), "%q is not true or false", clip(text))
		}
		if b {
			return value{n: 1}, nil
		}
		return value{}, nil
	case kEnum:
		for i, e := range d.enum {
			if strings.EqualFold(text, e) {
				return value{n: int64(i)}, nil
			}
		}
		return value{}, invalidFault(d.path(), "%q is not one of %s", clip(text), strings.Join(d.enum, ", "))
	case kDate:
		t, ok := parseDate(text)
		if !ok {
			return value{}, invalidFault(d.path(), "%q is not a date MM/DD/YYYY HH:MM:SS", clip(text))
		}
		return value{n: t}, nil
	}
	panic("xmlapi: parseField on a field of kind " + strconv.Itoa(int(d.kind)))
}

// clip bounds a value quoted in a reason.
func clip(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}

// parseBool accepts xsd:boolean (true, false, 1, 0) in any case: samples
// write true, TRUE and FALSE (docs/webex-xml.md §5).
func parseBool(s string) (bool, bool) {
	switch {
	case s == "1" || strings.EqualFold(s, "true"):
		return true, true
	case s == "0" || strings.EqualFold(s, "false"):
		return false, true
	}
	return false, false
}

// parseDate reads "MM/DD/YYYY HH:MM:SS" (24-hour, zero-padded, as every
// known client formats it) and returns the wall clock read as UTC, in Unix
// seconds. It rejects dates that do not exist (04/31, 02/29 of a common
// year) and years before 1970.
func parseDate(s string) (int64, bool) {
	if len(s) != 19 || s[2] != '/' || s[5] != '/' || s[10] != ' ' || s[13] != ':' || s[16] != ':' {
		return 0, false
	}
	num := func(i, n int) (int, bool) {
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	mo, ok1 := num(0, 2)
	dd, ok2 := num(3, 2)
	yy, ok3 := num(6, 4)
	hh, ok4 := num(11, 2)
	mi, ok5 := num(14, 2)
	ss, ok6 := num(17, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || yy < 1970 || mo < 1 || mo > 12 || dd < 1 || hh > 23 || mi > 59 || ss > 59 {
		return 0, false
	}
	t := time.Date(yy, time.Month(mo), dd, hh, mi, ss, 0, time.UTC)
	if t.Day() != dd { // normalised: the day does not exist in that month
		return 0, false
	}
	return t.Unix(), true
}

// appendDate formats a wall-clock Unix time as MM/DD/YYYY HH:MM:SS.
func appendDate(dst []byte, local int64) []byte {
	return time.Unix(local, 0).UTC().AppendFormat(dst, "01/02/2006 15:04:05")
}

// parseAttendeeField sets one attendee field from the element with
// lower-case name lname; at is the attendee's path for reasons, e.g.
// "fullAccessAttendees/attendee[2]". Unknown elements are ignored.
func parseAttendeeField(a *attendee, lname, text, at string) *Fault {
	var dst *string
	var limit int
	var name string
	switch lname {
	case "name":
		dst, limit, name = &a.name, attendeeLimits.name, "name"
	case "firstname":
		dst, limit, name = &a.firstName, attendeeLimits.part, "firstName"
	case "lastname":
		dst, limit, name = &a.lastName, attendeeLimits.part, "lastName"
	case "email":
		dst, limit, name = &a.email, attendeeLimits.email, "email"
	case "phone":
		dst, limit, name = &a.phone, attendeeLimits.phone, "phones/phone"
	case "mobilephone":
		dst, limit, name = &a.mobilePhone, attendeeLimits.phone, "phones/mobilePhone"
	case "fax":
		dst, limit, name = &a.fax, attendeeLimits.phone, "phones/fax"
	default:
		return nil
	}
	if n := utf8.RuneCountInString(text); n > limit {
		return invalidFault(at+"/"+name, "%d characters, at most %d", n, limit)
	}
	*dst = text
	return nil
}

// validEmail is a shape check, not RFC 5322: something@something, no
// spaces.
func validEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	return at > 0 && at < len(s)-1 && strings.LastIndexByte(s, '@') == at && !strings.ContainsAny(s, " \t\r\n<>")
}

const repeatFields = 1<<fRepeatType | 1<<fExpirationDate | 1<<fDayInWeek | 1<<fDayInMonth | 1<<fInterval | 1<<fWeekInMonth

// merge applies a Set request's meeting u to the stored m: every field u
// names replaces m's; an attendee list u names replaces m's whole list; a
// repeat element replaces m's whole recurrence rule (field-by-field merging
// of two rules makes nonsense, e.g. a WEEKLY rule keeping a stale
// dayInMonth).
func (m *meeting) merge(u *meeting) {
	if u.sections&(1<<secRepeat) != 0 {
		for f := fRepeatType; f <= fWeekInMonth; f++ {
			m.clear(f)
		}
	}
	for f := range numFields {
		if u.isSet(f) {
			m.set(f, u.v[f])
		}
	}
	m.sections |= u.sections
	if u.hasFull {
		m.full, m.hasFull = u.full, true
	}
	if u.hasLimited {
		m.limited, m.hasLimited = u.limited, true
	}
}

// finish checks the constraints between fields of a complete meeting (the
// stored one merged with a Set, or a Create's) and fills what can be
// derived. Field formats were checked while parsing.
func (m *meeting) finish() *Fault {
	if m.isSet(fSessionType) && m.num(fSessionType) != -1 && m.num(fSessionType) != 16 {
		return invalidFault("metaData/sessionType", "%d is not 16 (teleconference-only)", m.num(fSessionType))
	}
	for i := range m.full {
		if f := checkAttendee(&m.full[i], "fullAccessAttendees", i); f != nil {
			return f
		}
	}
	for i := range m.limited {
		if f := checkAttendee(&m.limited[i], "limitedAccessAttendees", i); f != nil {
			return f
		}
	}
	return m.finishRepeat()
}

func checkAttendee(a *attendee, list string, i int) *Fault {
	path := list + "/attendee[" + strconv.Itoa(i+1) + "]/email"
	if a.email == "" {
		return invalidFault(path, "required")
	}
	if !validEmail(a.email) {
		return invalidFault(path, "not an email address")
	}
	return nil
}

// finishRepeat checks the recurrence rule. A rule without repeatType is
// NO_REPEAT. WEEKLY needs days, MONTHLY a dayInMonth or a weekInMonth with
// one day; when they are missing they are taken from startDate (the
// meeting repeats on the day it starts), else the rule is refused. Fields
// that the type does not use are kept (Get returns them) but not sent to
// the bridge.
func (m *meeting) finishRepeat() *Fault {
	if m.has&repeatFields == 0 {
		return nil
	}
	kind := wire.RepeatKind(m.num(fRepeatType)) // 0 = NO_REPEAT when absent
	start, hasStart := m.num(fStartDate), m.isSet(fStartDate)
	switch kind {
	case wire.RepeatWeekly:
		if !m.isSet(fDayInWeek) || m.num(fDayInWeek) == 0 {
			if !hasStart {
				return invalidFault("repeat/dayInWeek", "WEEKLY needs at least one day (or a schedule/startDate)")
			}
			m.set(fDayInWeek, value{n: 1 << time.Unix(start, 0).UTC().Weekday()})
		}
	case wire.RepeatMonthly:
		switch {
		case m.isSet(fDayInMonth):
		case m.isSet(fWeekInMonth):
			if d := m.num(fDayInWeek); d == 0 || d&(d-1) != 0 {
				return invalidFault("repeat/dayInWeek", "MONTHLY with weekInMonth needs exactly one day")
			}
		case hasStart:
			m.set(fDayInMonth, value{n: int64(time.Unix(start, 0).UTC().Day())})
		default:
			return invalidFault("repeat/dayInMonth", "MONTHLY needs dayInMonth or weekInMonth (or a schedule/startDate)")
		}
	}
	if kind != wire.RepeatNone && !m.isSet(fInterval) {
		m.set(fInterval, value{n: 1})
	}
	if m.isSet(fExpirationDate) && hasStart && m.num(fExpirationDate) < start {
		return invalidFault("repeat/expirationDate", "before schedule/startDate")
	}
	return nil
}

// spec is what the bridge needs to know of m.
func (m *meeting) spec() wire.Spec {
	s := wire.Spec{
		Name:             []byte(m.str(fConfName)),
		TimeZone:         -1,
		FullAttendees:    uint32(len(m.full)),
		LimitedAttendees: uint32(len(m.limited)),
	}
	tz := DefaultTimeZoneID
	if m.isSet(fTimeZoneID) {
		tz = int(m.num(fTimeZoneID))
		s.TimeZone = int16(tz)
	}
	if m.isSet(fStartDate) {
		s.Start = utcFromLocal(m.num(fStartDate), tz)
	}
	if m.isSet(fDuration) {
		s.Duration = uint32(m.num(fDuration))
	}
	if m.isSet(fEntryExitTone) {
		s.Tone = wire.Tone(m.num(fEntryExitTone) + 1)
	}
	kind := wire.RepeatKind(m.num(fRepeatType))
	if kind == wire.RepeatNone {
		return s
	}
	r := &s.Repeat
	r.Kind = kind
	r.Interval = uint16(m.num(fInterval))
	if m.isSet(fExpirationDate) {
		r.Until = utcFromLocal(m.num(fExpirationDate), tz)
	}
	switch kind {
	case wire.RepeatWeekly:
		r.Days = uint8(m.num(fDayInWeek))
	case wire.RepeatMonthly:
		if m.isSet(fDayInMonth) {
			r.DayOfMonth = uint8(m.num(fDayInMonth))
		} else {
			r.WeekOfMonth = uint8(m.num(fWeekInMonth))
			r.Days = uint8(m.num(fDayInWeek))
		}
	}
	return s
}
