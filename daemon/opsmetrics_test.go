package daemon

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"switchboard/wire"
)

// metricValue returns the value of the one sample line of body that starts
// with series (name and labels as printed), or fails.
func metricValue(t *testing.T, body, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no sample %s in the scrape", series)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s: %v", series, err)
	}
	return v
}

// The scrape exports the session index's own statistics (fastcache.Stats),
// the build, and the log lines the sampler dropped.
func TestIndexBuildAndLogDropMetrics(t *testing.T) {
	h := startDaemon(t, func(c *Config) { c.Metrics.Addr = "127.0.0.1:0" })
	ctx := ctxT(t)
	var keys []uint64
	for i := 0; i < 3; i++ {
		a, err := h.c.Allocate(ctx, &wire.AllocateRequest{Spec: spec("index"), Token: []byte("tok-" + strconv.Itoa(i))})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, a.Key)
	}
	for _, k := range keys {
		if _, err := h.c.Lookup(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	body := scrape(t, h.d.MetricsAddr().String())
	if v := metricValue(t, body, "switchboard_index_set_calls_total"); v < 3 {
		t.Errorf("index set calls %v, want at least 3 (a session and a token per allocation)", v)
	}
	if v := metricValue(t, body, "switchboard_index_get_calls_total"); v < 3 {
		t.Errorf("index get calls %v, want at least 3 (the lookups)", v)
	}
	if v := metricValue(t, body, "switchboard_index_entries"); v < 3 {
		t.Errorf("index entries %v, want at least 3", v)
	}
	if v := metricValue(t, body, "switchboard_index_bytes"); v <= 0 {
		t.Errorf("index bytes %v, want some", v)
	}
	if v, want := metricValue(t, body, "switchboard_index_max_bytes"), float64(h.d.Config().Cache.SizeMB<<20); v != want {
		t.Errorf("index max bytes %v, want cache.size_mb = %v", v, want)
	}
	for _, s := range []string{"switchboard_index_misses_total", "switchboard_index_collisions_total", "switchboard_index_corruptions_total"} {
		metricValue(t, body, s)
	}
	build := regexp.MustCompile(`(?m)^switchboard_build_info\{(.*)\} 1$`).FindStringSubmatch(body)
	if build == nil {
		t.Fatalf("no switchboard_build_info 1 in the scrape")
	}
	for _, l := range []string{`goversion="` + runtime.Version() + `"`, `revision="`, `version="`} {
		if !bytes.Contains([]byte(build[1]), []byte(l)) {
			t.Errorf("switchboard_build_info{%s} lacks %s", build[1], l)
		}
	}
	for _, lvl := range []string{"debug", "info", "warn", "error"} {
		metricValue(t, body, `switchboard_log_dropped_total{level="`+lvl+`"}`)
	}
}

// Every line NewLogger's sampler drops is counted: written lines plus
// counted drops make every call, and a burst of one message (far more than
// 100 within any second) drops some.
func TestLogDropsCounted(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	log, _, err := NewLogger(LogConfig{Level: "info", Format: "json"}, f)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(logDropsCollector{})
	dropped := func(level string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == level {
					return m.GetCounter().GetValue()
				}
			}
		}
		t.Fatalf("no switchboard_log_dropped_total{level=%q}", level)
		return 0
	}
	before, beforeWarn := dropped("info"), dropped("warn")
	const n = 1000
	for i := 0; i < n; i++ {
		log.Info("the same message, over and over")
	}
	if err := log.Sync(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	written := bytes.Count(b, []byte("\n"))
	d := dropped("info") - before
	if d <= 0 || written+int(d) != n {
		t.Fatalf("%d lines written, %v counted dropped: want some dropped and %d in all", written, d, n)
	}
	if w := dropped("warn") - beforeWarn; w != 0 {
		t.Fatalf("warn drops moved by %v for info lines", w)
	}
}

// A daemon on simulated tiers says so at start, naming them (the embedded
// default once started without a word); one on tcp:// servers only does
// not.
func TestWarnsOfSimulatedTiers(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	startDaemon(t, nil, WithLogger(zap.New(core)))
	warned := logs.FilterMessageSnippet("in-process simulators").All()
	if len(warned) != 1 {
		t.Fatalf("%d warnings of simulated tiers at start, want 1: %v", len(warned), logs.All())
	}
	got := warned[0].ContextMap()["tiers"]
	if fmt.Sprint(got) != "[primary-large nextgen backup2-large]" {
		t.Fatalf("warning names tiers %v", got)
	}

	c, err := ParseConfig([]byte("tiers: [{name: a, servers: ['tcp://127.0.0.1:1']}, {name: b, servers: ['tcp://127.0.0.1:2', 'sim://b']}]\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.SimulatedTiers(); len(got) != 1 || got[0] != "b" {
		t.Fatalf("SimulatedTiers() = %v, want [b]", got)
	}
}
