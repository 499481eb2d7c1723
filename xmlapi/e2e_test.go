package xmlapi

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"switchboard/daemon"
	"switchboard/internal/testsupport"
	"switchboard/telsim"
	"switchboard/wire"
)

var update = flag.Bool("update", false, "rewrite golden files")

var (
	regexpFailure = regexp.MustCompile(`^<\?xml version="1.0" encoding="UTF-8"\?><serv:message xmlns:serv="http://www.webex.com/schemas/2002/06/service" xmlns:com="http://www.webex.com/schemas/2002/06/common"( xmlns:(auo|ep|use)="[^"]+"| xmlns:meet="[^"]+" xmlns:att="[^"]+")?><serv:header><serv:response><serv:result>FAILURE</serv:result><serv:reason>[^<]+</serv:reason><serv:gsbStatus>PRIMARY</serv:gsbStatus><serv:exceptionID>\d{6}</serv:exceptionID></serv:response></serv:header><serv:body><serv:bodyContent/></serv:body></serv:message>$`)
	regexpKey     = regexp.MustCompile(`<auo:sessionKey>(\d+)</auo:sessionKey>`)
)

// shape reduces a document to its structure: elements and attributes with
// their prefixes as written, and non-blank text, with the session key
// masked. Two responses of the same shape have equal shapes.
func shape(t testing.TB, doc []byte) []string {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	var out []string
	name := func(n xml.Name) string {
		if n.Space == "" {
			return n.Local
		}
		return n.Space + ":" + n.Local
	}
	var cur string
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("shape: %v", err)
		}
		switch tk := tok.(type) {
		case xml.ProcInst:
			out = append(out, "<?"+tk.Target+" "+string(tk.Inst)+"?>")
		case xml.StartElement:
			cur = name(tk.Name)
			var attrs []string
			for _, a := range tk.Attr {
				attrs = append(attrs, name(a.Name)+"="+a.Value)
			}
			slices.Sort(attrs)
			out = append(out, "<"+cur+" "+strings.Join(attrs, " ")+">")
		case xml.EndElement:
			out = append(out, "</"+name(tk.Name)+">")
		case xml.CharData:
			s := strings.TrimSpace(string(tk))
			if s == "" {
				continue
			}
			if cur == "auo:sessionKey" {
				s = "KEY"
			}
			out = append(out, s)
		}
	}
}

// TestSeedRequestEndToEnd posts the seed's sample request, byte for byte,
// through HTTP, the front end, the client and the real daemon socket, and
// checks that the answer has exactly the seed's response shape.
func TestSeedRequestEndToEnd(t *testing.T) {
	rd := startDaemon(t, testsupport.ShortTempDir(t), nil)
	cfg, err := DefaultConfig() // the embedded default holds the seed's account
	if err != nil {
		t.Fatal(err)
	}
	fe := startFrontEnd(t, cfg, dialDaemon(t, rd.Socket()))

	seed := readFile(t, "seed_request.xml")
	r := post(t, fe, seed, header{"Content-Type", "application/xml"})
	mustSucceed(t, r)
	m := regexpKey.FindStringSubmatch(r.raw)
	if m == nil {
		t.Fatalf("no numeric auo:sessionKey:\n%s", r.raw)
	}
	key, _ := strconv.ParseUint(m[1], 10, 64)
	if key < 100_000_000 || key > 999_999_999 {
		t.Fatalf("session key %d is not the daemon's 9 digits", key)
	}

	// Same shape as the seed's sample response.
	want := shape(t, readFile(t, "seed_response.xml"))
	if got := shape(t, []byte(r.raw)); !slices.Equal(got, want) {
		t.Fatalf("response shape differs from the seed's:\n got %q\nwant %q", got, want)
	}
	// Byte for byte as the golden file, key masked.
	masked := regexpKey.ReplaceAllString(r.raw, "<auo:sessionKey>KEY</auo:sessionKey>")
	golden := filepath.Join("testdata", "create_response.golden")
	if *update {
		os.WriteFile(golden, []byte(masked), 0o644)
	}
	if g := string(readFile(t, "create_response.golden")); masked != g {
		t.Fatalf("response differs from %s:\n got %s\nwant %s", golden, masked, g)
	}
	for k, v := range map[string]string{
		"Content-Type": "text/xml;charset=UTF-8", "Cache-Control": "no-cache", "Pragma": "no-cache",
		"Expires": "Thu, 01 Jan 1970 00:00:00 GMT", TierHeader: "primary-large",
	} {
		if got := r.header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}

	// The daemon holds what the seed asked for.
	res, err := dialDaemon(t, rd.Socket()).Lookup(ctxT(t), key)
	if err != nil {
		t.Fatal(err)
	}
	// 04/18/2005 15:08:51 at timeZoneID 45 (GMT+08:00) is 07:08:51 UTC.
	wantStart := time.Date(2005, 4, 18, 7, 8, 51, 0, time.UTC).Unix()
	s := res.Spec
	if s.Name != "Sample Teleconference-only meeting" || s.Start != wantStart || s.TimeZone != 45 || s.Duration != 60 ||
		s.Tone != wire.ToneAnnounceName || s.Repeat.Kind != wire.RepeatDaily || s.Repeat.Interval != 1 ||
		s.FullAttendees != 1 || s.LimitedAttendees != 1 {
		t.Fatalf("daemon spec %+v", s)
	}
	if res.Tier != "primary-large" || res.Bridge.Toll == "" || res.Bridge.HostCode == "" {
		t.Fatalf("reservation %+v", res)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func createKey(t testing.TB, r *response) string {
	t.Helper()
	mustSucceed(t, r)
	k := r.root.text("body/bodyContent/sessionKey")
	if _, err := strconv.ParseUint(k, 10, 64); err != nil {
		t.Fatalf("session key %q\n%s", k, r.raw)
	}
	return k
}

// TestLifecycle runs Create → Get → Set → Get → DelSession → Get through the
// real daemon.
func TestLifecycle(t *testing.T) {
	rd := startDaemon(t, testsupport.ShortTempDir(t), nil)
	c := dialDaemon(t, rd.Socket())
	fe := startFrontEnd(t, testConfig(t), c)

	key := createKey(t, post(t, fe, readFile(t, "seed_request.xml")))
	k, _ := strconv.ParseUint(key, 10, 64)
	res, err := c.Lookup(ctxT(t), k)
	if err != nil {
		t.Fatal(err)
	}

	get := post(t, fe, envelope(hostSec, typeGet, keyBody(key)))
	mustSucceed(t, get)
	if got := get.root.find("body/bodyContent"); got == nil || attr(got, "type") != "auo:getTeleconferenceSessionResponse" {
		t.Fatalf("Get bodyContent type:\n%s", get.raw)
	}
	if tier := get.header.Get(TierHeader); tier != "primary-large" {
		t.Fatalf("Get tier header %q", tier)
	}
	b := get.root.find("body/bodyContent")
	for path, want := range map[string]string{
		"accessControl/listing":                       "PUBLIC",
		"accessControl/sessionPassword":               "123456",
		"metaData/confName":                           "Sample Teleconference-only meeting",
		"schedule/startDate":                          "04/18/2005 15:08:51",
		"schedule/timeZoneID":                         "45",
		"schedule/duration":                           "60",
		"schedule/entryExitTone":                      "ANNOUNCENAME",
		"teleconference/personalConferenceNumber":     "false",
		"teleconference/tollCallInNumber":             res.Bridge.Toll,
		"teleconference/tollFreeCallInNumber":         res.Bridge.TollFree,
		"teleconference/subscriberAccessCode":         res.Bridge.HostCode,
		"teleconference/participantFullAccessCode":    res.Bridge.AttendeeCode,
		"teleconference/participantLimitedAccessCode": res.Bridge.AttendeeCode,
		"teleconference/scheduleConfID":               confID(res.Bridge.ID, key),
		"teleconference/extTelephonyDescription":      "xml",
		"tracking/trackingCode1":                      "1",
		"tracking/trackingCode10":                     "10",
		"repeat/repeatType":                           "DAILY",
		"repeat/interval":                             "1",
		"fullAccessAttendees/attendee/name":           "1",
		"fullAccessAttendees/attendee/email":          "1@1.com",
		"limitedAccessAttendees/attendee/email":       "2@2.com",
		"attendeeOptions/emailInvitations":            "true",
		"attendeeOptions/requireAccount":              "false",
	} {
		if got := b.text(path); got != want {
			t.Errorf("Get %s = %q, want %q", path, got, want)
		}
	}
	// Tracking codes are com:, the rest auo: (decision: docs/webex-xml.md §9.8).
	if !strings.Contains(get.raw, "<auo:tracking><com:trackingCode1>1</com:trackingCode1>") {
		t.Errorf("tracking prefixes:\n%s", get.raw)
	}

	set := post(t, fe, envelope(hostSec, typeSet, `<accessControl><listing>PRIVATE</listing></accessControl>
		<metaData><confName>Test Setting Teleconf-only</confName></metaData>
		<schedule><startDate>04/18/2005 15:15:17</startDate><timeZoneID>16</timeZoneID><entryExitTone>BEEP</entryExitTone></schedule>
		<repeat><repeatType>WEEKLY</repeatType><dayInWeek><day>TUESDAY</day><day>SATURDAY</day></dayInWeek></repeat>
		<limitedAccessAttendees/>`+keyBody(key)))
	mustSucceed(t, set)
	if !strings.Contains(set.raw, `<serv:bodyContent xsi:type="auo:setTeleconferenceSessionResponse" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/>`) {
		t.Fatalf("Set response body:\n%s", set.raw)
	}

	get = post(t, fe, envelope(hostSec, typeGet, keyBody(key)))
	mustSucceed(t, get)
	b = get.root.find("body/bodyContent")
	for path, want := range map[string]string{
		"accessControl/listing":             "PRIVATE",
		"accessControl/sessionPassword":     "123456", // untouched by the Set
		"metaData/confName":                 "Test Setting Teleconf-only",
		"schedule/startDate":                "04/18/2005 15:15:17",
		"schedule/timeZoneID":               "16",
		"schedule/entryExitTone":            "BEEP",
		"repeat/repeatType":                 "WEEKLY",
		"repeat/interval":                   "1",
		"fullAccessAttendees/attendee/name": "1",
		"limitedAccessAttendees":            "<missing>",
		"teleconference/tollCallInNumber":   res.Bridge.Toll,
	} {
		if got := b.text(path); got != want {
			t.Errorf("Get after Set %s = %q, want %q", path, got, want)
		}
	}
	if !strings.Contains(get.raw, "<auo:dayInWeek><auo:day>TUESDAY</auo:day><auo:day>SATURDAY</auo:day></auo:dayInWeek>") {
		t.Errorf("days after Set:\n%s", get.raw)
	}
	res2, err := c.Lookup(ctxT(t), k)
	if err != nil {
		t.Fatal(err)
	}
	// 15:15:17 at GMT-03:00 is 18:15:17 UTC; Tuesday and Saturday are bits 2 and 6.
	if s := res2.Spec; s.Name != "Test Setting Teleconf-only" || s.Start != time.Date(2005, 4, 18, 18, 15, 17, 0, time.UTC).Unix() ||
		s.TimeZone != 16 || s.Tone != wire.ToneBeep || s.Repeat.Kind != wire.RepeatWeekly || s.Repeat.Days != 0x44 ||
		s.LimitedAttendees != 0 || s.FullAttendees != 1 || res2.Bridge != res.Bridge {
		t.Fatalf("daemon after Set: %+v", res2)
	}

	del := post(t, fe, envelope(hostSec, typeDel, keyBody(key)))
	mustSucceed(t, del)
	if !strings.Contains(del.raw, `xmlns:ep="http://www.webex.com/schemas/2002/06/service/ep"`) ||
		!strings.Contains(del.raw, `<serv:bodyContent xsi:type="ep:delSessionResponse" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/>`) {
		t.Fatalf("DelSession response:\n%s", del.raw)
	}
	mustFail(t, post(t, fe, envelope(hostSec, typeGet, keyBody(key))), ExcNotFound, "Corresponding Meeting not found")
	mustFail(t, post(t, fe, envelope(hostSec, typeDel, keyBody(key))), ExcNotFound, "not found")
	mustFail(t, post(t, fe, envelope(hostSec, typeSet, keyBody(key))), ExcNotFound, "not found")
	if _, err := c.Lookup(ctxT(t), k); !errors.Is(err, wire.StatusNotFound) {
		t.Fatalf("daemon still holds the session: %v", err)
	}
}

// confID is the scheduleConfID Get gives: the bridge id when numeric, else
// the session key.
func confID(bridgeID, key string) string {
	if isDigits(bridgeID) {
		return bridgeID
	}
	return key
}

func attr(n *node, local string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// TestFailoverVisibleOnlyInHeader: with the primary tier down, Create still
// succeeds, the XML is byte-identical (key aside) and only the tier header
// tells.
func TestFailoverVisibleOnlyInHeader(t *testing.T) {
	rd := startDaemon(t, testsupport.ShortTempDir(t), nil)
	fe := startFrontEnd(t, testConfig(t), dialDaemon(t, rd.Socket()))
	seed := readFile(t, "seed_request.xml")

	before := post(t, fe, seed)
	mustSucceed(t, before)
	if tier := before.header.Get(TierHeader); tier != "primary-large" {
		t.Fatalf("tier before %q", tier)
	}
	if err := rd.Sims.Simulator("primary-large").SetFault(telsim.Fault{Mode: telsim.ModeDown}); err != nil {
		t.Fatal(err)
	}
	after := post(t, fe, seed)
	mustSucceed(t, after)
	if tier := after.header.Get(TierHeader); tier != "nextgen" {
		t.Fatalf("tier after primary went down %q, want nextgen", tier)
	}
	mask := func(s string) string { return regexpKey.ReplaceAllString(s, "KEY") }
	if mask(before.raw) != mask(after.raw) {
		t.Fatalf("failover shows in the XML:\nbefore %s\nafter  %s", before.raw, after.raw)
	}
	if strings.Contains(after.raw, "nextgen") || strings.Contains(after.raw, "BACKUP") {
		t.Fatalf("failover leaks into the XML: %s", after.raw)
	}
	// Get of the failed-over session names its tier in the header too.
	get := post(t, fe, envelope(hostSec, typeGet, keyBody(after.root.text("body/bodyContent/sessionKey"))))
	mustSucceed(t, get)
	if tier := get.header.Get(TierHeader); tier != "nextgen" {
		t.Fatalf("Get tier %q", tier)
	}
}

// TestGetAfterRestarts: the meeting lives in the daemon's meta, so a new
// front end reads it, and so does a restarted daemon (LOOKUP falls back to
// the telephony servers, which run outside it here).
func TestGetAfterRestarts(t *testing.T) {
	var addrs []string
	for _, tier := range []string{"primary-large", "nextgen", "backup2-large"} {
		s, err := telsim.New(telsim.Config{Tier: tier})
		if err != nil {
			t.Fatal(err)
		}
		a, err := s.Start("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		addrs = append(addrs, "tcp://"+a.String())
	}
	dir := testsupport.ShortTempDir(t)
	tcpTiers := func(c *daemon.Config) {
		c.Simulators = nil
		for i := range c.Tiers {
			c.Tiers[i].Servers = []string{addrs[i]}
		}
	}
	rd := startDaemon(t, dir, tcpTiers)
	cfg := testConfig(t)
	c := dialDaemon(t, rd.Socket())
	fe1 := startFrontEnd(t, cfg, c)
	key := createKey(t, post(t, fe1, readFile(t, "seed_request.xml")))
	fe1.stop()

	// A new front end (a restart: no state carried over).
	fe2 := startFrontEnd(t, cfg, c)
	get := post(t, fe2, envelope(hostSec, typeGet, keyBody(key)))
	mustSucceed(t, get)
	if got := get.root.text("body/bodyContent/metaData/confName"); got != "Sample Teleconference-only meeting" {
		t.Fatalf("confName after a front-end restart %q", got)
	}

	// Restart the daemon on the same directory and socket; the client
	// redials on the next call.
	rd.Stop()
	startDaemon(t, dir, tcpTiers)
	var r *response
	for i := 0; i < 3; i++ { // the first call may find the old connection dead
		r = post(t, fe2, envelope(hostSec, typeGet, keyBody(key)))
		if r.result() == "SUCCESS" {
			break
		}
	}
	mustSucceed(t, r)
	b := r.root.find("body/bodyContent")
	if b.text("metaData/confName") != "Sample Teleconference-only meeting" || b.text("fullAccessAttendees/attendee/email") != "1@1.com" ||
		b.text("teleconference/tollCallInNumber") == "" {
		t.Fatalf("Get after a daemon restart:\n%s", r.raw)
	}
}

// TestBackendNotResponding: with the daemon gone, requests get 000035, not
// a hang or a 500.
func TestBackendNotResponding(t *testing.T) {
	rd := startDaemon(t, testsupport.ShortTempDir(t), nil)
	fe := startFrontEnd(t, testConfig(t), dialDaemon(t, rd.Socket()))
	key := createKey(t, post(t, fe, readFile(t, "seed_request.xml")))
	rd.Stop()
	for _, body := range [][]byte{readFile(t, "seed_request.xml"), envelope(hostSec, typeGet, keyBody(key))} {
		r := post(t, fe, body)
		mustFail(t, r, ExcNotResponding, "not responding")
		if !strings.Contains(r.raw, `xmlns:auo=`) {
			t.Fatalf("AUO FAILURE without auo bound: %s", r.raw)
		}
	}
}

// TestConcurrentCreates runs creates in parallel through the whole stack:
// distinct keys, no error.
func TestConcurrentCreates(t *testing.T) {
	rd := startDaemon(t, testsupport.ShortTempDir(t), nil)
	fe := startFrontEnd(t, testConfig(t), dialDaemon(t, rd.Socket()))
	seed := readFile(t, "seed_request.xml")
	const n = 64
	keys := make(chan string, n)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			resp, err := fe.http.Post(fe.url, "text/xml", bytes.NewReader(seed))
			if err != nil {
				errs <- err
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			m := regexpKey.FindStringSubmatch(string(b))
			if resp.StatusCode != http.StatusOK || m == nil {
				errs <- fmt.Errorf("HTTP %d %s", resp.StatusCode, b)
				return
			}
			keys <- m[1]
		}()
	}
	seen := map[string]bool{}
	for i := 0; i < n; i++ {
		select {
		case err := <-errs:
			t.Fatal(err)
		case k := <-keys:
			if seen[k] {
				t.Fatalf("key %s twice", k)
			}
			seen[k] = true
		}
	}
}
