package xmlapi

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"unicode/utf16"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"

	"switchboard/internal/testsupport"
)

// stack is a daemon with a front end in front of it, shared by subtests.
func stack(t *testing.T) *frontEnd {
	t.Helper()
	rd := startDaemon(t, testsupport.ShortTempDir(t), nil)
	return startFrontEnd(t, testConfig(t), dialDaemon(t, rd.Socket()))
}

// getMeeting creates with body and returns the Get of the new session.
func createAndGet(t *testing.T, fe *frontEnd, body []byte, hs ...header) *node {
	t.Helper()
	key := createKey(t, post(t, fe, body, hs...))
	get := post(t, fe, envelope(hostSec, typeGet, keyBody(key)))
	mustSucceed(t, get)
	return get.root.find("body/bodyContent")
}

const minimalBody = `<metaData><confName>Tolerant</confName></metaData>`

// TestTolerance sends what real clients send (docs/webex-xml.md §2):
// each variant must create a meeting whose Get shows what was sent.
func TestTolerance(t *testing.T) {
	fe := stack(t)
	latin1 := func(s string) []byte { // UTF-8 → ISO-8859-1 (test strings stay within Latin-1)
		var b []byte
		for _, r := range s {
			b = append(b, byte(r))
		}
		return b
	}
	utf16le := func(s string) []byte {
		b := []byte{0xFF, 0xFE}
		for _, u := range utf16.Encode([]rune(s)) {
			b = append(b, byte(u), byte(u>>8))
		}
		return b
	}
	cases := []struct {
		name string
		body []byte
		hs   []header
		want map[string]string // Get path → text
	}{
		{"seed: java type split over two lines", readFile(t, "seed_request.xml"), nil,
			map[string]string{"metaData/confName": "Sample Teleconference-only meeting"}},
		{"undeclared serv prefix", []byte(`<?xml version="1.0" encoding="UTF-8"?>
<serv:message xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">` + hostSec + `<body><bodyContent xsi:type="` + typeCreate + `">` +
			minimalBody + `</bodyContent></body></serv:message>`), nil, map[string]string{"metaData/confName": "Tolerant"}},
		{"no prefix on the root", []byte(`<?xml version="1.0" encoding="UTF-8"?>
<message xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">` + hostSec + `<body><bodyContent xsi:type="` + typeCreate + `">` +
			`<metaData><confName>Unprefixed</confName></metaData></bodyContent></body></message>`), nil,
			map[string]string{"metaData/confName": "Unprefixed"}},
		{"JAXB fully qualified, QName type", []byte(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<serv:message xmlns:serv="http://www.webex.com/schemas/2002/06/service" xmlns:com="http://www.webex.com/schemas/2002/06/common" xmlns:auo="http://www.webex.com/schemas/2002/06/service/meeting/auo" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<serv:header><serv:securityContext><com:webExID>hostid</com:webExID><com:password>hostpassword</com:password><com:siteID>0000</com:siteID><com:partnerID>9999</com:partnerID></serv:securityContext></serv:header>
<serv:body><serv:bodyContent xsi:type="auo:createTeleconferenceSession">
<auo:accessControl><auo:listing>PRIVATE</auo:listing></auo:accessControl>
<auo:metaData><auo:confName>JAXB</auo:confName><auo:sessionType>16</auo:sessionType></auo:metaData>
<auo:schedule><auo:startDate>12/24/2030 09:30:00</auo:startDate><auo:timeZoneID>21</auo:timeZoneID><auo:duration>45</auo:duration></auo:schedule>
<auo:tracking><com:trackingCode1>T1</com:trackingCode1></auo:tracking>
<auo:fullAccessAttendees><auo:attendee><auo:name>Ann</auo:name><auo:email>ann@x.com</auo:email><auo:phones><com:phone>+1 555 0100</com:phone></auo:phones></auo:attendee></auo:fullAccessAttendees>
</serv:bodyContent></serv:body></serv:message>`), nil, map[string]string{
			"metaData/confName": "JAXB", "accessControl/listing": "PRIVATE", "metaData/sessionType": "16",
			"schedule/startDate": "12/24/2030 09:30:00", "schedule/timeZoneID": "21", "schedule/duration": "45",
			"tracking/trackingCode1": "T1", "fullAccessAttendees/attendee/phones/phone": "+1 555 0100"}},
		{"ops in another case", envelope(hostSec, "auo:CreateTELECONFERENCESession", minimalBody), nil,
			map[string]string{"metaData/confName": "Tolerant"}},
		{"out of schema order, body before header", []byte(`<serv:message xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><body><bodyContent xsi:type="` + typeCreate + `">
<attendeeOptions><emailInvitations>true</emailInvitations></attendeeOptions>
<repeat><interval>2</interval><repeatType>DAILY</repeatType></repeat>
<fullAccessAttendees><attendee><email>b@b.com</email><name>Bee</name></attendee></fullAccessAttendees>
<schedule><entryExitTone>NOTONE</entryExitTone><timeZoneID>4</timeZoneID><startDate>01/02/2031 08:00:00</startDate></schedule>
<metaData><confName>Shuffled</confName></metaData><accessControl><listing>PUBLIC</listing></accessControl>
</bodyContent></body>` + hostSec + `</serv:message>`), nil, map[string]string{
			"metaData/confName": "Shuffled", "repeat/interval": "2", "repeat/repeatType": "DAILY", "schedule/entryExitTone": "NOTONE",
			"fullAccessAttendees/attendee/name": "Bee", "attendeeOptions/emailInvitations": "true"}},
		{"unknown elements ignored", envelope(securityContext("hostid", "hostpassword", "0000")+`<extra><deep><deeper/></deep></extra>`, typeCreate,
			`<accessControl><listStatus>PUBLIC</listStatus><registration>false</registration><listing>PUBLIC</listing></accessControl>
<use:meetingTypes><use:x>1</use:x></use:meetingTypes><metaData><confName>Extra</confName><agenda>ignored</agenda></metaData>
<fullAccessAttendees><attendee><email>c@c.com</email><company>ACME</company></attendee><notAnAttendee/></fullAccessAttendees>`),
			nil, map[string]string{"metaData/confName": "Extra", "accessControl/listing": "PUBLIC", "fullAccessAttendees/attendee/email": "c@c.com"}},
		{"element names in other case", []byte(`<message xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><header><securityContext><WebExId>HOSTID</WebExId><Password>hostpassword</Password><siteId>0</siteId></securityContext></header>
<body><BodyContent xsi:type="` + typeCreate + `"><METADATA><confname>Cased</confname></METADATA></BodyContent></body></message>`), nil,
			map[string]string{"metaData/confName": "Cased"}},
		{"ISO-8859-1 declared", append([]byte(`<?xml version="1.0" encoding="ISO-8859-1"?>`), latin1(string(envelope(hostSec, typeCreate,
			`<metaData><confName>Réunion café ÿ</confName></metaData>`))[len(`<?xml version="1.0" encoding="UTF-8"?>`):])...), nil,
			map[string]string{"metaData/confName": "Réunion café ÿ"}},
		{"windows-1252 declared", append([]byte(`<?xml version="1.0" encoding="windows-1252"?>`), bytes.ReplaceAll(
			envelope(hostSec, typeCreate, `<metaData><confName>Budget EUR</confName></metaData>`)[len(`<?xml version="1.0" encoding="UTF-8"?>`):],
			[]byte("EUR"), []byte{0x80})...), nil, map[string]string{"metaData/confName": "Budget €"}},
		{"Shift_JIS declared, ASCII content", bytes.Replace(envelope(hostSec, typeCreate, `<metaData><confName>SJIS</confName></metaData>`),
			[]byte(`encoding="UTF-8"`), []byte(`encoding="Shift_JIS"`), 1), nil, map[string]string{"metaData/confName": "SJIS"}},
		{"BIG5 declared, ASCII content", bytes.Replace(envelope(hostSec, typeCreate, `<metaData><confName>BIG5</confName></metaData>`),
			[]byte(`encoding="UTF-8"`), []byte(`encoding="BIG5"`), 1), nil, map[string]string{"metaData/confName": "BIG5"}},
		{"Shift_JIS declared, Japanese content", encodeAs(t, japanese.ShiftJIS, "Shift_JIS", `<metaData><confName>会議 テスト</confName></metaData>`), nil,
			map[string]string{"metaData/confName": "会議 テスト"}},
		{"BIG5 declared, Chinese content", encodeAs(t, traditionalchinese.Big5, "BIG5", `<metaData><confName>電話會議</confName></metaData>`), nil,
			map[string]string{"metaData/confName": "電話會議"}},
		{"EUC-KR declared, Korean content", encodeAs(t, korean.EUCKR, "EUC-KR", `<metaData><confName>전화 회의</confName></metaData>`), nil,
			map[string]string{"metaData/confName": "전화 회의"}},
		{"GB2312 declared, Chinese content", encodeAs(t, simplifiedchinese.GBK, "GB2312", `<metaData><confName>电话会议</confName></metaData>`), nil,
			map[string]string{"metaData/confName": "电话会议"}},
		{"utf8 label", bytes.Replace(envelope(hostSec, typeCreate, `<metaData><confName>Ünïcode</confName></metaData>`),
			[]byte(`encoding="UTF-8"`), []byte(`encoding="utf8"`), 1), nil, map[string]string{"metaData/confName": "Ünïcode"}},
		{"UTF-16 with a byte order mark", utf16le(strings.Replace(string(envelope(hostSec, typeCreate, `<metaData><confName>Sixteen ☎</confName></metaData>`)),
			`encoding="UTF-8"`, `encoding="UTF-16"`, 1)), nil, map[string]string{"metaData/confName": "Sixteen ☎"}},
		{"UTF-8 byte order mark, no declaration", append([]byte("\xef\xbb\xbf"), envelope(hostSec, typeCreate, minimalBody)[len(`<?xml version="1.0" encoding="UTF-8"?>`):]...), nil,
			map[string]string{"metaData/confName": "Tolerant"}},
		{"form-urlencoded Content-Type, body not form-decoded", envelope(hostSec, typeCreate, `<metaData><confName>A &amp; B = C+D%20</confName></metaData>`),
			[]header{{"Content-Type", "application/x-www-form-urlencoded"}}, map[string]string{"metaData/confName": "A & B = C+D%20"}},
		{"misspelt form Content-Type", envelope(hostSec, typeCreate, minimalBody), []header{{"Content-Type", "application/x-www-rform-urlencoded"}},
			map[string]string{"metaData/confName": "Tolerant"}},
		{"malformed Content-Type", envelope(hostSec, typeCreate, minimalBody), []header{{"Content-Type", "text/xml charset=UTF-8"}},
			map[string]string{"metaData/confName": "Tolerant"}},
		{"text/plain", envelope(hostSec, typeCreate, minimalBody), []header{{"Content-Type", "text/plain"}},
			map[string]string{"metaData/confName": "Tolerant"}},
		{"no Content-Type", envelope(hostSec, typeCreate, minimalBody), []header{{"Content-Type", ""}},
			map[string]string{"metaData/confName": "Tolerant"}},
		{"booleans TRUE, true, 1, False", envelope(hostSec, typeCreate, minimalBody+`<attendeeOptions><requireUcfDiagnosis>TRUE</requireUcfDiagnosis>
<excludePassword>true</excludePassword><requireAccount>1</requireAccount><emailInvitations>False</emailInvitations></attendeeOptions>
<teleconference><intlLocalCallIn>TRUE</intlLocalCallIn></teleconference>`), nil, map[string]string{
			"attendeeOptions/requireUcfDiagnosis": "true", "attendeeOptions/excludePassword": "true",
			"attendeeOptions/requireAccount": "true", "attendeeOptions/emailInvitations": "false", "teleconference/intlLocalCallIn": "true"}},
		{"enumerations in lower case", envelope(hostSec, typeCreate, minimalBody+`<accessControl><listing>private</listing></accessControl>
<schedule><entryExitTone>beep</entryExitTone></schedule><repeat><repeatType>weekly</repeatType><dayInWeek><day>monday</day></dayInWeek></repeat>`), nil,
			map[string]string{"accessControl/listing": "PRIVATE", "schedule/entryExitTone": "BEEP", "repeat/repeatType": "WEEKLY", "repeat/dayInWeek/day": "MONDAY"}},
		{"no XML declaration", envelope(hostSec, typeCreate, minimalBody)[len(`<?xml version="1.0" encoding="UTF-8"?>`):], nil,
			map[string]string{"metaData/confName": "Tolerant"}},
		{"sign in by email", envelope("<header><securityContext><email>JohnSmith@xyz.com</email><password>hostpassword</password><siteID>0</siteID></securityContext></header>",
			typeCreate, minimalBody), nil, map[string]string{"metaData/confName": "Tolerant"}},
		{"xsi bound to another prefix", []byte(`<serv:message xmlns:x="http://www.w3.org/2001/XMLSchema-instance">` + hostSec +
			`<body><bodyContent x:type="` + typeCreate + `">` + minimalBody + `</bodyContent></body></serv:message>`), nil,
			map[string]string{"metaData/confName": "Tolerant"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := createAndGet(t, fe, tc.body, tc.hs...)
			for path, want := range tc.want {
				if got := b.text(path); got != want {
					t.Errorf("Get %s = %q, want %q", path, got, want)
				}
			}
		})
	}
}

// TestValidation checks every schema constraint: a FAILURE 069900 (or the
// listed id) whose reason names the element.
func TestValidation(t *testing.T) {
	fe := stack(t)
	seed := string(readFile(t, "seed_request.xml"))
	// edit replaces one fragment of the seed.
	edit := func(old, new string) []byte {
		if !strings.Contains(seed, old) {
			t.Fatalf("seed has no %q", old)
		}
		return []byte(strings.Replace(seed, old, new, 1))
	}
	create := func(content string) []byte { return envelope(hostSec, typeCreate, minimalBody+content) }
	long := func(n int, r string) string { return strings.Repeat(r, n) }
	cases := []struct {
		name string
		body []byte
		id   string
		elem string
	}{
		{"listing UNLISTED", edit("<listing>PUBLIC</listing>", "<listing>UNLISTED</listing>"), ExcInvalid, "accessControl/listing"},
		{"entryExitTone", edit("ANNOUNCENAME", "CHIME"), ExcInvalid, "schedule/entryExitTone"},
		{"repeatType", edit("<repeatType>DAILY</repeatType>", "<repeatType>YEARLY</repeatType>"), ExcInvalid, "repeat/repeatType"},
		{"interval 0", edit("<interval>1</interval>", "<interval>0</interval>"), ExcInvalid, "repeat/interval"},
		{"interval not a number", edit("<interval>1</interval>", "<interval>one</interval>"), ExcInvalid, "repeat/interval"},
		{"interval above the wire bound", edit("<interval>1</interval>", "<interval>40000</interval>"), ExcInvalid, "repeat/interval"},
		{"day name", create(`<repeat><repeatType>WEEKLY</repeatType><dayInWeek><day>FUNDAY</day></dayInWeek></repeat>`), ExcInvalid, "repeat/dayInWeek/day"},
		{"dayInMonth 32", create(`<repeat><repeatType>MONTHLY</repeatType><dayInMonth>32</dayInMonth></repeat>`), ExcInvalid, "repeat/dayInMonth"},
		{"weekInMonth 7", create(`<repeat><repeatType>MONTHLY</repeatType><weekInMonth>7</weekInMonth><dayInWeek><day>MONDAY</day></dayInWeek></repeat>`), ExcInvalid, "repeat/weekInMonth"},
		{"WEEKLY without days or start", create(`<repeat><repeatType>WEEKLY</repeatType></repeat>`), ExcInvalid, "repeat/dayInWeek"},
		{"MONTHLY without a day or start", create(`<repeat><repeatType>MONTHLY</repeatType></repeat>`), ExcInvalid, "repeat/dayInMonth"},
		{"MONTHLY weekInMonth with two days", create(`<repeat><repeatType>MONTHLY</repeatType><weekInMonth>2</weekInMonth><dayInWeek><day>MONDAY</day><day>FRIDAY</day></dayInWeek></repeat>`), ExcInvalid, "repeat/dayInWeek"},
		{"expirationDate format", edit("<interval>1</interval>", "<interval>1</interval><expirationDate>2005-12-31</expirationDate>"), ExcInvalid, "repeat/expirationDate"},
		{"expirationDate before start", edit("<interval>1</interval>", "<interval>1</interval><expirationDate>04/17/2005 00:00:00</expirationDate>"), ExcInvalid, "repeat/expirationDate"},
		{"startDate ISO", edit("04/18/2005 15:08:51", "2005-04-18 15:08:51"), ExcInvalid, "schedule/startDate"},
		{"startDate not padded", edit("04/18/2005 15:08:51", "4/18/2005 15:08:51"), ExcInvalid, "schedule/startDate"},
		{"startDate April 31", edit("04/18/2005 15:08:51", "04/31/2005 15:08:51"), ExcInvalid, "schedule/startDate"},
		{"startDate Feb 29 of a common year", edit("04/18/2005 15:08:51", "02/29/2005 15:08:51"), ExcInvalid, "schedule/startDate"},
		{"startDate hour 24", edit("04/18/2005 15:08:51", "04/18/2005 24:00:00"), ExcInvalid, "schedule/startDate"},
		{"startDate without time", edit("04/18/2005 15:08:51", "04/18/2005"), ExcInvalid, "schedule/startDate"},
		{"timeZoneID 62", edit("<timeZoneID>45</timeZoneID>", "<timeZoneID>62</timeZoneID>"), ExcInvalid, "schedule/timeZoneID"},
		{"timeZoneID -1", edit("<timeZoneID>45</timeZoneID>", "<timeZoneID>-1</timeZoneID>"), ExcInvalid, "schedule/timeZoneID"},
		{"timeZoneID text", edit("<timeZoneID>45</timeZoneID>", "<timeZoneID>GMT</timeZoneID>"), ExcInvalid, "schedule/timeZoneID"},
		{"confName 513 characters", edit("Sample Teleconference-only meeting", long(513, "é")), ExcInvalid, "metaData/confName"},
		{"confName missing", edit("<confName>Sample Teleconference-only meeting</confName>", ""), ExcInvalid, "metaData/confName"},
		{"confName empty", edit("<confName>Sample Teleconference-only meeting</confName>", "<confName> </confName>"), ExcInvalid, "metaData/confName"},
		{"trackingCode3 129 characters", edit("<trackingCode3>3</trackingCode3>", "<trackingCode3>"+long(129, "x")+"</trackingCode3>"), ExcInvalid, "tracking/trackingCode3"},
		{"attendee without email", edit("<email>1@1.com</email>", ""), ExcInvalid, "fullAccessAttendees/attendee[1]/email"},
		{"second attendee bad email", edit("</limitedAccessAttendees>", "<attendee><name>3</name><email>not-an-email</email></attendee></limitedAccessAttendees>"), ExcInvalid, "limitedAccessAttendees/attendee[2]/email"},
		{"attendee name too long", edit("<name>1</name>", "<name>"+long(257, "n")+"</name>"), ExcInvalid, "fullAccessAttendees/attendee[1]/name"},
		{"sessionPassword 17 characters", edit("<sessionPassword>123456</sessionPassword>", "<sessionPassword>"+long(17, "p")+"</sessionPassword>"), ExcInvalid, "accessControl/sessionPassword"},
		{"boolean yes", edit("<emailInvitations>true</emailInvitations>", "<emailInvitations>yes</emailInvitations>"), ExcInvalid, "attendeeOptions/emailInvitations"},
		{"negative duration", create(`<schedule><duration>-5</duration></schedule>`), ExcInvalid, "schedule/duration"},
		{"sessionType not AUO", create(`<metaData><sessionType>3</sessionType></metaData>`), ExcInvalid, "metaData/sessionType"},
		{"accountIndex 4", create(`<teleconference><accountIndex>4</accountIndex></teleconference>`), ExcInvalid, "teleconference/accountIndex"},
		{"hostWebExID of another host", create(`<schedule><hostWebExID>otherhost</hostWebExID></schedule>`), ExcAccessDenied, "schedule/hostWebExID"},
		{"Get without sessionKey", envelope(hostSec, typeGet, ""), ExcInvalid, "sessionKey"},
		{"Get with a non-numeric sessionKey", envelope(hostSec, typeGet, keyBody("abc")), ExcInvalid, "sessionKey"},
		{"Set without sessionKey", envelope(hostSec, typeSet, minimalBody), ExcInvalid, "sessionKey"},
		{"Del with a negative sessionKey", envelope(hostSec, typeDel, keyBody("-1")), ExcInvalid, "sessionKey"},
		{"Del with a bad sendEmail", envelope(hostSec, typeDel, keyBody("123456789")+"<sendEmail>maybe</sendEmail>"), ExcInvalid, "sendEmail"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mustFail(t, post(t, fe, tc.body), tc.id, tc.elem)
		})
	}

	// At the bounds: accepted.
	t.Run("bounds accepted", func(t *testing.T) {
		b := createAndGet(t, fe, edit("Sample Teleconference-only meeting", long(512, "é")))
		if got := b.text("metaData/confName"); got != long(512, "é") {
			t.Fatalf("confName of 512 characters: %q", got)
		}
		createKey(t, post(t, fe, edit("<trackingCode3>3</trackingCode3>", "<trackingCode3>"+long(128, "x")+"</trackingCode3>")))
		createKey(t, post(t, fe, edit("<timeZoneID>45</timeZoneID>", "<timeZoneID>61</timeZoneID>")))
		createKey(t, post(t, fe, edit("<timeZoneID>45</timeZoneID>", "<timeZoneID>0</timeZoneID>")))
		createKey(t, post(t, fe, edit("04/18/2005 15:08:51", "02/29/2008 23:59:59")))
	})
	t.Run("derived recurrence days", func(t *testing.T) {
		// 04/18/2005 was a Monday: WEEKLY without days repeats on Mondays,
		// MONTHLY without a day on the 18th.
		b := createAndGet(t, fe, edit("<repeatType>DAILY</repeatType>", "<repeatType>WEEKLY</repeatType>"))
		if got := b.text("repeat/dayInWeek/day"); got != "MONDAY" {
			t.Fatalf("WEEKLY day %q", got)
		}
		b = createAndGet(t, fe, edit("<repeatType>DAILY</repeatType>", "<repeatType>MONTHLY</repeatType>"))
		if got := b.text("repeat/dayInMonth"); got != "18" {
			t.Fatalf("MONTHLY day %q", got)
		}
	})
	t.Run("meeting record too large", func(t *testing.T) {
		var sb strings.Builder
		for i := 0; i < 130; i++ {
			sb.WriteString("<attendee><name>" + long(250, "a") + "</name><email>a@b.c</email></attendee>")
		}
		mustFail(t, post(t, fe, create("<fullAccessAttendees>"+sb.String()+"</fullAccessAttendees>")), ExcTooLarge, "too large")
	})
	t.Run("a Set is validated too", func(t *testing.T) {
		key := createKey(t, post(t, fe, readFile(t, "seed_request.xml")))
		mustFail(t, post(t, fe, envelope(hostSec, typeSet, `<accessControl><listing>UNLISTED</listing></accessControl>`+keyBody(key))),
			ExcInvalid, "accessControl/listing")
		mustFail(t, post(t, fe, envelope(hostSec, typeSet, `<metaData><confName></confName></metaData>`+keyBody(key))),
			ExcInvalid, "metaData/confName")
		// Nothing changed.
		get := post(t, fe, envelope(hostSec, typeGet, keyBody(key)))
		if got := get.root.text("body/bodyContent/accessControl/listing"); got != "PUBLIC" {
			t.Fatalf("listing after refused Sets %q", got)
		}
	})
}

// TestAuthentication checks securityContext against the accounts and that
// hosts only touch their own sessions.
func TestAuthentication(t *testing.T) {
	fe := stack(t)
	sec := func(inner string) string { return "<header><securityContext>" + inner + "</securityContext></header>" }
	for _, tc := range []struct {
		name, sec, reason string
	}{
		{"wrong password", securityContext("hostid", "Wr0ngPassw0rd", "0000"), "Incorrect user or password"},
		{"unknown user", securityContext("nobody", "hostpassword", "0000"), "Incorrect user or password"},
		{"wrong site", securityContext("hostid", "hostpassword", "1234"), "Incorrect user or password"},
		{"site name of an id site", sec("<webExID>hostid</webExID><password>hostpassword</password><siteName>acme</siteName>"), "Incorrect user or password"},
		{"email of another account", sec("<webExID>hostid</webExID><email>other@xyz.com</email><password>hostpassword</password><siteID>0</siteID>"), "Incorrect user or password"},
		{"wrong partnerID", sec("<webExID>hostid</webExID><password>hostpassword</password><siteID>0</siteID><partnerID>1</partnerID>"), "Incorrect user or password"},
		{"no site", sec("<webExID>hostid</webExID><password>hostpassword</password>"), "siteName or siteID"},
		{"no user", sec("<password>hostpassword</password><siteID>0</siteID>"), "webExID or email"},
		{"no password", sec("<webExID>hostid</webExID><siteID>0</siteID>"), "password"},
		{"access token only", sec("<webExID>hostid</webExID><webExAccessToken>abc</webExAccessToken><siteID>0</siteID>"), "Only password and sessionTicket"},
		{"no securityContext", "<header/>", "securityContext is required"},
		{"argon2id account, wrong password", sec("<webExID>argonhost</webExID><password>hostpassword</password><siteName>acme</siteName>"), "Incorrect user or password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustFail(t, post(t, fe, envelope(tc.sec, typeCreate, minimalBody)), ExcAuth, tc.reason)
		})
	}
	t.Run("authentication comes before validation", func(t *testing.T) {
		mustFail(t, post(t, fe, envelope(securityContext("hostid", "nope", "0"), typeCreate, `<accessControl><listing>BAD</listing></accessControl>`)),
			ExcAuth, "Incorrect user or password")
	})
	t.Run("argon2id account by site name", func(t *testing.T) {
		createKey(t, post(t, fe, envelope(sec("<webExID>argonhost</webExID><password>"+argonPassword+"</password><siteName>ACME</siteName>"), typeCreate, minimalBody)))
	})

	t.Run("only the host touches its sessions", func(t *testing.T) {
		key := createKey(t, post(t, fe, readFile(t, "seed_request.xml")))
		other := securityContext("otherhost", otherPassword, "0")
		mustFail(t, post(t, fe, envelope(other, typeGet, keyBody(key))), ExcAccessDenied, "Access denied")
		mustFail(t, post(t, fe, envelope(other, typeSet, minimalBody+keyBody(key))), ExcAccessDenied, "Access denied")
		mustFail(t, post(t, fe, envelope(other, typeDel, keyBody(key))), ExcAccessDenied, "Access denied")
		// Still there, unchanged, for its host.
		get := post(t, fe, envelope(hostSec, typeGet, keyBody(key)))
		mustSucceed(t, get)
		if got := get.root.text("body/bodyContent/metaData/confName"); got != "Sample Teleconference-only meeting" {
			t.Fatalf("confName after another host's Set: %q", got)
		}
		// The other host's own session is its own.
		k2 := createKey(t, post(t, fe, envelope(other, typeCreate, minimalBody)))
		mustSucceed(t, post(t, fe, envelope(other, typeGet, keyBody(k2))))
		mustFail(t, post(t, fe, envelope(hostSec, typeDel, keyBody(k2))), ExcAccessDenied, "Access denied")
	})
}

// TestIdempotencyKey: the same Idempotency-Key gives the same session.
func TestIdempotencyKey(t *testing.T) {
	fe := stack(t)
	seed := readFile(t, "seed_request.xml")
	a := createKey(t, post(t, fe, seed, header{IdempotencyHeader, "retry-1"}))
	b := createKey(t, post(t, fe, seed, header{IdempotencyHeader, "retry-1"}))
	c := createKey(t, post(t, fe, seed, header{IdempotencyHeader, "retry-2"}))
	d := createKey(t, post(t, fe, seed))
	e := createKey(t, post(t, fe, seed))
	if a != b || a == c || d == e || d == a {
		t.Fatalf("keys %s %s %s %s %s", a, b, c, d, e)
	}
	mustFail(t, post(t, fe, seed, header{IdempotencyHeader, strings.Repeat("k", 129)}), ExcForward, IdempotencyHeader)
}

// TestMalformed: documents that cannot be routed get a FAILURE 000000 (HTTP
// 200), never a 500 or a stack trace.
func TestMalformed(t *testing.T) {
	fe := startFrontEnd(t, testConfig(t), newFakeBackend())
	deep := strings.Repeat("<a>", 40) + strings.Repeat("</a>", 40)
	for _, tc := range []struct {
		name, body, reason string
	}{
		{"not XML", "hello", "text outside the message element"},
		{"not XML either", "<<>>", "malformed XML"},
		{"empty", "", "empty request"},
		{"blank", " \n\t", "empty request"},
		{"truncated", string(readFile(t, "seed_request.xml")[:1000]), "malformed XML"},
		{"mismatched tags", `<message><header></body></message>`, "malformed XML"},
		{"deep nesting", string(envelope(hostSec, typeCreate, minimalBody+deep)), "nested deeper than 32"},
		{"unsupported encoding", `<?xml version="1.0" encoding="KOI8-R"?><message/>`, "KOI8-R"},
		{"undefined bytes under Shift_JIS", "<?xml version=\"1.0\" encoding=\"Shift_JIS\"?><message><body><bodyContent>\x85\x40</bodyContent></body></message>", "not defined in this encoding"},
		{"invalid UTF-8", "<message><body><bodyContent>\xff\xfe\xfd</bodyContent></body></message>", "malformed XML"},
		{"undefined entity", `<!DOCTYPE m [<!ENTITY a "aaaa">]><message><body><bodyContent xmlns:xsi="` + nsXSI + `" xsi:type="` + typeCreate + `">&a;&a;</bodyContent></body></message>`, "malformed XML"},
		{"no bodyContent", `<message xmlns:xsi="` + nsXSI + `">` + hostSec + `<body/></message>`, "no bodyContent"},
		{"no xsi:type", `<message>` + hostSec + `<body><bodyContent/></body></message>`, "no xsi:type"},
		{"Meeting Center operation", string(envelope(hostSec, "java:com.webex.service.binding.meeting.CreateMeeting", minimalBody)), `unsupported operation "CreateMeeting"`},
		{"GetUser", string(envelope(hostSec, "java:com.webex.service.binding.user.GetUser", "<webExId>hostid</webExId>")), `unsupported operation "GetUser"`},
		{"two bodyContent", `<message xmlns:xsi="` + nsXSI + `"><body><bodyContent xsi:type="` + typeGet + `"/><bodyContent xsi:type="` + typeGet + `"/></body></message>`, "more than one bodyContent"},
		{"wrong root", `<envelope><body/></envelope>`, `root element is "envelope"`},
		{"second root", `<message/><message/>`, "more than one root"},
		{"text after the root", `<message/>junk`, "text outside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustFail(t, post(t, fe, []byte(tc.body)), ExcForward, tc.reason)
		})
	}
	t.Run("body over the cap", func(t *testing.T) {
		body := append(envelope(hostSec, typeCreate, minimalBody), bytes.Repeat([]byte(" "), 200<<10)...)
		r := post(t, fe, body)
		mustFail(t, r, ExcForward, "larger than 131072 bytes")
	})
	t.Run("GET", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, fe.url, nil)
		r := do(t, fe, req)
		if r.status != http.StatusMethodNotAllowed || r.exception() != ExcForward || r.header.Get("Allow") != "POST" {
			t.Fatalf("GET: HTTP %d %s\n%s", r.status, r.exception(), r.raw)
		}
	})
	t.Run("other path", func(t *testing.T) {
		resp, err := fe.http.Post(strings.TrimSuffix(fe.url, Path)+"/other", "text/xml", strings.NewReader("<message/>"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("other path: HTTP %d", resp.StatusCode)
		}
	})
}

// encodeAs renders a Create envelope around body in enc, declared as label.
func encodeAs(t *testing.T, enc encoding.Encoding, label, body string) []byte {
	t.Helper()
	doc := strings.Replace(string(envelope(hostSec, typeCreate, body)), `encoding="UTF-8"`, `encoding="`+label+`"`, 1)
	out, err := enc.NewEncoder().Bytes([]byte(doc))
	if err != nil {
		t.Fatalf("encoding the test document as %s: %v", label, err)
	}
	return out
}
