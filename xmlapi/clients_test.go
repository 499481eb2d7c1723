package xmlapi

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"switchboard/internal/clock/clocktest"
)

// The requests of this file are shaped as the public SDKs send them
// (docs/webex-xml.md §3.1–3.3): Cisco DevNet's Python sample flow
// (AuthenticateUser with siteName/webExID/password and an empty body, then
// sessionTicket in place of the password; DelMeeting with meetingKey under
// an ISO-8859-1 declaration).

const (
	typeDelMeeting = "java:com.webex.service.binding.meeting.DelMeeting"
	typeAPIVersion = "java:com.webex.service.binding.ep.GetAPIVersion"
	typeAuthUser   = "java:com.webex.service.binding.user.AuthenticateUser"
)

// devnetEnvelope is a request as the DevNet sample writes it.
func devnetEnvelope(sec, xsiType, content string) []byte {
	return []byte(`<?xml version="1.0" encoding="ISO-8859-1"?>
        <serv:message
            xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
            xmlns:serv="http://www.webex.com/schemas/2002/06/service">
            ` + sec + `
            <body>
            <bodyContent xsi:type="` + xsiType + `">
                ` + content + `
            </bodyContent>
            </body>
        </serv:message>`)
}

func ticketSec(webExID, ticket, site string) string {
	return "<header><securityContext><siteID>" + site + "</siteID><webExID>" + webExID + "</webExID><sessionTicket>" + ticket +
		"</sessionTicket></securityContext></header>"
}

// bodyType is the xsi:type of the response's bodyContent.
func bodyType(r *response) string {
	bc := r.root.find("body/bodyContent")
	if bc == nil {
		return "<missing>"
	}
	for _, a := range bc.Attrs {
		if a.Name.Local == "type" {
			return a.Value
		}
	}
	return ""
}

func TestDelMeeting(t *testing.T) {
	fe := startFrontEnd(t, testConfig(t), newFakeBackend())
	key := createKey(t, post(t, fe, readFile(t, "seed_request.xml")))
	meetingKey := "<meetingKey>" + key + "</meetingKey>"

	other := securityContext("otherhost", otherPassword, "0")
	mustFail(t, post(t, fe, devnetEnvelope(other, typeDelMeeting, meetingKey)), ExcAccessDenied, "Access denied")

	r := post(t, fe, devnetEnvelope(hostSec, typeDelMeeting, meetingKey))
	mustSucceed(t, r)
	if bt := bodyType(r); bt != "meet:delMeetingResponse" || !strings.Contains(r.raw, `xmlns:meet="`+nsMeet+`"`) {
		t.Fatalf("DelMeeting response type %q:\n%s", bt, r.raw)
	}
	mustFail(t, post(t, fe, envelope(hostSec, typeGet, keyBody(key))), ExcNotFound, "not found")
	// A second delete: 060001, which the clients that delete count as done.
	mustFail(t, post(t, fe, devnetEnvelope(hostSec, typeDelMeeting, meetingKey)), ExcNotFound, "not found")
	mustFail(t, post(t, fe, devnetEnvelope(hostSec, typeDelMeeting, "")), ExcInvalid, "meetingKey")
	mustFail(t, post(t, fe, devnetEnvelope(hostSec, typeDelMeeting, "<meetingKey>x1</meetingKey>")), ExcInvalid, "meetingKey")
	// DelSession still works.
	k2 := createKey(t, post(t, fe, envelope(hostSec, typeCreate, minimalBody)))
	mustSucceed(t, post(t, fe, envelope(hostSec, typeDel, keyBody(k2))))
}

// pingBackend is a fakeBackend that answers PING with err.
type pingBackend struct {
	*fakeBackend
	err   error
	pings int
}

func (b *pingBackend) Ping(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pings++
	return b.err
}

// TestGetAPIVersion: answered without sign-in (a load balancer's health
// check), credentials sent along are not checked, and it fails with 000035
// while the daemon does not answer.
func TestGetAPIVersion(t *testing.T) {
	be := &pingBackend{fakeBackend: newFakeBackend()}
	fe := startFrontEnd(t, testConfig(t), be)
	for name, sec := range map[string]string{
		"no securityContext": "",
		"wrong password":     securityContext("hostid", "Wr0ngPassw0rd", "0000"),
	} {
		r := post(t, fe, envelope(sec, typeAPIVersion, ""))
		mustSucceed(t, r)
		if v := r.root.text("body/bodyContent/apiVersion"); v != APIVersion || bodyType(r) != "ep:getAPIVersionResponse" ||
			r.root.text("body/bodyContent/release") != APIRelease {
			t.Fatalf("%s: apiVersion %q type %q:\n%s", name, v, bodyType(r), r.raw)
		}
	}
	if n := fe.h.auth.slowChecks.Load(); n != 0 {
		t.Fatalf("%d password checks for GetAPIVersion", n)
	}
	be.mu.Lock()
	be.err = errNotResponding
	be.mu.Unlock()
	mustFail(t, post(t, fe, envelope("", typeAPIVersion, "")), ExcNotResponding, "not responding")
	if err := fe.h.Health(context.Background()); err == nil {
		t.Fatal("Health: nil while the daemon does not answer")
	}
	if be.pings != 2+1+1 {
		t.Fatalf("%d pings, want one per GetAPIVersion and Health", be.pings)
	}
}

// ticketFrontEnd is a front end on a manual clock whose tickets are signed
// with secretFile ("" for a random secret), logging to core.
func ticketFrontEnd(t *testing.T, be Backend, clk *clocktest.Clock, secretFile string, core zapcore.Core) *frontEnd {
	cfg := testConfig(t)
	cfg.Auth.TicketSecretFile = secretFile
	return startFrontEnd(t, cfg, be, WithClock(clk.Now), WithLogger(zap.New(core)))
}

// authenticate posts AuthenticateUser for hostid and returns the ticket.
func authenticate(t *testing.T, fe *frontEnd, clk *clocktest.Clock) string {
	t.Helper()
	sec := "<header><securityContext><siteID>0000</siteID><webExID>hostid</webExID><password>hostpassword</password></securityContext></header>"
	r := post(t, fe, devnetEnvelope(sec, typeAuthUser, ""))
	mustSucceed(t, r)
	ticket := r.root.text("body/bodyContent/sessionTicket")
	if bodyType(r) != "use:authenticateUserResponse" || ticket == "" || ticket == "<missing>" ||
		r.root.text("body/bodyContent/timeToLive") != "5400" ||
		r.root.text("body/bodyContent/createTime") != strconv.FormatInt(clk.Now().UnixMilli(), 10) {
		t.Fatalf("AuthenticateUser:\n%s", r.raw)
	}
	return ticket
}

func TestSessionTicket(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	clk := clocktest.New(time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC))
	be := newFakeBackend()
	dir := t.TempDir()
	secret := filepath.Join(dir, "ticket.secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("5a", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fe := ticketFrontEnd(t, be, clk, secret, core)
	ticket := authenticate(t, fe, clk)
	sec := ticketSec("hostid", ticket, "0000")

	// The ticket replaces the password on every operation.
	key := createKey(t, post(t, fe, devnetEnvelope(sec, typeCreate, minimalBody)))
	mustSucceed(t, post(t, fe, devnetEnvelope(sec, typeGet, keyBody(key))))
	mustSucceed(t, post(t, fe, devnetEnvelope(sec, typeSet, minimalBody+keyBody(key))))
	// By email instead of webExID, as securityContext allows.
	byEmail := "<header><securityContext><siteID>0</siteID><email>JohnSmith@xyz.com</email><sessionTicket>" + ticket + "</sessionTicket></securityContext></header>"
	mustSucceed(t, post(t, fe, envelope(byEmail, typeGet, keyBody(key))))

	// Another front end with the same secret file takes it; one with
	// another secret does not.
	twin := ticketFrontEnd(t, be, clk, secret, core)
	mustSucceed(t, post(t, twin, envelope(sec, typeGet, keyBody(key))))
	stranger := ticketFrontEnd(t, be, clk, "", core)
	mustFail(t, post(t, stranger, envelope(sec, typeGet, keyBody(key))), ExcTicket, "Not a valid session ticket")

	// Tampering: any changed character, a truncation, junk.
	for i := range ticket {
		c := byte('A')
		if ticket[i] == 'A' {
			c = 'B'
		}
		bad := ticket[:i] + string(c) + ticket[i+1:]
		if r := post(t, fe, envelope(ticketSec("hostid", bad, "0000"), typeGet, keyBody(key))); r.exception() != ExcTicket {
			t.Fatalf("ticket changed at %d: %s %s", i, r.result(), r.exception())
		}
	}
	for _, bad := range []string{ticket[:len(ticket)-1], ticket + "A", "abc", strings.Repeat("A", 4000)} {
		mustFail(t, post(t, fe, envelope(ticketSec("hostid", bad, "0000"), typeGet, keyBody(key))), ExcTicket, "Not a valid session ticket")
	}
	// Wrong account, wrong site: the ticket is hostid's on site 0000 only.
	mustFail(t, post(t, fe, envelope(ticketSec("otherhost", ticket, "0"), typeGet, keyBody(key))), ExcTicket, "Not a valid")
	mustFail(t, post(t, fe, envelope(ticketSec("hostid", ticket, "1"), typeGet, keyBody(key))), ExcTicket, "Not a valid")
	mustFail(t, post(t, fe, envelope(ticketSec("nobody", ticket, "0"), typeGet, keyBody(key))), ExcTicket, "Not a valid")
	// A ticket does not mint another.
	mustFail(t, post(t, fe, envelope(sec, typeAuthUser, "")), ExcAuth, "AuthenticateUser needs a password")
	// A wrong password is still refused, ticket or not.
	mustFail(t, post(t, fe, envelope(securityContext("hostid", "Wr0ngPassw0rd", "0000"), typeAuthUser, "")), ExcAuth, "Incorrect")

	// Expiry: valid for 5,400 s after AuthenticateUser, not one second more.
	clk.Advance(TicketTTL - time.Second)
	mustSucceed(t, post(t, fe, envelope(sec, typeGet, keyBody(key))))
	clk.Advance(time.Second)
	mustFail(t, post(t, fe, envelope(sec, typeGet, keyBody(key))), ExcTicket, "Not a valid session ticket")
	// A new sign-in gives a new ticket that works.
	fresh := authenticate(t, fe, clk)
	mustSucceed(t, post(t, fe, envelope(ticketSec("hostid", fresh, "0000"), typeDel, keyBody(key))))

	// No log line carries a ticket.
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	if logs.Len() < 20 {
		t.Fatalf("%d log entries, want one per request", logs.Len())
	}
	for _, e := range logs.AllUntimed() {
		buf, err := enc.EncodeEntry(e.Entry, e.Context)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{ticket, fresh, ticket[:24], fresh[:24], "hostpassword"} {
			if strings.Contains(buf.String(), s) {
				t.Fatalf("log line carries a ticket or password: %s", buf.String())
			}
		}
	}
	if logs.FilterField(zap.String("op", "AuthenticateUser")).Len() < 3 {
		t.Error("AuthenticateUser requests not logged by name")
	}
}

// TestTicketSecretFile: the secret file must be private, long enough and
// hex; its content never appears in the error.
func TestTicketSecretFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, path, want string
	}{
		{"readable by others", write("open", good, 0o644), "chmod 600"},
		{"short", write("short", "0123456789abcdef", 0o600), "at least 64 hex digits"},
		{"not hex", write("nothex", strings.Repeat("zz-secret-", 8), 0o600), "at least 64 hex digits"},
		{"missing", filepath.Join(dir, "none"), "no such file"},
	} {
		cfg := testConfig(t)
		cfg.Auth.TicketSecretFile = tc.path
		_, err := NewHandler(cfg, newFakeBackend())
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "auth.ticket_secret_file") ||
			strings.Contains(err.Error(), "zz-secret") {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	cfg := testConfig(t)
	cfg.Auth.TicketSecretFile = write("good", good+"\n", 0o600)
	if _, err := NewHandler(cfg, newFakeBackend()); err != nil {
		t.Fatal(err)
	}
}

// TestEveryOperationLogged: each request's log line names the operation
// it asked for, the unsupported ones (answered FAILURE 000000 in the WebEx
// shape) included.
func TestEveryOperationLogged(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	fe := startFrontEnd(t, testConfig(t), newFakeBackend(), WithLogger(zap.New(core)))
	mustSucceed(t, post(t, fe, envelope("", typeAPIVersion, "")))
	mustFail(t, post(t, fe, devnetEnvelope(hostSec, "java:com.webex.service.binding.user.GetUser", "<webExId>hostid</webExId>")),
		ExcForward, `unsupported operation "GetUser"`)
	mustFail(t, post(t, fe, envelope(hostSec, "use:lstsummaryUser", "")), ExcForward, `unsupported operation "lstsummaryUser"`)
	mustFail(t, post(t, fe, envelope(hostSec, "java:x.Get&lt;User&gt;&quot;&amp;", "")), ExcForward, "unsupported operation")
	mustFail(t, post(t, fe, envelope(hostSec, typeDelMeeting, "<meetingKey>7</meetingKey>")), ExcNotFound, "not found")
	mustFail(t, post(t, fe, []byte("junk")), ExcForward, "text outside")
	var got []string
	for _, e := range logs.AllUntimed() {
		op, _ := e.ContextMap()["op"].(string)
		if _, ok := e.ContextMap()["supported"]; ok {
			op += " (unsupported)"
		}
		got = append(got, op)
	}
	want := []string{"GetAPIVersion", "GetUser (unsupported)", "lstsummaryUser (unsupported)", "Get?User??? (unsupported)", "DelMeeting", "none"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("ops logged: %v, want %v", got, want)
	}
}
