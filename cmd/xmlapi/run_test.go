package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"switchboard/daemon"
	"switchboard/internal/daemontest"
	"switchboard/internal/testsupport"
	"switchboard/xmlapi"
)

func TestMain(m *testing.M) { testsupport.VerifyTestMainNetpoll(m) }

func startDaemon(t *testing.T) string {
	return daemontest.Start(t, "", func(cfg *daemon.Config) { cfg.Cache.SizeMB = 32 }).Socket()
}

// TestServeSeedAndStop runs the binary's run with the embedded default
// against a real daemon, posts the seed request, then stops it as SIGTERM
// would (its context ends).
func TestServeSeedAndStop(t *testing.T) {
	sock := startDaemon(t)
	seed, err := os.ReadFile("../../xmlapi/testdata/seed_request.xml")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr testsupport.Buffer
	addrC := make(chan net.Addr, 1)
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"-listen", "127.0.0.1:0", "-socket", sock}, nil, &bytes.Buffer{}, &stderr, func(a net.Addr) { addrC <- a })
	}()
	var addr net.Addr
	select {
	case addr = <-addrC:
	case c := <-code:
		t.Fatalf("run exited %d: %s", c, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := hc.Post("http://"+addr.String()+xmlapi.Path, "", bytes.NewReader(seed))
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(body.String(), "<serv:result>SUCCESS</serv:result>") || resp.Header.Get(xmlapi.TierHeader) != "primary-large" {
		t.Fatalf("HTTP %d %v\n%s", resp.StatusCode, resp.Header, body.String())
	}
	tr.CloseIdleConnections()
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit %d: %s", c, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not stop")
	}
	logs := stderr.String()
	if !strings.Contains(logs, `"msg":"xmlapi ready"`) || !strings.Contains(logs, "stopped gracefully") {
		t.Fatalf("logs:\n%s", logs)
	}
	for _, secret := range []string{"hostpassword", "123456", "Sample Teleconference"} {
		if strings.Contains(logs, secret) {
			t.Fatalf("logs contain %q:\n%s", secret, logs)
		}
	}
}

func TestDaemonUnreachable(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "x.yaml")
	cfg := strings.Replace(string(xmlapi.DefaultYAML), "connect_timeout: 10s", "connect_timeout: 200ms", 1)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr testsupport.Buffer
	c := run(context.Background(), []string{"-listen", "127.0.0.1:0", "-socket", filepath.Join(dir, "none.sock"), "-config", cfgPath},
		nil, &bytes.Buffer{}, &stderr, nil)
	if c != 1 || !strings.Contains(stderr.String(), "not reachable within 200ms") {
		t.Fatalf("exit %d: %s", c, stderr.String())
	}
}

func TestFlagsAndTools(t *testing.T) {
	var out, errb bytes.Buffer
	if c := run(context.Background(), []string{"-nope"}, nil, &out, &errb, nil); c != 2 {
		t.Fatalf("bad flag: exit %d", c)
	}
	if c := run(context.Background(), []string{"extra"}, nil, &out, &errb, nil); c != 2 {
		t.Fatalf("extra argument: exit %d", c)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, xmlapi.DefaultYAML, 0o600)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("http:\n  nope: 1\n"), 0o600)
	out.Reset()
	if c := run(context.Background(), []string{"-check-config", good}, nil, &out, &errb, nil); c != 0 || out.String() != "ok\n" {
		t.Fatalf("check good: %d %q", c, out.String())
	}
	errb.Reset()
	if c := run(context.Background(), []string{"-check-config", bad}, nil, &out, &errb, nil); c != 2 || !strings.Contains(errb.String(), "line 2") {
		t.Fatalf("check bad: %d %q", c, errb.String())
	}
	if c := run(context.Background(), []string{"-config", bad}, nil, &out, &errb, nil); c != 2 {
		t.Fatalf("run with a bad config: %d", c)
	}
	// A ticket secret file readable by others: refused by -check-config
	// and at start, as a configuration error.
	secret := filepath.Join(dir, "ticket.secret")
	os.WriteFile(secret, []byte(strings.Repeat("ab", 32)), 0o644)
	os.Chmod(secret, 0o644)
	withSecret := filepath.Join(dir, "secret.yaml")
	os.WriteFile(withSecret, []byte(strings.Replace(string(xmlapi.DefaultYAML), `ticket_secret_file: ""`, "ticket_secret_file: "+secret, 1)), 0o600)
	for _, args := range [][]string{{"-check-config", withSecret}, {"-config", withSecret, "-socket", filepath.Join(dir, "none.sock")}} {
		errb.Reset()
		if c := run(context.Background(), args, nil, &out, &errb, nil); c != 2 || !strings.Contains(errb.String(), "chmod 600") {
			t.Fatalf("%v: exit %d: %s", args, c, errb.String())
		}
	}
	out.Reset()
	if c := run(context.Background(), []string{"-print-default-config"}, nil, &out, &errb, nil); c != 0 || out.String() != string(xmlapi.DefaultYAML) {
		t.Fatalf("print default: %d", c)
	}
	for _, alg := range []string{"bcrypt", "argon2id"} {
		out.Reset()
		if c := run(context.Background(), []string{"-hash-password", "-hash-alg", alg}, strings.NewReader("s3cret\n"), &out, &errb, nil); c != 0 {
			t.Fatalf("hash %s: exit %d %s", alg, c, errb.String())
		}
		h := strings.TrimSpace(out.String())
		yaml := "accounts:\n  - {web_ex_id: a, site_id: '1', password_hash: '" + h + "'}\n"
		if _, err := xmlapi.ParseConfig([]byte(yaml), alg); err != nil {
			t.Fatalf("%s hash %q not accepted: %v", alg, h, err)
		}
		if strings.Contains(h, "s3cret") {
			t.Fatal("hash contains the password")
		}
	}
	if c := run(context.Background(), []string{"-hash-password"}, strings.NewReader(""), &out, &errb, nil); c != 2 {
		t.Fatalf("empty password: exit %d", c)
	}
}

// TestSampleAccountStaysLocal: the embedded sample account (public
// password) on a listen address that is not loopback is refused before
// anything listens, naming the field that allows it; on loopback it runs
// (TestServeSeedAndStop).
func TestSampleAccountStaysLocal(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:0"} {
		var out, errb bytes.Buffer
		c := run(context.Background(), []string{"-listen", listen, "-socket", "/nonexistent.sock"}, nil, &out, &errb, nil)
		if c != 2 || !strings.Contains(errb.String(), "http.allow_sample_account") || !strings.Contains(errb.String(), "hostid") {
			t.Errorf("-listen %s: exit %d: %s", listen, c, errb.String())
		}
	}
}

// TestMetricsAndHealth runs the binary with metrics.addr on a Unix socket:
// a request shows in its xmlapi_* families, /healthz answers ok on both
// listeners, and the socket is gone after the stop.
func TestMetricsAndHealth(t *testing.T) {
	sock := startDaemon(t)
	dir := testsupport.ShortTempDir(t)
	msock := filepath.Join(dir, "m.sock")
	cfgPath := filepath.Join(dir, "x.yaml")
	cfg := strings.Replace(string(xmlapi.DefaultYAML), `  addr: ""`, "  addr: unix:"+msock, 1)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr testsupport.Buffer
	addrC := make(chan net.Addr, 1)
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"-listen", "127.0.0.1:0", "-socket", sock, "-config", cfgPath}, nil, &bytes.Buffer{}, &stderr, func(a net.Addr) { addrC <- a })
	}()
	var addr net.Addr
	select {
	case addr = <-addrC:
	case c := <-code:
		t.Fatalf("run exited %d: %s", c, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	tr := &http.Transport{}
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	utr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", msock)
	}}
	uc := &http.Client{Transport: utr, Timeout: 10 * time.Second}
	get := func(c *http.Client, url string) string {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: HTTP %d %s", url, resp.StatusCode, b.String())
		}
		return b.String()
	}
	resp, err := hc.Post("http://"+addr.String()+xmlapi.Path, "", strings.NewReader(
		`<message xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><body><bodyContent xsi:type="java:com.webex.service.binding.ep.GetAPIVersion"/></body></message>`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if body := get(uc, "http://m/metrics"); !strings.Contains(body, `xmlapi_requests_total{op="GetAPIVersion",result="success"} 1`) {
		t.Fatalf("metrics:\n%s", body)
	}
	if get(uc, "http://m"+xmlapi.HealthPath) != "ok\n" || get(hc, "http://"+addr.String()+xmlapi.HealthPath) != "ok\n" {
		t.Fatal("health not ok")
	}
	tr.CloseIdleConnections()
	utr.CloseIdleConnections()
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit %d: %s", c, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not stop")
	}
	if _, err := os.Lstat(msock); !os.IsNotExist(err) {
		t.Fatalf("metrics socket left: %v", err)
	}
	if !strings.Contains(stderr.String(), `"metrics":"`) {
		t.Fatalf("ready line does not name the metrics listener:\n%s", stderr.String())
	}
}
