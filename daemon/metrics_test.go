package daemon

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"switchboard/wire"
)

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

func TestMetricsEndpoint(t *testing.T) {
	h := startDaemon(t, func(c *Config) { c.Metrics.Addr = "127.0.0.1:0" })
	ctx := ctxT(t)
	for i := 0; i < 5; i++ {
		a, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("metrics")})
		if err != nil {
			t.Fatal(err)
		}
		h.c.Release(ctx, a.Key)
	}
	if _, err := h.c.Lookup(ctx, 123456789); err == nil {
		t.Fatal("lookup of an unknown key succeeded")
	}
	h.d.Simulator("primary-large").Close()
	waitFor(t, "primary down", 5e9, func() bool { return tierByName(h, "primary-large").Pool.Live() == 0 })
	if a, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("failover")}); err != nil || a.Tier != "nextgen" {
		t.Fatalf("failover allocation %+v %v", a, err)
	}
	tierByName(h, "primary-large").Ctl.Drained.Store(true)
	bad := *h.d.Config()
	bad.Keys.Digits = 12
	h.d.Reload(ctx, &bad)

	body := scrape(t, h.d.MetricsAddr().String())
	for _, want := range []string{
		`switchboard_requests_total{op="allocate",result="ok"} 6`,
		`switchboard_requests_total{op="lookup",result="not_found"} 1`,
		`switchboard_requests_total{op="release",result="ok"} 5`,
		`switchboard_request_duration_seconds_count{op="allocate"} 6`,
		`switchboard_tier_attempts_total{outcome="ok",tier="primary-large"} 5`,
		`switchboard_tier_attempts_total{outcome="ok",tier="nextgen"} 1`,
		`switchboard_breaker_state{tier="primary-large"} 0`,
		`switchboard_tier_drained{tier="primary-large"} 1`,
		`switchboard_pool_connections{state="live",tier="nextgen"} 2`,
		`switchboard_pool_connections{state="live",tier="primary-large"} 0`,
		`switchboard_reloads_total{result="requires_restart"} 1`,
		`switchboard_reloads_total{result="ok"} 0`,
		`switchboard_keys_issued_total 6`,
		`switchboard_config_version 1`,
		`switchboard_in_flight 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q in\n%s", want, grepLines(body, "switchboard_keys"))
		}
	}
	// A tier known down is skipped, not tried: no failover counted, but
	// the series exists from the start.
	if !strings.Contains(body, `switchboard_failovers_total{from="primary-large",to="nextgen"} 0`+"\n") {
		t.Errorf("failover series missing")
	}
	if m := regexp.MustCompile(`switchboard_keys_left \d+`).FindString(body); m == "" || strings.HasSuffix(m, " 0") {
		t.Errorf("keys_left %q", m)
	}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.HasPrefix(line, "switchboard_") && !strings.HasPrefix(line, "go_") && !strings.HasPrefix(line, "process_") && !strings.HasPrefix(line, "promhttp_") {
			t.Errorf("metric without the switchboard_ prefix: %s", line)
		}
	}
}

func TestMetricsAddrMustBeLoopback(t *testing.T) {
	for _, c := range []struct {
		addr string
		ok   bool
	}{{"127.0.0.1:9464", true}, {"[::1]:9464", true}, {"localhost:0", true}, {"0.0.0.0:9464", false}, {":9464", false}, {"10.1.2.3:9464", false}, {"nonsense", false}} {
		_, err := ParseConfig([]byte("metrics: {addr: '"+c.addr+"'}\ntiers: [{name: a, servers: ['sim://a']}]\n"), "t.yaml")
		if (err == nil) != c.ok {
			t.Errorf("metrics.addr %q: %v", c.addr, err)
		}
	}
}

func grepLines(body, prefix string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
