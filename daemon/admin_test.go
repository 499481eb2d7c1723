package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"switchboard/internal/testsupport"
	"switchboard/wire"
)

// adminClient speaks HTTP over the admin socket.
func adminClient(t *testing.T, sock string) *http.Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func adminDo(t *testing.T, c *http.Client, method, path string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, "http://admin"+path, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %q: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

func TestAdminSocket(t *testing.T) {
	var sock string
	lvl := zap.NewAtomicLevelAt(zap.InfoLevel)
	h := startDaemon(t, func(c *Config) {
		sock = filepath.Join(filepath.Dir(c.Socket), "admin.sock")
		c.Admin.Socket = sock
	}, WithLogLevel(lvl))
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket mode %v, want 0600", fi.Mode().Perm())
	}
	if h.d.AdminAddr() == nil {
		t.Fatal("AdminAddr nil")
	}
	c := adminClient(t, sock)

	var st Status
	if code := adminDo(t, c, "GET", "/status", &st); code != 200 {
		t.Fatalf("status: %d", code)
	}
	if len(st.Tiers) != 3 || st.Tiers[0].Name != "primary-large" || st.Tiers[0].Live != 2 ||
		st.Tiers[0].Breaker != "closed" || st.ConfigVersion != 1 || st.KeysLeft == 0 || len(st.Tiers[0].Servers) != 1 {
		t.Fatalf("status %+v", st)
	}

	var e adminError
	if code := adminDo(t, c, "POST", "/drain/nope", &e); code != 404 || !strings.Contains(e.Error, "unknown tier") {
		t.Fatalf("drain unknown: %d %+v", code, e)
	}
	if code := adminDo(t, c, "POST", "/breaker/nextgen/sideways", &e); code != 400 {
		t.Fatalf("bad breaker mode: %d", code)
	}
	if code := adminDo(t, c, "POST", "/drain/primary-large", nil); code != 200 {
		t.Fatalf("drain: %d", code)
	}
	if code := adminDo(t, c, "POST", "/breaker/nextgen/open", nil); code != 200 {
		t.Fatalf("breaker: %d", code)
	}
	a, err := h.c.Allocate(ctxT(t), &wire.AllocateRequest{Spec: spec("admin")})
	if err != nil || a.Tier != "backup2-large" {
		t.Fatalf("allocation with primary drained, nextgen forced open: %+v %v", a, err)
	}
	adminDo(t, c, "GET", "/status", &st)
	if !st.Tiers[0].Drained || st.Tiers[1].Override != "open" {
		t.Fatalf("status after overrides %+v", st.Tiers)
	}
	adminDo(t, c, "POST", "/undrain/primary-large", nil)
	adminDo(t, c, "POST", "/breaker/nextgen/auto", nil)
	adminDo(t, c, "GET", "/status", &st)
	if st.Tiers[0].Drained || st.Tiers[1].Override != "auto" {
		t.Fatalf("status after clearing overrides %+v", st.Tiers)
	}

	// No config source in this harness: reload says so.
	if code := adminDo(t, c, "POST", "/reload", &e); code != http.StatusNotImplemented {
		t.Fatalf("reload without source: %d %+v", code, e)
	}
	// Log level: the zap handler.
	req, _ := http.NewRequest("PUT", "http://admin/log/level", strings.NewReader(`{"level":"debug"}`))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || lvl.Level() != zap.DebugLevel {
		t.Fatalf("log level PUT: %d, level %v", resp.StatusCode, lvl.Level())
	}
	// pprof is served.
	resp, err = c.Get("http://admin/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte("goroutine profile")) {
		t.Fatalf("pprof: %d %.100q", resp.StatusCode, b)
	}
}

func TestAdminReloadStatusCodes(t *testing.T) {
	var sock string
	var src func() (*Config, error)
	h := startDaemon(t, func(c *Config) {
		sock = filepath.Join(filepath.Dir(c.Socket), "admin.sock")
		c.Admin.Socket = sock
	}, WithConfigSource(func() (*Config, error) { return src() }))
	c := adminClient(t, sock)
	base := h.d.Config()

	src = func() (*Config, error) { nc := reloadVariant(base, 1); nc.Keys.Digits = 10; return nc, nil }
	var e adminError
	if code := adminDo(t, c, "POST", "/reload", &e); code != http.StatusConflict || !strings.Contains(e.Error, "requires restart: keys.digits") {
		t.Fatalf("restart-only reload: %d %+v", code, e)
	}
	src = func() (*Config, error) { return ParseConfig([]byte("tiers: []\nbogus: 1\n"), "x.yaml") }
	if code := adminDo(t, c, "POST", "/reload", &e); code != http.StatusBadRequest || !strings.Contains(e.Error, "line 2") {
		t.Fatalf("invalid reload: %d %+v", code, e)
	}
	src = func() (*Config, error) { return reloadVariant(base, 1), nil }
	var ok struct {
		OK      bool   `json:"ok"`
		Version uint64 `json:"config_version"`
	}
	if code := adminDo(t, c, "POST", "/reload", &ok); code != 200 || !ok.OK || ok.Version != 2 {
		t.Fatalf("reload: %d %+v", code, ok)
	}
}

// TestLogsNeverCarrySecrets runs a full session life cycle, failover,
// reloads (one refused for changing the secret) and shutdown with debug
// logging, then greps every log line for the key secret and the meta blob.
func TestLogsNeverCarrySecrets(t *testing.T) {
	const secret = "5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e7"
	const metaText = "TOPSECRET-meeting-record-password=hunter2"
	var buf testsupport.Buffer
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	log := zap.New(zapcore.NewCore(enc, &buf, zap.DebugLevel))
	t.Run("run", func(t *testing.T) {
		h := startDaemon(t, func(c *Config) {
			c.Keys.Secret = secret
			chaosConfig(c)
		}, WithLogger(log))
		ctx := ctxT(t)
		a, err := h.c.Allocate(ctx, &wire.AllocateRequest{Token: []byte("tok"), Spec: spec("secret"), Meta: []byte(metaText)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.c.Lookup(ctx, a.Key); err != nil {
			t.Fatal(err)
		}
		s2 := spec("renamed")
		if _, err := h.c.Update(ctx, a.Key, &s2, []byte(metaText+"-v2")); err != nil {
			t.Fatal(err)
		}
		// Failover with meta in flight, then a release deferred to the
		// orphan releaser.
		h.d.Simulator("primary-large").Close()
		b, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("secret2"), Meta: []byte(metaText)})
		if err != nil {
			t.Fatal(err)
		}
		h.c.Release(ctx, b.Key)
		h.c.Release(ctx, a.Key)
		bad := *h.d.Config()
		bad.Keys.Secret = strings.Repeat("0f", 16)
		if err := h.d.Reload(ctx, &bad); err == nil {
			t.Fatal("secret change accepted")
		}
	})
	logs := buf.String()
	if !strings.Contains(logs, "switchboard ready") || !strings.Contains(logs, "reload failed") {
		t.Fatalf("the run did not log what it should have; logs:\n%s", logs)
	}
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, s := range []string{secret, strings.ToUpper(secret), metaText, "hunter2", strings.Repeat("0f", 16)} {
			if strings.Contains(line, s) {
				t.Fatalf("log line reveals a secret %q: %s", s, line)
			}
		}
	}
}
