package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestJSONLineShape(t *testing.T) {
	var buf bytes.Buffer
	l, lvl, err := New(Config{Service: "unit", Level: "warn"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hidden")
	l.Warn("shown", zap.Int("n", 1))
	lvl.SetLevel(zap.InfoLevel)
	l.Info("now shown")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), buf.String())
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatal(err)
	}
	if m["svc"] != "unit" || m["msg"] != "shown" || m["n"] != 1.0 || m["caller"] == nil || m["ts"] == nil {
		t.Fatalf("line %v", m)
	}
}

func TestConsoleAndBadLevel(t *testing.T) {
	var buf bytes.Buffer
	l, _, err := New(Config{Format: "console"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hello")
	if strings.HasPrefix(buf.String(), "{") || !strings.Contains(buf.String(), "INFO") {
		t.Fatalf("not console text: %q", buf.String())
	}
	buf.Reset()
	// auto on a buffer (not a terminal) is JSON.
	l, _, _ = New(Config{Format: "auto"}, &buf)
	l.Info("hello")
	if !strings.HasPrefix(buf.String(), "{") {
		t.Fatalf("auto on a buffer: %q", buf.String())
	}
	if _, _, err := New(Config{Level: "loud"}, &buf); err == nil {
		t.Fatal("level loud accepted")
	}
}

func TestSampledCountsDrops(t *testing.T) {
	var buf bytes.Buffer
	dropped := 0
	l, _, err := New(Config{}, &buf, Sampled(func(_ zapcore.Entry, d zapcore.SamplingDecision) {
		if d&zapcore.LogDropped != 0 {
			dropped++
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	for range 300 {
		l.Info("storm")
	}
	written := strings.Count(buf.String(), "\n")
	// Within one second: 100, then every 100th of the next 200. A slow
	// machine crossing a second boundary only writes more.
	if written+dropped != 300 || written < 102 {
		t.Fatalf("written %d + dropped %d, want 300 with at least 102 written", written, dropped)
	}
}
