package xmlapi

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode"
)

// Namespace URIs (docs/webex-xml.md §1).
const (
	nsXSI  = "http://www.w3.org/2001/XMLSchema-instance"
	nsServ = "http://www.webex.com/schemas/2002/06/service"
	nsCom  = "http://www.webex.com/schemas/2002/06/common"
	nsAuo  = "http://www.webex.com/schemas/2002/06/service/meeting/auo"
	nsEp   = "http://www.webex.com/schemas/2002/06/service/ep"
	nsMeet = "http://www.webex.com/schemas/2002/06/service/meeting"
	nsAtt  = "http://www.webex.com/schemas/2002/06/service/attendee"
	nsUse  = "http://www.webex.com/schemas/2002/06/service/user"
)

// op is a supported operation.
type op uint8

const (
	opNone op = iota
	opCreate
	opSet
	opGet
	opDel
	opDelMeeting       // DelSession's Meeting Center form: meetingKey
	opGetAPIVersion    // no sign-in: a health check
	opAuthenticateUser // password → sessionTicket
	numOps
)

// ops maps the lower-case operation name of bodyContent/@xsi:type to the
// operation.
var ops = map[string]op{
	"createteleconferencesession": opCreate,
	"setteleconferencesession":    opSet,
	"getteleconferencesession":    opGet,
	"delsession":                  opDel,
	"delmeeting":                  opDelMeeting,
	"getapiversion":               opGetAPIVersion,
	"authenticateuser":            opAuthenticateUser,
}

// request is a parsed XML API request. Faults in the body are kept in
// fault and reported only after authentication, so that an unauthenticated
// caller learns nothing about validation.
type request struct {
	op     op
	opName string // the operation as sent, for the reason of an unsupported one
	cred   credentials
	m      meeting
	key    uint64
	hasKey bool
	fault  *Fault // first invalid element of the body
}

// ctxKind is where in the document an element sits.
type ctxKind uint8

const (
	cTop ctxKind = iota
	cMessage
	cHeader
	cSecurity
	cBody
	cBodyContent
	cSection
	cDayInWeek
	cAttList
	cAttendee
	cPhones
	cLeaf
	cSkip
)

// Leaf targets: what the text of a leaf element sets.
const (
	lNone uint8 = iota
	lWebExID
	lPassword
	lSiteID
	lSiteName
	lPartnerID
	lEmail
	lTicket
	lOtherSecret
	lSessionKey
	lSendEmail
	lField
	lDay
	lAttendee // attendee field; frame.name holds the lower-case name
)

var securityLeaves = map[string]uint8{
	"webexid": lWebExID, "password": lPassword, "siteid": lSiteID, "sitename": lSiteName,
	"partnerid": lPartnerID, "email": lEmail, "sessionticket": lTicket, "webexaccesstoken": lOtherSecret,
}

var sectionByName = func() map[string]section {
	m := map[string]section{}
	for s := range secBody {
		m[strings.ToLower(sectionNames[s])] = s
	}
	return m
}()

// frame is one open element.
type frame struct {
	kind  ctxKind
	sec   section // cSection
	full  bool    // cAttList, cAttendee, cPhones: the full-access list
	leaf  uint8   // cLeaf
	field fieldID // cLeaf with lField
	name  string  // cLeaf with lAttendee: the lower-case name; lSessionKey: the element
	par   ctxKind // cLeaf: the parent's kind
}

// parser turns a request document into a request. Not safe for concurrent
// use; a handler makes one per request.
type parser struct {
	maxDepth int
	stack    []frame
	text     []byte
	lname    []byte
	req      *request
	bodies   int
	rootDone bool
}

// parseRequest parses body. A document that cannot be routed (not XML, too
// deep, no or several bodyContent, no operation, an unsupported encoding)
// is a FAILURE 000000; invalid values are kept in req.fault.
func parseRequest(body []byte, maxDepth int, req *request) *Fault {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	body, _ = decodeUTF16(body)
	if len(bytes.TrimSpace(body)) == 0 {
		return forwardFault("empty request")
	}
	d := xml.NewDecoder(bytes.NewReader(body))
	d.CharsetReader = charsetReader
	p := parser{maxDepth: maxDepth, req: req, stack: make([]frame, 0, 16)}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			var ce *charsetError
			if errors.As(err, &ce) {
				return forwardFault("%v", ce)
			}
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return forwardFault("malformed XML at line %d: %s", se.Line, se.Msg)
			}
			return forwardFault("malformed XML: %v", err)
		}
		if f := p.token(tok); f != nil {
			return f
		}
	}
	switch {
	case !p.rootDone:
		return forwardFault("no message element")
	case p.bodies == 0:
		return forwardFault("no bodyContent")
	case req.opName == "":
		return forwardFault("bodyContent has no xsi:type naming the operation")
	case req.op == opNone:
		return forwardFault("unsupported operation %q", clip(req.opName))
	}
	return nil
}

func (p *parser) token(tok xml.Token) *Fault {
	switch t := tok.(type) {
	case xml.StartElement:
		return p.start(t)
	case xml.EndElement:
		return p.end()
	case xml.CharData:
		if n := len(p.stack); n > 0 && p.stack[n-1].kind == cLeaf {
			p.text = append(p.text, t...)
		} else if n == 0 && len(bytes.TrimSpace(t)) > 0 {
			return forwardFault("text outside the message element")
		}
	}
	return nil
}

// lower returns the ASCII lower case of s in a reused buffer.
func (p *parser) lower(s string) []byte {
	b := p.lname[:0]
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	p.lname = b
	return b
}

func (p *parser) start(t xml.StartElement) *Fault {
	if len(p.stack) >= p.maxDepth {
		return forwardFault("elements nested deeper than %d", p.maxDepth)
	}
	parent := cTop
	var pf *frame
	if n := len(p.stack); n > 0 {
		pf = &p.stack[n-1]
		parent = pf.kind
	}
	if f := dupAttr(t.Attr); f != nil {
		return f
	}
	name := p.lower(t.Name.Local)
	f := frame{kind: cSkip}
	switch parent {
	case cTop:
		if p.rootDone {
			return forwardFault("more than one root element")
		}
		if string(name) != "message" {
			return forwardFault("root element is %q, not message", clip(t.Name.Local))
		}
		f.kind = cMessage
	case cMessage:
		switch string(name) {
		case "header":
			f.kind = cHeader
		case "body":
			f.kind = cBody
		}
	case cHeader:
		if string(name) == "securitycontext" {
			f.kind = cSecurity
			p.req.cred.present = true
		}
	case cSecurity:
		if l, ok := securityLeaves[string(name)]; ok {
			f = frame{kind: cLeaf, leaf: l}
		}
	case cBody:
		if string(name) == "bodycontent" {
			p.bodies++
			if p.bodies > 1 {
				return forwardFault("more than one bodyContent")
			}
			f.kind = cBodyContent
			p.readType(t.Attr)
		}
	case cBodyContent:
		switch string(name) {
		case "fullaccessattendees":
			f = frame{kind: cAttList, full: true}
			p.req.m.full, p.req.m.hasFull = nil, true
		case "limitedaccessattendees":
			f = frame{kind: cAttList}
			p.req.m.limited, p.req.m.hasLimited = nil, true
		case "sessionkey":
			f = frame{kind: cLeaf, leaf: lSessionKey, name: "sessionKey"}
		case "meetingkey": // DelMeeting
			f = frame{kind: cLeaf, leaf: lSessionKey, name: "meetingKey"}
		case "sendemail":
			f = frame{kind: cLeaf, leaf: lSendEmail}
		default:
			if s, ok := sectionByName[string(name)]; ok {
				f = frame{kind: cSection, sec: s}
				p.req.m.sections |= 1 << s
			} else if id, ok := fieldIndex[secBody][string(name)]; ok {
				f = frame{kind: cLeaf, leaf: lField, field: id}
			}
		}
	case cSection:
		if pf.sec == secRepeat && string(name) == "dayinweek" {
			f.kind = cDayInWeek
			p.req.m.set(fDayInWeek, value{}) // the list replaces any earlier one
		} else if id, ok := fieldIndex[pf.sec][string(name)]; ok && fields[id].kind != kDays {
			f = frame{kind: cLeaf, leaf: lField, field: id}
		}
	case cDayInWeek:
		if string(name) == "day" {
			f = frame{kind: cLeaf, leaf: lDay}
		}
	case cAttList:
		if string(name) == "attendee" {
			f = frame{kind: cAttendee, full: pf.full}
			if pf.full {
				p.req.m.full = append(p.req.m.full, attendee{})
			} else {
				p.req.m.limited = append(p.req.m.limited, attendee{})
			}
		}
	case cAttendee:
		if string(name) == "phones" {
			f = frame{kind: cPhones, full: pf.full}
		} else {
			f = frame{kind: cLeaf, leaf: lAttendee, name: string(name), full: pf.full}
		}
	case cPhones:
		f = frame{kind: cLeaf, leaf: lAttendee, name: string(name), full: pf.full}
	}
	if f.kind == cLeaf {
		f.par = parent
		p.text = p.text[:0]
	}
	p.stack = append(p.stack, f)
	return nil
}

// dupAttr refuses an element with two attributes of the same name:
// encoding/xml accepts them, but such a document is not well-formed XML
// (XML 1.0 §3.1, "Unique Att Spec"; with namespaces, two prefixes bound to
// one URI count as the same name). Elements have few attributes: up to 16
// a scan that allocates nothing, past that a set, so that a hostile
// element with thousands of attributes costs linear time.
func dupAttr(attrs []xml.Attr) *Fault {
	if len(attrs) > 16 {
		seen := make(map[xml.Name]struct{}, len(attrs))
		for _, a := range attrs {
			if _, dup := seen[a.Name]; dup {
				return forwardFault("malformed XML: attribute %q appears twice", clip(a.Name.Local))
			}
			seen[a.Name] = struct{}{}
		}
		return nil
	}
	for i := 1; i < len(attrs); i++ {
		for j := 0; j < i; j++ {
			if attrs[i].Name == attrs[j].Name {
				return forwardFault("malformed XML: attribute %q appears twice", clip(attrs[i].Name.Local))
			}
		}
	}
	return nil
}

// readType finds the operation in bodyContent/@xsi:type. Both forms real
// clients send are accepted: "java:com.webex.service.binding.<path>.<Op>"
// (documented) and a QName "prefix:op" (JAXB), matched without regard to
// case. Whitespace inside the value is removed: the seed itself breaks the
// value across two lines. Decision (docs/webex-xml.md §2.4): the xsi
// prefix need not be bound; the real service answered 000000 without the
// binding, but refusing gains nothing.
func (p *parser) readType(attrs []xml.Attr) {
	for _, a := range attrs {
		if a.Name.Local != "type" || (a.Name.Space != nsXSI && a.Name.Space != "xsi") {
			continue
		}
		v := strings.Map(func(r rune) rune {
			if unicode.IsSpace(r) {
				return -1
			}
			return r
		}, a.Value)
		name := v
		if i := strings.LastIndexAny(v, ":."); i >= 0 {
			name = v[i+1:]
		}
		p.req.opName = name
		p.req.op = ops[strings.ToLower(name)]
		return
	}
}

// formatSpace is the white space XML formatting puts around a value (an
// indented document's spaces, tabs and line ends), trimmed from every
// leaf's text. Not CR: the decoder turns every literal CR (and CR LF) of
// the document into LF, as XML's end-of-line rule requires, so a CR in
// character data can only come from a reference (&#13;), written on
// purpose; it is kept, and written back as &#13; (render.go). Nor any
// other Unicode space (U+00A0 and the like): no formatting adds those.
const formatSpace = " \t\n"

func (p *parser) end() *Fault {
	n := len(p.stack)
	f := p.stack[n-1]
	p.stack = p.stack[:n-1]
	if n == 1 {
		p.rootDone = true
	}
	if f.kind != cLeaf {
		return nil
	}
	text := string(bytes.Trim(p.text, formatSpace))
	req := p.req
	keep := func(fl *Fault) {
		if req.fault == nil {
			req.fault = fl
		}
	}
	switch f.leaf {
	case lWebExID:
		req.cred.webExID = text
	case lPassword:
		req.cred.password = text
	case lSiteID:
		req.cred.siteID = text
	case lSiteName:
		req.cred.siteName = text
	case lPartnerID:
		req.cred.partnerID = text
	case lEmail:
		req.cred.email = text
	case lTicket:
		req.cred.ticket = text
	case lOtherSecret:
		req.cred.otherSecret = req.cred.otherSecret || text != ""
	case lSessionKey:
		k, err := strconv.ParseUint(text, 10, 63)
		if err != nil || k == 0 {
			keep(invalidFault(f.name, "%q is not a session key", clip(text)))
			return nil
		}
		req.key, req.hasKey = k, true
	case lSendEmail:
		if _, ok := parseBool(text); !ok {
			keep(invalidFault("sendEmail", "%q is not true or false", clip(text)))
		}
	case lField:
		v, fl := parseField(f.field, text)
		if fl != nil {
			keep(fl)
			return nil
		}
		req.m.set(f.field, v)
	case lDay:
		for i, d := range dayNames {
			if strings.EqualFold(text, d) {
				req.m.set(fDayInWeek, value{n: req.m.num(fDayInWeek) | 1<<i})
				return nil
			}
		}
		keep(invalidFault("repeat/dayInWeek/day", "%q is not one of %s", clip(text), strings.Join(dayNames, ", ")))
	case lAttendee:
		list, name := &req.m.limited, "limitedAccessAttendees"
		if f.full {
			list, name = &req.m.full, "fullAccessAttendees"
		}
		i := len(*list) - 1
		at := name + "/attendee[" + strconv.Itoa(i+1) + "]"
		if fl := parseAttendeeField(&(*list)[i], f.name, text, at); fl != nil {
			keep(fl)
		}
	}
	return nil
}
