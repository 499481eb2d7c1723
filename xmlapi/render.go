package xmlapi

import (
	"strconv"
	"time"
	"unicode/utf8"

	"switchboard/client"
)

// Responses follow docs/webex-xml.md §7.1, which satisfies every client of
// §7.2: an XML declaration first; serv: on envelope elements and the
// service's prefix (auo:, ep:) on body elements, all bound on the root;
// xmlns:xsi on serv:bodyContent; every element prefixed; the lowerCamel
// response type; no whitespace between elements (as real captures); an
// empty <serv:bodyContent/> on FAILURE; gsbStatus always present.
//
// Decision (docs/webex-xml.md §9.8): in GetTeleconferenceSession the
// children of common.xsd types (tracking codes, phones) are written
// com:trackingCode1, com:phone, as the qualified XSD says, and everything
// else auo:. A prefix-stripping client does not care; a namespace-aware
// one (JAXB) needs the XSD's namespaces.

const xmlDecl = `<?xml version="1.0" encoding="UTF-8"?>`

// service is the namespace set a response binds on its root.
type service uint8

const (
	svcNone service = iota // envelope-level FAILURE: serv and com only
	svcAuo
	svcEp
	svcMeet // meet: and att: (DelMeeting)
	svcUse  // use: (AuthenticateUser)
)

var rootOpen = [...]string{
	svcNone: `<serv:message xmlns:serv="` + nsServ + `" xmlns:com="` + nsCom + `">`,
	svcAuo:  `<serv:message xmlns:serv="` + nsServ + `" xmlns:com="` + nsCom + `" xmlns:auo="` + nsAuo + `">`,
	svcEp:   `<serv:message xmlns:serv="` + nsServ + `" xmlns:com="` + nsCom + `" xmlns:ep="` + nsEp + `">`,
	svcMeet: `<serv:message xmlns:serv="` + nsServ + `" xmlns:com="` + nsCom + `" xmlns:meet="` + nsMeet + `" xmlns:att="` + nsAtt + `">`,
	svcUse:  `<serv:message xmlns:serv="` + nsServ + `" xmlns:com="` + nsCom + `" xmlns:use="` + nsUse + `">`,
}

// serviceOf is the namespace set of an operation's responses.
func serviceOf(o op) service {
	switch o {
	case opCreate, opSet, opGet:
		return svcAuo
	case opDel, opGetAPIVersion:
		return svcEp
	case opDelMeeting:
		return svcMeet
	case opAuthenticateUser:
		return svcUse
	}
	return svcNone
}

// appendEscaped appends s with the five XML special characters escaped.
// Characters XML 1.0 forbids (most C0 controls) become U+FFFD: values come
// from parsed XML or from the bridge, so this only guards the bridge's.
func appendEscaped(dst []byte, s string) []byte {
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		var esc string
		switch {
		case c == '<':
			esc = "&lt;"
		case c == '>':
			esc = "&gt;"
		case c == '&':
			esc = "&amp;"
		case c == '"':
			esc = "&quot;"
		case c == '\'':
			esc = "&apos;"
		case c == '\r':
			// A raw CR would reach the client as LF (XML end-of-line
			// normalisation); the character reference keeps it.
			esc = "&#13;"
		case c < 0x20 && c != '\t' && c != '\n':
			esc = "\uFFFD"
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 || r == 0xFFFE || r == 0xFFFF {
				dst = append(dst, s[last:i]...)
				dst = append(dst, "\uFFFD"...)
				i += n
				last = i
				continue
			}
			i += n
			continue
		default:
			i++
			continue
		}
		dst = append(dst, s[last:i]...)
		dst = append(dst, esc...)
		i++
		last = i
	}
	return append(dst, s[last:]...)
}

func appendLeaf(dst []byte, prefix, name, value string) []byte {
	dst = append(dst, '<')
	dst = append(dst, prefix...)
	dst = append(dst, ':')
	dst = append(dst, name...)
	dst = append(dst, '>')
	dst = appendEscaped(dst, value)
	dst = append(dst, "</"...)
	dst = append(dst, prefix...)
	dst = append(dst, ':')
	dst = append(dst, name...)
	return append(dst, '>')
}

func appendOpen(dst []byte, prefix, name string) []byte {
	dst = append(dst, '<')
	dst = append(dst, prefix...)
	dst = append(dst, ':')
	dst = append(dst, name...)
	return append(dst, '>')
}

func appendClose(dst []byte, prefix, name string) []byte {
	dst = append(dst, "</"...)
	dst = append(dst, prefix...)
	dst = append(dst, ':')
	dst = append(dst, name...)
	return append(dst, '>')
}

// appendHeader appends the declaration, the root and the serv:header of a
// SUCCESS, up to and including <serv:body>.
func appendSuccessHead(dst []byte, svc service, gsb string) []byte {
	dst = append(dst, xmlDecl...)
	dst = append(dst, rootOpen[svc]...)
	dst = append(dst, "<serv:header><serv:response><serv:result>SUCCESS</serv:result><serv:gsbStatus>"...)
	dst = append(dst, gsb...)
	return append(dst, "</serv:gsbStatus></serv:response></serv:header><serv:body>"...)
}

const bodyTail = "</serv:body></serv:message>"

// appendBodyContentOpen opens a typed serv:bodyContent; empty closes it at
// once (<serv:bodyContent …/>).
func appendBodyContentOpen(dst []byte, xsiType string, empty bool) []byte {
	dst = append(dst, `<serv:bodyContent xsi:type="`...)
	dst = append(dst, xsiType...)
	dst = append(dst, `" xmlns:xsi="`+nsXSI+`"`...)
	if empty {
		return append(dst, "/>"...)
	}
	return append(dst, '>')
}

// appendFailure appends a whole FAILURE response (docs/webex-xml.md §8.1).
func appendFailure(dst []byte, svc service, gsb string, f *Fault) []byte {
	dst = append(dst, xmlDecl...)
	dst = append(dst, rootOpen[svc]...)
	dst = append(dst, "<serv:header><serv:response><serv:result>FAILURE</serv:result><serv:reason>"...)
	dst = appendEscaped(dst, f.Reason)
	dst = append(dst, "</serv:reason><serv:gsbStatus>"...)
	dst = append(dst, gsb...)
	dst = append(dst, "</serv:gsbStatus><serv:exceptionID>"...)
	dst = append(dst, f.ID...)
	dst = append(dst, "</serv:exceptionID></serv:response></serv:header><serv:body><serv:bodyContent/>"...)
	return append(dst, bodyTail...)
}

// appendCreateResponse appends the CreateTeleconferenceSession SUCCESS.
func appendCreateResponse(dst []byte, gsb string, key uint64) []byte {
	dst = appendSuccessHead(dst, svcAuo, gsb)
	dst = appendBodyContentOpen(dst, "auo:createTeleconferenceSessionResponse", false)
	dst = append(dst, "<auo:sessionKey>"...)
	dst = strconv.AppendUint(dst, key, 10)
	dst = append(dst, "</auo:sessionKey></serv:bodyContent>"...)
	return append(dst, bodyTail...)
}

// appendEmptyResponse appends a SUCCESS with an empty body of the given
// type (SetTeleconferenceSession, DelSession).
func appendEmptyResponse(dst []byte, svc service, gsb, xsiType string) []byte {
	dst = appendSuccessHead(dst, svc, gsb)
	dst = appendBodyContentOpen(dst, xsiType, true)
	return append(dst, bodyTail...)
}

// appendFieldValue appends field f's value as the schema writes it.
func appendFieldValue(dst []byte, m *meeting, f fieldID) []byte {
	d := &fields[f]
	v := m.v[f]
	switch d.kind {
	case kString:
		return appendEscaped(dst, v.s)
	case kInt:
		return strconv.AppendInt(dst, v.n, 10)
	case kBool:
		return strconv.AppendBool(dst, v.n != 0)
	case kEnum:
		return append(dst, d.enum[v.n]...)
	case kDate:
		return appendDate(dst, v.n)
	}
	return dst
}

func appendField(dst []byte, m *meeting, f fieldID) []byte {
	prefix := "auo"
	if fields[f].com {
		prefix = "com"
	}
	dst = appendOpen(dst, prefix, fields[f].name)
	dst = appendFieldValue(dst, m, f)
	return appendClose(dst, prefix, fields[f].name)
}

// appendSection appends one section of plain fields, if any is present.
func appendSection(dst []byte, m *meeting, s section) []byte {
	opened := false
	for f := range numFields {
		if fields[f].sec != s || !m.isSet(f) {
			continue
		}
		if !opened {
			dst = appendOpen(dst, "auo", sectionNames[s])
			opened = true
		}
		if fields[f].kind == kDays {
			dst = append(dst, "<auo:dayInWeek>"...)
			for i, name := range dayNames {
				if m.num(f)&(1<<i) != 0 {
					dst = appendLeaf(dst, "auo", "day", name)
				}
			}
			dst = append(dst, "</auo:dayInWeek>"...)
			continue
		}
		dst = appendField(dst, m, f)
	}
	if opened {
		dst = appendClose(dst, "auo", sectionNames[s])
	}
	return dst
}

func appendAttendees(dst []byte, list string, as []attendee) []byte {
	dst = appendOpen(dst, "auo", list)
	for i := range as {
		a := &as[i]
		dst = append(dst, "<auo:attendee>"...)
		for _, kv := range [...]struct{ name, v string }{{"name", a.name}, {"firstName", a.firstName}, {"lastName", a.lastName}, {"email", a.email}} {
			if kv.v != "" {
				dst = appendLeaf(dst, "auo", kv.name, kv.v)
			}
		}
		if a.phone != "" || a.mobilePhone != "" || a.fax != "" {
			dst = append(dst, "<auo:phones>"...)
			for _, kv := range [...]struct{ name, v string }{{"phone", a.phone}, {"mobilePhone", a.mobilePhone}, {"fax", a.fax}} {
				if kv.v != "" {
					dst = appendLeaf(dst, "com", kv.name, kv.v)
				}
			}
			dst = append(dst, "</auo:phones>"...)
		}
		dst = append(dst, "</auo:attendee>"...)
	}
	return appendClose(dst, "auo", list)
}

// appendTeleconference appends the auo:teleconfInstanceType of Get
// (docs/webex-xml.md §4.2) from the bridge the daemon reserved.
// Decisions: personalConferenceNumber is false (every session gets its
// own bridge, a request conference number in WebEx terms); there is one
// attendee access code, so it is both participantFullAccessCode and
// participantLimitedAccessCode; intlLocalCallInNumber is empty (the bridge
// has none); scheduleConfID is the bridge id when numeric, else the
// session key.
func appendTeleconference(dst []byte, m *meeting, key uint64, b *client.Bridge) []byte {
	dst = append(dst, "<auo:teleconference><auo:personalConferenceNumber>false</auo:personalConferenceNumber>"...)
	if m.isSet(fAccountIndex) {
		dst = appendField(dst, m, fAccountIndex)
	}
	dst = appendLeaf(dst, "auo", "tollFreeCallInNumber", b.TollFree)
	dst = appendLeaf(dst, "auo", "tollCallInNumber", b.Toll)
	dst = append(dst, "<auo:intlLocalCallInNumber></auo:intlLocalCallInNumber>"...)
	dst = appendLeaf(dst, "auo", "subscriberAccessCode", b.HostCode)
	dst = appendLeaf(dst, "auo", "participantFullAccessCode", b.AttendeeCode)
	dst = appendLeaf(dst, "auo", "participantLimitedAccessCode", b.AttendeeCode)
	dst = append(dst, "<auo:scheduleConfID>"...)
	if isDigits(b.ID) {
		dst = append(dst, b.ID...)
	} else {
		dst = strconv.AppendUint(dst, key, 10)
	}
	dst = append(dst, "</auo:scheduleConfID>"...)
	for _, f := range [...]fieldID{fExtTelephonyDescription, fIntlLocalCallIn, fTeleconfLocation} {
		if m.isSet(f) {
			dst = appendField(dst, m, f)
		}
	}
	return append(dst, "</auo:teleconference>"...)
}

func isDigits(s string) bool {
	if s == "" || len(s) > 18 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// appendGetResponse appends the GetTeleconferenceSession SUCCESS: the
// stored meeting in XSD order (auo:audioOnlyInstanceType: accessControl,
// metaData, schedule, teleconference, tracking, repeat, remind, the
// attendee lists, attendeeOptions), with the bridge's numbers and codes.
func appendGetResponse(dst []byte, gsb string, key uint64, m *meeting, b *client.Bridge) []byte {
	dst = appendSuccessHead(dst, svcAuo, gsb)
	dst = appendBodyContentOpen(dst, "auo:getTeleconferenceSessionResponse", false)
	dst = appendSection(dst, m, secAccessControl)
	dst = appendSection(dst, m, secMetaData)
	dst = appendSection(dst, m, secSchedule)
	dst = appendTeleconference(dst, m, key, b)
	dst = appendSection(dst, m, secTracking)
	dst = appendSection(dst, m, secRepeat)
	dst = appendSection(dst, m, secRemind)
	if len(m.full) > 0 {
		dst = appendAttendees(dst, "fullAccessAttendees", m.full)
	}
	if len(m.limited) > 0 {
		dst = appendAttendees(dst, "limitedAccessAttendees", m.limited)
	}
	dst = append(dst, "<auo:attendeeOptions>"...)
	for _, f := range [...]fieldID{fRequireUcfDiagnosis, fExcludePassword, fRequireAccount, fEmailInvitations} {
		dst = appendField(dst, m, f) // absent = the schema default, false
	}
	dst = append(dst, "</auo:attendeeOptions></serv:bodyContent>"...)
	return append(dst, bodyTail...)
}

// APIVersion and APIRelease are what GetAPIVersion answers
// (docs/webex-xml.md §3.3): the version of the WebEx XML API reference
// whose teleconference-only operations and time zone table this front end
// follows, and a release naming this implementation.
const (
	APIVersion = "WebEx XML API V5.9.0"
	APIRelease = "switchboard"
)

// appendAPIVersionResponse appends the GetAPIVersion SUCCESS.
func appendAPIVersionResponse(dst []byte, gsb string) []byte {
	dst = appendSuccessHead(dst, svcEp, gsb)
	dst = appendBodyContentOpen(dst, "ep:getAPIVersionResponse", false)
	dst = appendLeaf(dst, "ep", "apiVersion", APIVersion)
	dst = appendLeaf(dst, "ep", "release", APIRelease)
	dst = append(dst, "</serv:bodyContent>"...)
	return append(dst, bodyTail...)
}

// appendAuthenticateUserResponse appends the AuthenticateUser SUCCESS: the
// ticket, its issue time in milliseconds and its lifetime in seconds.
func appendAuthenticateUserResponse(dst []byte, gsb, ticket string, created time.Time) []byte {
	dst = appendSuccessHead(dst, svcUse, gsb)
	dst = appendBodyContentOpen(dst, "use:authenticateUserResponse", false)
	dst = appendLeaf(dst, "use", "sessionTicket", ticket)
	dst = append(dst, "<use:createTime>"...)
	dst = strconv.AppendInt(dst, created.UnixMilli(), 10)
	dst = append(dst, "</use:createTime><use:timeToLive>"...)
	dst = strconv.AppendInt(dst, int64(TicketTTL/time.Second), 10)
	dst = append(dst, "</use:timeToLive></serv:bodyContent>"...)
	return append(dst, bodyTail...)
}
