package xmlapi

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"switchboard/client"
	"switchboard/wire"
)

// TestDaemonErrorMapping: every daemon status and transport error becomes
// its documented exception ID.
func TestDaemonErrorMapping(t *testing.T) {
	be := newFakeBackend()
	fe := startFrontEnd(t, testConfig(t), be)
	key := createKey(t, post(t, fe, readFile(t, "seed_request.xml")))
	for _, tc := range []struct {
		err    error
		id     string
		reason string
	}{
		{&wire.RemoteError{Status: wire.StatusNotFound, Message: "no session"}, ExcNotFound, "Corresponding Meeting not found"},
		{&wire.RemoteError{Status: wire.StatusUnavailable}, ExcUnavailable, "No telephony server"},
		{&wire.RemoteError{Status: wire.StatusCapacity}, ExcCapacity, "full"},
		{&wire.RemoteError{Status: wire.StatusOverloaded}, ExcOverloaded, "overloaded"},
		{&wire.RemoteError{Status: wire.StatusKeysExhausted}, ExcKeysExhausted, "session key"},
		{&wire.RemoteError{Status: wire.StatusBadRequest}, ExcInvalid, "rejected"},
		{&wire.RemoteError{Status: wire.StatusTimeout}, ExcNotResponding, "not responding"},
		{&wire.RemoteError{Status: wire.StatusInternal}, ExcInternal, "Internal error"},
		{&wire.RemoteError{Status: wire.StatusUnsupported}, ExcInternal, "Internal error"},
		{&wire.RemoteError{Status: 200}, ExcInternal, "Internal error"},
		{fmt.Errorf("client: %w", wire.StatusCapacity), ExcCapacity, "full"},
		{errNotResponding, ExcNotResponding, "not responding"},
		{client.ErrClosed, ExcNotResponding, "not responding"},
		{context.DeadlineExceeded, ExcNotResponding, "not responding"},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			be.setErr(tc.err)
			defer be.setErr(nil)
			mustFail(t, post(t, fe, readFile(t, "seed_request.xml")), tc.id, tc.reason)
			mustFail(t, post(t, fe, envelope(hostSec, typeGet, keyBody(key))), tc.id, tc.reason)
		})
	}
}

// flakyBackend loses the connection on the first call of each kind after
// sending, then behaves.
type flakyBackend struct {
	*fakeBackend
	allocs, releases atomic.Int32
	tokens           [][]byte
}

var errLost = fmt.Errorf("%w: %w", client.ErrConnLost, client.ErrUnknownOutcome)

func (f *flakyBackend) Allocate(ctx context.Context, req *wire.AllocateRequest) (client.Allocation, error) {
	f.tokens = append(f.tokens, bytes.Clone(req.Token))
	if f.allocs.Add(1) == 1 {
		return client.Allocation{}, errLost
	}
	return f.fakeBackend.Allocate(ctx, req)
}

func (f *flakyBackend) Release(ctx context.Context, key uint64) error {
	if f.releases.Add(1) == 1 {
		f.fakeBackend.Release(ctx, key) // executed, but the answer is lost
		return errLost
	}
	return f.fakeBackend.Release(ctx, key)
}

// TestRetryOnUnknownOutcome: a call whose answer was lost is retried once,
// an ALLOCATE with the same token, and a retried RELEASE that finds the
// session gone counts as done.
func TestRetryOnUnknownOutcome(t *testing.T) {
	be := &flakyBackend{fakeBackend: newFakeBackend()}
	h, err := NewHandler(testConfig(t), be)
	if err != nil {
		t.Fatal(err)
	}
	var oc outcome
	out := h.serve(context.Background(), readFile(t, "seed_request.xml"), "", netip.Addr{}, nil, &oc)
	if oc.fault != nil {
		t.Fatalf("create: %v", oc.fault)
	}
	if len(be.tokens) != 2 || !bytes.Equal(be.tokens[0], be.tokens[1]) || len(be.tokens[0]) != 16 {
		t.Fatalf("tokens %x: want the same random token twice", be.tokens)
	}
	key := regexpKey.FindStringSubmatch(string(out))[1]
	oc = outcome{}
	h.serve(context.Background(), envelope(hostSec, typeDel, keyBody(key)), "", netip.Addr{}, nil, &oc)
	if oc.fault != nil || be.releases.Load() != 2 {
		t.Fatalf("del: %v after %d releases", oc.fault, be.releases.Load())
	}
}

// TestLogsNeverContainSecrets runs successes and failures with a debug
// logger and looks for passwords and meeting content in every entry.
func TestLogsNeverContainSecrets(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	be := newFakeBackend()
	fe := startFrontEnd(t, testConfig(t), be, WithLogger(zap.New(core)))
	secrets := []string{"hostpassword", "Wr0ngPassw0rd", "S3ss10nPw", "Confidential Merger Call", "ceo@secret.example", "TRACK-SECRET"}
	content := `<accessControl><sessionPassword>S3ss10nPw</sessionPassword></accessControl><metaData><confName>Confidential Merger Call</confName></metaData>
<tracking><trackingCode1>TRACK-SECRET</trackingCode1></tracking><fullAccessAttendees><attendee><email>ceo@secret.example</email></attendee></fullAccessAttendees>`
	key := createKey(t, post(t, fe, envelope(hostSec, typeCreate, content)))
	mustSucceed(t, post(t, fe, envelope(hostSec, typeGet, keyBody(key))))
	mustSucceed(t, post(t, fe, envelope(hostSec, typeSet, content+keyBody(key))))
	mustFail(t, post(t, fe, envelope(securityContext("hostid", "Wr0ngPassw0rd", "0"), typeCreate, content)), ExcAuth, "Incorrect")
	mustFail(t, post(t, fe, envelope(hostSec, typeCreate, strings.Replace(content, "S3ss10nPw", "S3ss10nPw-far-too-long", 1))), ExcInvalid, "sessionPassword")
	mustFail(t, post(t, fe, envelope(hostSec, typeCreate, strings.Replace(content, "<metaData>", "<metaData><sessionType>S3ss10nPw</sessionType>", 1))), ExcInvalid, "sessionType")
	be.setErr(&wire.RemoteError{Status: wire.StatusInternal, Message: "boom"})
	mustFail(t, post(t, fe, envelope(hostSec, typeCreate, content)), ExcInternal, "Internal")
	be.setErr(nil)
	mustSucceed(t, post(t, fe, envelope(hostSec, typeDel, keyBody(key))))

	var meta []byte
	for _, r := range be.res {
		meta = r.Meta
	}
	entries := logs.AllUntimed()
	if len(entries) < 8 {
		t.Fatalf("%d log entries, want one per request", len(entries))
	}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	for _, e := range entries {
		buf, err := enc.EncodeEntry(e.Entry, e.Context)
		if err != nil {
			t.Fatal(err)
		}
		line := buf.String()
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Errorf("log entry contains %q: %s", s, line)
			}
		}
		if len(meta) > 0 && strings.Contains(line, string(meta)) {
			t.Errorf("log entry contains the meta blob: %s", line)
		}
	}
	if logs.FilterMessage("xml request failed").FilterField(zap.String("element", "accessControl/sessionPassword")).Len() != 1 {
		t.Errorf("the invalid element is not logged by path")
	}
}

func TestRecordRoundTrip(t *testing.T) {
	var req request
	if f := parseRequest(readFile(t, "seed_request.xml"), 32, &req); f != nil || req.fault != nil {
		t.Fatal(f, req.fault)
	}
	m := req.m
	m.set(fTimeZoneID, value{n: 45})
	m.set(fRemindRoundTrip(), value{n: 1})
	rec := &record{owner: "hostid", site: "id:0", m: m}
	b := appendRecord(nil, rec)
	got, err := decodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.owner != rec.owner || got.site != rec.site || got.m.has != m.has || got.m.v != m.v || got.m.sections != m.sections ||
		fmt.Sprint(got.m.full, got.m.limited) != fmt.Sprint(m.full, m.limited) || !got.m.hasFull || !got.m.hasLimited {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, rec)
	}
	if len(b) > 600 {
		t.Errorf("seed meeting record is %d bytes; the encoding is meant to be compact", len(b))
	}

	// An unknown tag (a later minor version) is skipped.
	ext := appendTLVString(bytes.Clone(b), 15, "future")
	if _, err := decodeRecord(ext); err != nil {
		t.Fatalf("unknown tag: %v", err)
	}
	newer := bytes.Clone(b)
	newer[2] = recordVersion + 1
	for name, tc := range map[string]struct {
		b    []byte
		want error
	}{
		"newer version": {newer, ErrRecordVersion},
		"not a record":  {[]byte("opaque meeting record"), ErrRecord},
		"empty":         {nil, ErrRecord},
		"truncated":     {b[:len(b)-3], ErrRecord},
		"no owner":      {[]byte("WX\x01"), ErrRecord},
		"bad enum":      {appendTLVInt(bytes.Clone(b), tagField0+uint64(fListing), 7), ErrRecord},
	} {
		if _, err := decodeRecord(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

func fRemindRoundTrip() fieldID { return fEnableReminder }

// TestGetOfForeignReservation: a reservation made by another daemon client
// (meta not a meeting record) is not a meeting: 060001.
func TestGetOfForeignReservation(t *testing.T) {
	be := newFakeBackend()
	fe := startFrontEnd(t, testConfig(t), be)
	a, err := be.Allocate(context.Background(), &wire.AllocateRequest{Meta: []byte("sbctl")})
	if err != nil {
		t.Fatal(err)
	}
	mustFail(t, post(t, fe, envelope(hostSec, typeGet, keyBody(fmt.Sprint(a.Key)))), ExcNotFound, "not found")
}

func FuzzParseRequest(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("testdata", "seed_request.xml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(envelope(hostSec, typeSet, "<repeat><repeatType>MONTHLY</repeatType><weekInMonth>2</weekInMonth><dayInWeek><day>MONDAY</day></dayInWeek></repeat>"+keyBody("1")))
	f.Add([]byte(`<?xml version="1.0" encoding="ISO-8859-1"?><message><body><bodyContent>` + "\xe9" + `</bodyContent></body></message>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var req request
		if parseRequest(body, 32, &req) != nil || req.fault != nil {
			return
		}
		// What parses and validates must encode, decode and render.
		m := req.m
		if m.finish() != nil {
			return
		}
		b := appendRecord(nil, &record{owner: "o", site: "s", m: m})
		got, err := decodeRecord(b)
		if err != nil {
			t.Fatalf("decode of an encoded record: %v", err)
		}
		_ = got.m.spec()
		out := appendGetResponse(nil, "PRIMARY", 1, &got.m, &fakeBridge)
		var n node
		if err := xml.Unmarshal(out, &n); err != nil {
			t.Fatalf("rendered Get is not XML: %v\n%s", err, out)
		}
	})
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendRecord(nil, &record{owner: "hostid", site: "id:0"}))
	f.Add([]byte("WX\x01\x01\x01a\x10\x02\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		appendGetResponse(nil, "PRIMARY", 1, &r.m, &fakeBridge)
	})
}

func TestConfig(t *testing.T) {
	cfg, err := DefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.MaxBodyBytes != 128<<10 || cfg.XML.MaxDepth != 32 || cfg.XML.GSBStatus != "PRIMARY" || len(cfg.Accounts) != 1 ||
		cfg.Accounts[0].WebExID != "hostid" || *cfg.Accounts[0].TimeZoneID != 4 || cfg.Auth.MaxConcurrentHashes < 1 {
		t.Fatalf("default %+v", cfg)
	}
	// Zero values mean defaults: a file with only an account is complete.
	h, _ := testHashes()
	min, err := ParseConfig([]byte("accounts:\n  - web_ex_id: a\n    site_name: s\n    password_hash: \""+h[0]+"\"\n"), "min")
	if err != nil {
		t.Fatal(err)
	}
	if min.Backend.RequestTimeout != 3*time.Second || min.HTTP.WriteTimeout != 15*time.Second || *min.Accounts[0].TimeZoneID != DefaultTimeZoneID {
		t.Fatalf("defaults %+v", min)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "x.yaml")
	os.WriteFile(p, DefaultYAML, 0o600)
	if _, err := LoadConfig(p); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(filepath.Join(dir, "missing.yaml")); !errors.Is(err, ErrConfig) {
		t.Fatalf("missing file: %v", err)
	}
	for name, tc := range map[string]struct{ yaml, want string }{
		"unknown field":     {"http:\n  max_body: 1\n", "line 2"},
		"two documents":     {"log: {level: info}\n---\nlog: {level: info}\n", "more than one"},
		"no accounts":       {"log: {level: info}\n", "at least one account"},
		"plaintext":         {"accounts:\n  - {web_ex_id: a, site_id: '1', password_hash: hunter2}\n", "password_hash"},
		"no site":           {"accounts:\n  - {web_ex_id: a, password_hash: '" + h[0] + "'}\n", "site_id or site_name"},
		"bad site id":       {"accounts:\n  - {web_ex_id: a, site_id: x1, password_hash: '" + h[0] + "'}\n", "not a number"},
		"duplicate id":      {"accounts:\n  - {web_ex_id: a, site_id: '1', password_hash: '" + h[0] + "'}\n  - {web_ex_id: A, site_id: '1', password_hash: '" + h[0] + "'}\n", "already used"},
		"bad time zone":     {"accounts:\n  - {web_ex_id: a, site_id: '1', time_zone_id: 62, password_hash: '" + h[0] + "'}\n", "time_zone_id"},
		"argon2 huge m":     {"accounts:\n  - {web_ex_id: a, site_id: '1', password_hash: '$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA'}\n", "m=99999999"},
		"argon2 bad format": {"accounts:\n  - {web_ex_id: a, site_id: '1', password_hash: '$argon2id$v=19$m=65536'}\n", "argon2id"},
		"gsb":               {"xml: {gsb_status: SECONDARY}\n", "xml.gsb_status"},
		"depth":             {"xml: {max_depth: 4}\n", "xml.max_depth"},
		"body":              {"http: {max_body_bytes: 10}\n", "http.max_body_bytes"},
		"write timeout":     {"http: {write_timeout: 1s}\n", "http.write_timeout"},
		"log level":         {"log: {level: loud}\n", "log.level"},
	} {
		_, err := ParseConfig([]byte(tc.yaml), name)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an ErrConfig mentioning %q", name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error echoes the value: %v", name, err)
		}
	}
}

func TestHashPassword(t *testing.T) {
	// HashPassword's own output parses and verifies (one slow argon2id run
	// each way is enough); the cheap twin checks wrong passwords.
	for _, alg := range []Algorithm{Bcrypt, Argon2id} {
		s, err := HashPassword(alg, []byte("pw"))
		if err != nil {
			t.Fatal(err)
		}
		h, err := parseHash(s)
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		if !h.verify([]byte("pw")) {
			t.Fatalf("%s: the password does not verify", alg)
		}
		if alg == Bcrypt && h.verify([]byte("pW")) {
			t.Fatal("bcrypt: a wrong password verifies")
		}
	}
	h, err := parseHash(lightArgon2id("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if !h.verify([]byte("pw")) || h.verify([]byte("pW")) || h.verify(nil) {
		t.Fatal("argon2id verify")
	}
	if _, err := HashPassword("md5", []byte("pw")); err == nil {
		t.Fatal("md5 accepted")
	}
}

// TestAuthCache: a verified pair skips the slow hash until the TTL passes;
// identical concurrent checks share one.
func TestAuthCache(t *testing.T) {
	now := time.Unix(1e9, 0)
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	cfg := testConfig(t)
	a, err := newAuthenticator(cfg, func() time.Time { return *clock.Load() }, nil)
	if err != nil {
		t.Fatal(err)
	}
	acc := a.byID["otherhost"]
	c := &credentials{present: true, webExID: "otherhost", password: otherPassword, siteID: "0"}
	for i := 0; i < 3; i++ {
		if _, f := a.authenticate(context.Background(), c, netip.Addr{}); f != nil {
			t.Fatal(f)
		}
	}
	if len(a.cache) != 1 {
		t.Fatalf("%d cached pairs, want 1", len(a.cache))
	}
	later := now.Add(cfg.Auth.CacheTTL + time.Second)
	clock.Store(&later)
	k := a.mac(acc, 0, otherPassword)
	a.mu.Lock()
	exp := a.cache[k]
	a.mu.Unlock()
	if !later.After(exp) {
		t.Fatalf("entry expires at %v, after the TTL", exp)
	}
	if _, f := a.authenticate(context.Background(), c, netip.Addr{}); f != nil {
		t.Fatal(f)
	}
	a.mu.Lock()
	exp2 := a.cache[k]
	a.mu.Unlock()
	if !exp2.After(later) {
		t.Fatal("an expired pair was not checked again and re-cached")
	}
	// Wrong passwords are never cached.
	bad := *c
	bad.password = "nope"
	if _, f := a.authenticate(context.Background(), &bad, netip.Addr{}); f == nil || f.ID != ExcAuth {
		t.Fatalf("wrong password: %v", f)
	}
	if len(a.cache) != 1 {
		t.Fatalf("%d cached pairs after a wrong password", len(a.cache))
	}
}

func TestCharsetReaders(t *testing.T) {
	r, err := charsetReader("ISO-8859-1", bytes.NewReader([]byte{'a', 0xe9, 0xff, 'z'}))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	if string(b) != "aéÿz" {
		t.Fatalf("latin-1: %q", b)
	}
	r, _ = charsetReader("cp1252", bytes.NewReader([]byte{0x80, 0x93, 'x', 0x94}))
	if b, _ = io.ReadAll(r); string(b) != "€“x”" {
		t.Fatalf("cp1252: %q", b)
	}
	r, _ = charsetReader("windows-1252", bytes.NewReader([]byte{0x81}))
	if _, err := io.ReadAll(r); err == nil {
		t.Fatal("undefined cp1252 byte accepted")
	}
	if _, err := charsetReader("EBCDIC", nil); err == nil {
		t.Fatal("EBCDIC accepted")
	}
}

func TestParseDate(t *testing.T) {
	for s, ok := range map[string]bool{
		"04/18/2005 15:08:51": true, "02/29/2008 00:00:00": true, "12/31/9999 23:59:59": true, "01/01/1970 00:00:00": true,
		"02/29/2005 00:00:00": false, "13/01/2005 00:00:00": false, "00/10/2005 00:00:00": false, "12/31/1969 23:59:59": false,
		"04/18/2005 15:60:00": false, "04/18/2005T15:08:51": false, "04/18/2005 15:08:5x": false, "": false,
	} {
		if _, got := parseDate(s); got != ok {
			t.Errorf("parseDate(%q) ok = %v", s, got)
		}
	}
}

func TestEscape(t *testing.T) {
	got := string(appendEscaped(nil, "a<b>&\"'\x01\xffé"))
	if got != "a&lt;b&gt;&amp;&quot;&apos;\uFFFD\uFFFDé" {
		t.Fatalf("escaped %q", got)
	}
}

// TestLeafTrimsFormattingOnly: a leaf's text loses the spaces, tabs and
// line ends an indented document puts around it (a literal CR LF included:
// the decoder makes it LF), not a CR written as &#13; nor a no-break
// space, which no formatting adds.
func TestLeafTrimsFormattingOnly(t *testing.T) {
	for sent, want := range map[string]string{
		"\r\n\t  hostid \r\n":          "hostid",
		"\n  &#13;hostid&#13;\n  ":     "\rhostid\r",
		"\u00a0hostid\u00a0":           "\u00a0hostid\u00a0",
		" \t&#xD;\n":                   "\r",
		"\n\t<![CDATA[a b]]>&#13;\n\t": "a b\r",
	} {
		var req request
		body := envelope("<header><securityContext><webExID>"+sent+"</webExID></securityContext></header>", typeGet, keyBody("1"))
		if f := parseRequest(body, 32, &req); f != nil || req.fault != nil {
			t.Fatalf("%q: %v %v", sent, f, req.fault)
		}
		if req.cred.webExID != want {
			t.Errorf("webExID sent as %q parsed as %q, want %q", sent, req.cred.webExID, want)
		}
	}
}
