package xmlapi

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"switchboard/internal/testsupport"
)

// metricValue gathers reg and returns the value of the sample of family
// name with exactly labels (a histogram's count), or -1 when absent.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel())*2 != len(labels) {
				continue
			}
			for i, lp := range m.GetLabel() {
				if lp.GetName() != labels[2*i] || lp.GetValue() != labels[2*i+1] {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

// TestMetrics: every request is counted by operation and result, each
// FAILURE by exception ID, and timed; unsupported operations share one
// label value, so a client cannot grow the label set.
func TestMetrics(t *testing.T) {
	m := NewMetrics()
	be := &pingBackend{fakeBackend: newFakeBackend()}
	fe := startFrontEnd(t, testConfig(t), be, WithMetrics(m))
	key := createKey(t, post(t, fe, readFile(t, "seed_request.xml")))
	mustSucceed(t, post(t, fe, envelope(hostSec, typeGet, keyBody(key))))
	mustSucceed(t, post(t, fe, envelope("", typeAPIVersion, "")))
	mustFail(t, post(t, fe, envelope(securityContext("hostid", "Wr0ngPassw0rd", "0000"), typeGet, keyBody(key))), ExcAuth, "Incorrect")
	mustFail(t, post(t, fe, envelope(hostSec, typeDelMeeting, "<meetingKey>1</meetingKey>")), ExcNotFound, "not found")
	for _, op := range []string{"GetUser", "LstsummaryUser", "x1", "x2"} {
		mustFail(t, post(t, fe, envelope(hostSec, "java:com.webex.service.binding.user."+op, "")), ExcForward, "unsupported")
	}
	mustFail(t, post(t, fe, []byte("junk")), ExcForward, "text outside")
	sec := "<header><securityContext><siteID>0</siteID><webExID>hostid</webExID><password>hostpassword</password></securityContext></header>"
	mustSucceed(t, post(t, fe, envelope(sec, typeAuthUser, "")))

	for _, c := range []struct {
		op, result string
		want       float64
	}{
		{"CreateTeleconferenceSession", "success", 1}, {"GetTeleconferenceSession", "success", 1}, {"GetTeleconferenceSession", "failure", 1},
		{"GetAPIVersion", "success", 1}, {"DelMeeting", "failure", 1}, {metricOpUnsupported, "failure", 4}, {metricOpNone, "failure", 1},
		{"AuthenticateUser", "success", 1}, {"DelSession", "success", 0},
	} {
		if got := metricValue(t, m.Registry(), "xmlapi_requests_total", "op", c.op, "result", c.result); got != c.want {
			t.Errorf("requests{op=%s,result=%s} = %v, want %v", c.op, c.result, got, c.want)
		}
	}
	if got := metricValue(t, m.Registry(), "xmlapi_request_duration_seconds", "op", "GetTeleconferenceSession"); got != 2 {
		t.Errorf("Get durations observed: %v, want 2", got)
	}
	for _, c := range []struct {
		op, exc string
		want    float64
	}{
		{"GetTeleconferenceSession", ExcAuth, 1}, {"DelMeeting", ExcNotFound, 1}, {metricOpUnsupported, ExcForward, 4}, {metricOpNone, ExcForward, 1},
	} {
		if got := metricValue(t, m.Registry(), "xmlapi_exceptions_total", "exception", c.exc, "op", c.op); got != c.want {
			t.Errorf("exceptions{op=%s,exception=%s} = %v, want %v", c.op, c.exc, got, c.want)
		}
	}
	if got := metricValue(t, m.Registry(), "xmlapi_session_tickets_issued_total"); got != 1 {
		t.Errorf("tickets issued %v, want 1", got)
	}
	if got := metricValue(t, m.Registry(), "xmlapi_requests_in_flight"); got != 0 {
		t.Errorf("in flight %v after every answer", got)
	}
	// Exposition: the families, with their help, and nothing of the
	// clients' own operation names.
	body := scrape(t, NewMetricsServer(m, fe.h, nil), "tcp", "127.0.0.1:0", "/metrics", http.StatusOK)
	for _, s := range []string{`xmlapi_requests_total{op="CreateTeleconferenceSession",result="success"} 1`,
		`xmlapi_request_duration_seconds_count{op="GetTeleconferenceSession"} 2`, `xmlapi_exceptions_total{exception="000000",op="unsupported"} 4`,
		"xmlapi_requests_in_flight 0", "xmlapi_session_tickets_issued_total 1", "go_goroutines", "process_"} {
		if !strings.Contains(body, s) {
			t.Errorf("scrape lacks %q", s)
		}
	}
	if strings.Contains(body, "GetUser") || strings.Contains(body, "x1") {
		t.Error("a client's operation name became a label value")
	}
}

// scrape serves srv on a fresh listener of network (tcp on loopback, or
// unix at addr), GETs path, checks the status and returns the body; the
// server is shut down before it returns.
func scrape(t *testing.T, srv *http.Server, network, addr, path string, status int) string {
	t.Helper()
	var ln net.Listener
	var err error
	if network == "unix" {
		ln, err = ListenMetrics("unix:" + addr)
	} else {
		ln, err = ListenMetrics(addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeMetrics(ctx, srv, ln, 5*time.Second) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeMetrics: %v", err)
		}
	}()
	tr := &http.Transport{}
	url := "http://" + ln.Addr().String() + path
	if network == "unix" {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", addr)
		}
		url = "http://metrics" + path
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("GET %s: HTTP %d, want %d\n%s", path, resp.StatusCode, status, b)
	}
	return string(b)
}

// TestHealth: GET /healthz on the XML port and on the metrics listener is
// 200 while the daemon answers a PING, 503 while it does not.
func TestHealth(t *testing.T) {
	be := &pingBackend{fakeBackend: newFakeBackend()}
	m := NewMetrics()
	fe := startFrontEnd(t, testConfig(t), be, WithMetrics(m))
	get := func(status int) string {
		resp, err := fe.http.Get(strings.TrimSuffix(fe.url, Path) + HealthPath)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != status {
			t.Fatalf("GET %s: HTTP %d, want %d: %s", HealthPath, resp.StatusCode, status, b)
		}
		return string(b)
	}
	if b := get(http.StatusOK); b != "ok\n" {
		t.Fatalf("healthy body %q", b)
	}
	sock := filepath.Join(testsupport.ShortTempDir(t), "m.sock")
	scrape(t, NewMetricsServer(m, fe.h, nil), "unix", sock, HealthPath, http.StatusOK)
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("metrics socket left behind: %v", err)
	}
	be.mu.Lock()
	be.err = errNotResponding
	be.mu.Unlock()
	if b := get(http.StatusServiceUnavailable); strings.Contains(b, "connection refused") {
		t.Fatalf("the health body tells the error: %q", b)
	}
	scrape(t, NewMetricsServer(m, fe.h, nil), "unix", sock, HealthPath, http.StatusServiceUnavailable)
}

// TestMetricsSocketMode: the Unix socket is 0660 from the start, replaces
// a stale socket, and refuses a path in use or that is not a socket.
func TestMetricsSocketMode(t *testing.T) {
	dir := testsupport.ShortTempDir(t)
	sock := filepath.Join(dir, "m.sock")
	ln, err := ListenMetrics("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v %v", fi, err)
	}
	if _, err := ListenMetrics("unix:" + sock); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second listener on a live socket: %v", err)
	}
	ln.(*unlinkListener).Listener.Close() // a crash: the path stays, nobody listens
	ln2, err := ListenMetrics("unix:" + sock)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	ln2.Close()
	plain := filepath.Join(dir, "file")
	os.WriteFile(plain, nil, 0o600)
	if _, err := ListenMetrics("unix:" + plain); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("over a file: %v", err)
	}
}

func TestMetricsAddrValidation(t *testing.T) {
	for addr, ok := range map[string]bool{
		"": true, "127.0.0.1:9465": true, "[::1]:9465": true, "localhost:9465": true, "unix:/run/xmlapi/metrics.sock": true,
		"0.0.0.0:9465": false, ":9465": false, "192.0.2.1:9465": false, "unix:run/m.sock": false, "9465": false,
		"127.0.0.1:99999": false, "127.0.0.1:-1": false, "localhost:http": false, "127.0.0.1:0": true,
	} {
		cfg := testConfig(t)
		cfg.Metrics.Addr = addr
		err := cfg.Validate()
		if ok != (err == nil) || err != nil && !strings.Contains(err.Error(), "metrics.addr") {
			t.Errorf("metrics.addr %q: %v", addr, err)
		}
	}
}

// TestOperationsDocumentsMetrics: docs/operations.md has a row for every
// xmlapi_* family and names none that does not exist.
func TestOperationsDocumentsMetrics(t *testing.T) {
	b, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics()
	m.record(&outcome{op: opGet, fault: faultAuth}, 0) // a vector shows once it has a child
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		if n := mf.GetName(); strings.HasPrefix(n, "xmlapi_") {
			names[n] = true
			if !strings.Contains(string(b), "| `"+n+"` |") {
				t.Errorf("docs/operations.md: no row for %s", n)
			}
		}
	}
	if len(names) < 5 {
		t.Fatalf("only %d xmlapi families: %v", len(names), names)
	}
	// A name after "$" is a dashboard variable ($xmlapi_instance), not a metric.
	for _, m := range regexp.MustCompile(`(^|[^$])(xmlapi_[a-z0-9_]+)`).FindAllStringSubmatch(string(b), -1) {
		n := m[2]
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count"), "_sum")
		if !names[n] && !names[base] {
			t.Errorf("docs/operations.md names %s, which xmlapi does not export", n)
		}
	}
}
