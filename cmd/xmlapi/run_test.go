package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"switchboard/daemon"
	"switchboard/xmlapi"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/cloudwego/netpoll.(*defaultPoll).Wait"),
		goleak.IgnoreAnyFunction("github.com/cloudwego/netpoll.(*defaultPoll).Wait"),
		goleak.IgnoreAnyFunction("github.com/bytedance/gopkg/util/gopool.(*worker).run.func1"))
}

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startDaemon(t *testing.T) string {
	dir, err := os.MkdirTemp("", "x")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg, err := daemon.DefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Socket = filepath.Join(dir, "sb.sock")
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Cache.SizeMB = 32
	if _, err := daemon.InitKeys(cfg, 0); err != nil { // as switchboard -init-keys
		t.Fatal(err)
	}
	d, err := daemon.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	select {
	case <-d.Ready():
	case err := <-done:
		t.Fatalf("daemon: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("daemon not ready")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon Run: %v", err)
		}
	})
	return cfg.Socket
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
	var stderr syncBuffer
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
	var stderr syncBuffer
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
