package telsim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestFaultJSON(t *testing.T) {
	f := Fault{Mode: ModeSlow, Latency: 5 * time.Millisecond, Jitter: time.Millisecond, Fraction: 0.5, Period: time.Second}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"mode":"slow","latency":"5ms","jitter":"1ms","fraction":0.5,"period":"1s"}`; string(b) != want {
		t.Fatalf("Marshal = %s, want %s", b, want)
	}
	var g Fault
	if err := json.Unmarshal(b, &g); err != nil || g != f {
		t.Fatalf("round trip: %+v, %v", g, err)
	}
	for _, bad := range []string{`{"mode":"melt"}`, `{"mode":"slow","latency":"fast"}`, `{"mode":3}`} {
		if err := json.Unmarshal([]byte(bad), &g); err == nil {
			t.Errorf("Unmarshal(%s) succeeded", bad)
		}
	}
}

func controlServer(t *testing.T) (*Server, string, *httptest.Server) {
	t.Helper()
	s, addr := startServer(t, Config{Tier: "backup2-large"})
	hs := httptest.NewServer(s.ControlHandler())
	t.Cleanup(hs.Close)
	return s, addr, hs
}

func doHTTP(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusMethodNotAllowed && ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, url, ct)
	}
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestControlAPI(t *testing.T) {
	s, addr, hs := controlServer(t)
	code, body := doHTTP(t, "POST", hs.URL+"/fault",
		`{"mode":"slow","latency":"5ms","jitter":"1ms","fraction":0.5,"period":"1s"}`)
	if code != 200 || body != `{"mode":"slow","latency":"5ms","jitter":"1ms"}` {
		t.Fatalf("POST /fault: %d %s", code, body)
	}
	if f := s.Fault(); f != (Fault{Mode: ModeSlow, Latency: 5 * time.Millisecond, Jitter: time.Millisecond}) {
		t.Fatalf("fault in force: %v", f)
	}
	if code, body := doHTTP(t, "GET", hs.URL+"/fault", ""); code != 200 || body != `{"mode":"slow","latency":"5ms","jitter":"1ms"}` {
		t.Fatalf("GET /fault: %d %s", code, body)
	}
	if code, body := doHTTP(t, "PUT", hs.URL+"/fault/errors?fraction=0.25", ""); code != 200 || body != `{"mode":"errors","fraction":0.25}` {
		t.Fatalf("PUT /fault/errors: %d %s", code, body)
	}
	if code, body := doHTTP(t, "PUT", hs.URL+"/fault/down", ""); code != 200 || body != `{"mode":"down"}` {
		t.Fatalf("PUT /fault/down: %d %s", code, body)
	}
	if _, err := net.DialTimeout("tcp", addr, ioTimeout); !isRefused(err) {
		t.Fatalf("dial after PUT /fault/down: %v", err)
	}
	if code, body := doHTTP(t, "PUT", hs.URL+"/fault/none", ""); code != 200 || body != `{"mode":"none"}` {
		t.Fatalf("PUT /fault/none: %d %s", code, body)
	}
	if _, err := dial(t, addr).ping(); err != nil {
		t.Fatal(err)
	}

	bad := []struct{ method, path, body string }{
		{"POST", "/fault", `{"mode":"melt"}`},
		{"POST", "/fault", `{"mode":"slow","latency":"-5ms"}`},
		{"POST", "/fault", `{"mode":"slow","speed":"fast"}`},
		{"POST", "/fault", `not json`},
		{"PUT", "/fault/melt", ``},
		{"PUT", "/fault/slow?latency=soon", ``},
		{"PUT", "/fault/errors?fraction=2", ``},
		{"PUT", "/fault/errors?fraction=x", ``},
		{"PUT", "/fault/slow?speed=1", ``},
		{"PUT", "/fault/slow?latency=1ms&latency=2ms", ``},
	}
	for _, b := range bad {
		code, body := doHTTP(t, b.method, hs.URL+b.path, b.body)
		var e errorBody
		if code != 400 || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
			t.Errorf("%s %s %s: %d %s, want 400 with an error", b.method, b.path, b.body, code, body)
		}
	}
	if f := s.Fault(); f.Mode != ModeNone {
		t.Fatalf("a rejected request changed the fault: %v", f)
	}
	if code, _ := doHTTP(t, "DELETE", hs.URL+"/fault", ""); code != http.StatusMethodNotAllowed {
		t.Errorf("DELETE /fault: %d", code)
	}

	code, body = doHTTP(t, "GET", hs.URL+"/stats", "")
	var st Stats
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("GET /stats: %d %s", code, body)
	}
	if st.Tier != "backup2-large" || st.Pings != 1 || !st.Listening || st.Faults.Downs != 1 || st.Faults.Relistens != 1 {
		t.Fatalf("stats %s", body)
	}

	_ = s.Close()
	if code, _ := doHTTP(t, "PUT", hs.URL+"/fault/down", ""); code != http.StatusServiceUnavailable {
		t.Fatalf("PUT after Close: %d, want 503", code)
	}
}

func TestControlClient(t *testing.T) {
	s, addr, hs := controlServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	for _, base := range []string{hs.URL, strings.TrimPrefix(hs.URL, "http://")} {
		cc := NewControlClient(base, nil)
		f, err := cc.SetFault(ctx, Fault{Mode: ModeFull})
		if err != nil || f != (Fault{Mode: ModeFull}) {
			t.Fatalf("SetFault via %s: %v, %v", base, f, err)
		}
		if f, err := cc.Fault(ctx); err != nil || f.Mode != ModeFull {
			t.Fatalf("Fault: %v, %v", f, err)
		}
		if _, err := cc.SetFault(ctx, Fault{Mode: ModeErrors, Fraction: 3}); !errors.Is(err, ErrBadFault) {
			t.Fatalf("invalid SetFault: %v, want ErrBadFault", err)
		}
		if _, err := cc.SetFault(ctx, Fault{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dial(t, addr).ping(); err != nil {
		t.Fatal(err)
	}
	cc := NewControlClient(hs.URL+"/", hs.Client())
	st, err := cc.Stats(ctx)
	if err != nil || st.Pings != 1 || st.Faults.Full != 0 || st.ServerID != "telsim-backup2-large" {
		t.Fatalf("Stats: %+v, %v", st, err)
	}
	_ = s.Close()
	if _, err := cc.SetFault(ctx, Fault{Mode: ModeDown}); !errors.Is(err, ErrClosed) {
		t.Fatalf("SetFault after Close: %v, want ErrClosed", err)
	}
}
