package xmlapi

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"switchboard/internal/testsupport"
)

// BenchmarkParse: the seed request document → request (no auth, no
// backend).
func BenchmarkParse(b *testing.B) {
	seed := readFile(b, "seed_request.xml")
	b.SetBytes(int64(len(seed)))
	b.ReportAllocs()
	for b.Loop() {
		var req request
		if f := parseRequest(seed, 32, &req); f != nil {
			b.Fatal(f)
		}
	}
}

// BenchmarkRenderGet: a stored meeting (the seed's) → the Get response.
func BenchmarkRenderGet(b *testing.B) {
	var req request
	if f := parseRequest(readFile(b, "seed_request.xml"), 32, &req); f != nil {
		b.Fatal(f)
	}
	buf := make([]byte, 0, 8192)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendGetResponse(buf[:0], "PRIMARY", 123456789, &req.m, &fakeBridge)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkParseRender is the front end's own work per Create, without
// HTTP or the daemon: parse the seed request, authenticate (cached, as in
// steady state), validate, encode the meeting record, build the spec, and
// render the response, against an in-memory backend.
func BenchmarkParseRender(b *testing.B) {
	h, err := NewHandler(testConfig(b), newFakeBackend())
	if err != nil {
		b.Fatal(err)
	}
	seed := readFile(b, "seed_request.xml")
	ctx := context.Background()
	out := make([]byte, 0, 4096)
	var oc outcome
	out = h.serve(ctx, seed, "", netip.Addr{}, out[:0], &oc) // warms the password cache
	if oc.fault != nil {
		b.Fatal(oc.fault)
	}
	b.SetBytes(int64(len(seed)))
	b.ReportAllocs()
	for b.Loop() {
		oc = outcome{}
		out = h.serve(ctx, seed, "", netip.Addr{}, out[:0], &oc)
	}
	if oc.fault != nil {
		b.Fatal(oc.fault)
	}
}

// BenchmarkCreateFullStack is one seed Create through the whole stack:
// HTTP over loopback TCP, the front end, the client, the daemon's Unix
// socket, the daemon, and an in-process telephony server. Sequential: it
// measures latency, not throughput.
func BenchmarkCreateFullStack(b *testing.B) {
	rd := startDaemon(b, testsupport.ShortTempDir(b), func(c *daemonConfig) {
		for i := range c.Simulators {
			c.Simulators[i].Capacity = 10_000_000
		}
	})
	fe := startFrontEnd(b, testConfig(b), dialDaemon(b, rd.Socket()))
	seed := readFile(b, "seed_request.xml")
	post := func() {
		resp, err := fe.http.Post(fe.url, "application/xml", bytes.NewReader(seed))
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !regexpKey.Match(body) {
			b.Fatalf("HTTP %d %s", resp.StatusCode, body)
		}
	}
	post() // warm the password cache and the connections
	b.ReportAllocs()
	for b.Loop() {
		post()
	}
}

// BenchmarkMetricsRecord is what WithMetrics adds to a successful request:
// the in-flight gauge up and down, a counter and a histogram observation,
// all on children resolved at NewMetrics (no allocation, no lock).
func BenchmarkMetricsRecord(b *testing.B) {
	m := NewMetrics()
	oc := outcome{op: opCreate}
	b.ReportAllocs()
	for b.Loop() {
		m.inFlight.Inc()
		m.record(&oc, 1500*time.Microsecond)
		m.inFlight.Dec()
	}
}
