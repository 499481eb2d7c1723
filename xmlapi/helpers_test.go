package xmlapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"switchboard/client"
	"switchboard/daemon"
	"switchboard/internal/daemontest"
	"switchboard/internal/testsupport"
	"switchboard/wire"
)

// netpoll's pollers and gopool's workers are process-wide and outlive any
// one daemon by design; everything else must stop.
func TestMain(m *testing.M) { testsupport.VerifyTestMainNetpoll(m) }

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Test accounts beside the seed's hostid. All test hashes are cheap so that
// wrong-password tests stay fast under the race detector.
const (
	otherPassword = "other-secret"
	argonPassword = "argon-secret"
)

var testHashes = sync.OnceValues(func() ([3]string, error) {
	var out [3]string
	for i, pw := range []string{otherPassword, "hostpassword"} {
		b, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			return out, err
		}
		out[i] = string(b)
	}
	// A light argon2id hash in the PHC form HashPassword writes (whose own
	// parameters, 64 MiB × 3 passes, are slow under the race detector).
	out[2] = lightArgon2id(argonPassword)
	return out, nil
})

func lightArgon2id(pw string) string {
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte(pw), salt, 1, 64, 1, 32)
	return fmt.Sprintf("$argon2id$v=19$m=64,t=1,p=1$%s$%s", base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// testConfig is the embedded default plus two accounts: "otherhost" on the
// seed's site (for ownership tests) and "argonhost" on site name "acme"
// with an argon2id hash.
func testConfig(t testing.TB) *Config {
	t.Helper()
	cfg, err := DefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	h, err := testHashes()
	if err != nil {
		t.Fatal(err)
	}
	tz := 45
	// hostid keeps its identity but gets a cheap hash of the same password
	// (the embedded cost-10 one is exercised by TestSeedRequestEndToEnd).
	cfg.Accounts[0].PasswordHash = h[1]
	cfg.Accounts = append(cfg.Accounts,
		Account{WebExID: "otherhost", Email: "other@xyz.com", SiteID: "0", PasswordHash: h[0], TimeZoneID: &tz},
		Account{WebExID: "argonhost", SiteName: "Acme", PasswordHash: h[2]})
	// Tests of other things post many wrong passwords from 127.0.0.1: the
	// throttle tests set their own limits.
	cfg.Auth.ThrottleFreeFailures = 1000
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// runningDaemon is the daemon the tests talk to, in-process.
type runningDaemon = daemontest.Daemon

// startDaemon runs the daemon on its embedded default (three sim:// tiers)
// under dir, or on cfg as mutate leaves it; it stops at cleanup.
func startDaemon(t testing.TB, dir string, mutate func(*daemon.Config)) *runningDaemon {
	t.Helper()
	return daemontest.Start(t, dir, func(cfg *daemon.Config) {
		cfg.Keys.BlockSize = 1024
		cfg.Cache.SizeMB = 32
		cfg.Server.ShutdownTimeout = 5 * time.Second
		if mutate != nil {
			mutate(cfg)
		}
	})
}

// dialDaemon connects a client to the daemon's socket; closed at cleanup.
func dialDaemon(t testing.TB, sock string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, sock, client.WithConns(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// frontEnd is a Handler served by NewServer and Serve on 127.0.0.1.
type frontEnd struct {
	h    *Handler
	url  string
	http *http.Client
	stop func()
}

func startFrontEnd(t testing.TB, cfg *Config, be Backend, opts ...Option) *frontEnd {
	t.Helper()
	if tt, ok := t.(*testing.T); ok {
		opts = append([]Option{WithLogger(zaptest.NewLogger(tt, zaptest.Level(zap.InfoLevel)))}, opts...)
	}
	h, err := NewHandler(cfg, be, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(cfg, h, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, cfg, srv, ln) }()
	tr := &http.Transport{}
	fe := &frontEnd{h: h, url: "http://" + ln.Addr().String() + Path, http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	var once sync.Once
	fe.stop = func() {
		once.Do(func() {
			tr.CloseIdleConnections()
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(fe.stop)
	return fe
}

// response is an HTTP answer with its body parsed.
type response struct {
	status int
	header http.Header
	raw    string
	root   *node
}

// node is a generic XML element for assertions.
type node struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Nodes   []*node    `xml:",any"`
	Text    string     `xml:",chardata"`
}

// find returns the first descendant along a path of local names.
func (n *node) find(path string) *node {
	cur := n
	for _, p := range strings.Split(path, "/") {
		var next *node
		for _, c := range cur.Nodes {
			if c.XMLName.Local == p {
				next = c
				break
			}
		}
		if next == nil {
			return nil
		}
		cur = next
	}
	return cur
}

// text returns the trimmed text at path, or "<missing>".
func (n *node) text(path string) string {
	if c := n.find(path); c != nil {
		return strings.TrimSpace(c.Text)
	}
	return "<missing>"
}

func (r *response) result() string    { return r.root.text("header/response/result") }
func (r *response) exception() string { return r.root.text("header/response/exceptionID") }
func (r *response) reason() string    { return r.root.text("header/response/reason") }

type header struct{ k, v string }

func post(t testing.TB, fe *frontEnd, body []byte, hs ...header) *response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, fe.url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if h.v == "" {
			req.Header.Del(h.k)
		} else {
			req.Header.Set(h.k, h.v)
		}
	}
	return do(t, fe, req)
}

func do(t testing.TB, fe *frontEnd, req *http.Request) *response {
	t.Helper()
	resp, err := fe.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := &response{status: resp.StatusCode, header: resp.Header, raw: string(b), root: &node{}}
	if err := xml.Unmarshal(b, r.root); err != nil {
		t.Fatalf("response is not XML: %v\n%s", err, b)
	}
	return r
}

// mustSucceed fails the test unless r is an HTTP 200 SUCCESS.
func mustSucceed(t testing.TB, r *response) {
	t.Helper()
	if r.status != http.StatusOK || r.result() != "SUCCESS" {
		t.Fatalf("want SUCCESS, got HTTP %d %s %s %q\n%s", r.status, r.result(), r.exception(), r.reason(), r.raw)
	}
}

// mustFail fails the test unless r is an HTTP 200 FAILURE with exception
// id whose reason contains want.
func mustFail(t testing.TB, r *response, id, want string) {
	t.Helper()
	if r.status != http.StatusOK || r.result() != "FAILURE" || r.exception() != id || !strings.Contains(r.reason(), want) {
		t.Fatalf("want FAILURE %s with %q, got HTTP %d %s %s %q\n%s", id, want, r.status, r.result(), r.exception(), r.reason(), r.raw)
	}
	checkFailureShape(t, r)
}

// checkFailureShape checks the real FAILURE shape (docs/webex-xml.md §8.1).
func checkFailureShape(t testing.TB, r *response) {
	t.Helper()
	if !strings.HasPrefix(r.raw, xmlDecl) {
		t.Fatalf("no XML declaration: %s", r.raw)
	}
	re := regexpFailure
	if !re.MatchString(r.raw) {
		t.Fatalf("FAILURE shape:\n%s", r.raw)
	}
	if ct := r.header.Get("Content-Type"); ct != "text/xml;charset=UTF-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	if r.header.Get(TierHeader) != "" {
		t.Fatalf("tier header on a FAILURE: %q", r.header.Get(TierHeader))
	}
}

// securityContext builds a header for an account.
func securityContext(webExID, password, site string) string {
	return fmt.Sprintf("<header><securityContext><webExID>%s</webExID><password>%s</password><siteID>%s</siteID></securityContext></header>", webExID, password, site)
}

// envelope wraps a header and a typed bodyContent.
func envelope(sec, xsiType, content string) []byte {
	return []byte(`<?xml version="1.0" encoding="UTF-8"?>
<serv:message xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:serv="http://www.webex.com/schemas/2002/06/service">` +
		sec + `<body><bodyContent xsi:type="` + xsiType + `">` + content + `</bodyContent></body></serv:message>`)
}

const (
	typeCreate = "java:com.webex.service.binding.meeting.auo.CreateTeleconferenceSession"
	typeSet    = "java:com.webex.service.binding.meeting.auo.SetTeleconferenceSession"
	typeGet    = "java:com.webex.service.binding.meeting.auo.GetTeleconferenceSession"
	typeDel    = "java:com.webex.service.binding.ep.DelSession"
)

var hostSec = securityContext("hostid", "hostpassword", "0000")

func keyBody(key string) string { return "<sessionKey>" + key + "</sessionKey>" }

// fakeBackend is an in-memory daemon for unit tests and benchmarks. It is
// safe for concurrent use.
type fakeBackend struct {
	mu   sync.Mutex
	next uint64
	res  map[uint64]client.Reservation
	err  error // returned by every call when set
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{next: 100000000, res: map[uint64]client.Reservation{}}
}

var fakeBridge = client.Bridge{ID: "42", Toll: "+1-408-555-0100", TollFree: "+1-866-555-0100", HostCode: "123456", AttendeeCode: "654321"}

func (f *fakeBackend) Allocate(_ context.Context, req *wire.AllocateRequest) (client.Allocation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return client.Allocation{}, f.err
	}
	f.next++
	f.res[f.next] = client.Reservation{Key: f.next, Tier: "primary-large", Bridge: fakeBridge, Meta: bytes.Clone(req.Meta)}
	return client.Allocation{Key: f.next, Tier: "primary-large", Bridge: fakeBridge}, nil
}

func (f *fakeBackend) Lookup(_ context.Context, key uint64) (client.Reservation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return client.Reservation{}, f.err
	}
	r, ok := f.res[key]
	if !ok {
		return r, &wire.RemoteError{Status: wire.StatusNotFound}
	}
	return r, nil
}

func (f *fakeBackend) Update(_ context.Context, key uint64, _ *wire.Spec, meta []byte) (client.Reservation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return client.Reservation{}, f.err
	}
	r, ok := f.res[key]
	if !ok {
		return r, &wire.RemoteError{Status: wire.StatusNotFound}
	}
	r.Meta = bytes.Clone(meta)
	f.res[key] = r
	return r, nil
}

func (f *fakeBackend) Release(_ context.Context, key uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	if _, ok := f.res[key]; !ok {
		return &wire.RemoteError{Status: wire.StatusNotFound}
	}
	delete(f.res, key)
	return nil
}

func (f *fakeBackend) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

var errNotResponding = errors.New("dial unix /nowhere: connect: connection refused")

type daemonConfig = daemon.Config
