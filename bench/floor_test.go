package bench

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"switchboard/internal/testsupport"
	"switchboard/wire"
)

// netpoll's pollers and gopool's workers (started by the in-process daemon
// of BenchmarkAllocate) are process-wide by design; nothing else may leak.
func TestMain(m *testing.M) { testsupport.VerifyTestMainNetpoll(m) }

// warmupRoundTrips are run, untimed, before any measurement: they fault in
// buffers and let the scheduler settle the two goroutines.
const warmupRoundTrips = 200

// hop is one of the two network hops of an allocation.
type hop struct {
	network  string
	request  func(testing.TB) []byte
	response func(testing.TB) []byte
}

var (
	// frontEndHop: front end ↔ daemon, ALLOCATE over a Unix socket.
	frontEndHop = hop{"unix", allocateRequestFrame, allocateResponseFrame}
	// telephonyHop: daemon ↔ telephony server, RESERVE over TCP loopback.
	telephonyHop = hop{"tcp", reserveRequestFrame, bridgeResponseFrame}
)

// startHop starts the echo server of h and returns a warmed-up client.
func startHop(tb testing.TB, h hop) *echoClient {
	tb.Helper()
	s := startEcho(tb, h.network, h.response(tb))
	c := dialEcho(tb, s, h.request(tb))
	for range warmupRoundTrips {
		if err := c.roundTrip(); err != nil {
			tb.Fatal(err)
		}
	}
	return c
}

// quantile returns the q-quantile (0 ≤ q ≤ 1) of durs, sorting durs.
func quantile(durs []time.Duration, q float64) time.Duration {
	if len(durs) == 0 {
		return 0
	}
	slices.Sort(durs)
	i := int(q * float64(len(durs)-1))
	return durs[i]
}

// reportLatency adds p50-ns and p99-ns metrics computed from per-op timings.
func reportLatency(b *testing.B, prefix string, durs []time.Duration) {
	b.ReportMetric(float64(quantile(durs, 0.50).Nanoseconds()), prefix+"p50-ns")
	b.ReportMetric(float64(quantile(durs, 0.99).Nanoseconds()), prefix+"p99-ns")
}

func benchFloor(b *testing.B, h hop) {
	c := startHop(b, h)
	durs := make([]time.Duration, b.N) // preallocated: the loop allocates nothing
	b.ReportAllocs()
	b.ResetTimer()
	err := timeRoundTrips(durs, c.roundTrip)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	reportLatency(b, "", durs)
}

// BenchmarkFloorUnixEcho is the front-end term of the floor: a raw
// ALLOCATE-sized request and ALLOCATE-response-sized reply over a Unix
// socket, one connection, one request at a time. ns/op is the mean RTT.
func BenchmarkFloorUnixEcho(b *testing.B) { benchFloor(b, frontEndHop) }

// BenchmarkFloorTCPEcho is the telephony term of the floor: a raw
// RESERVE-sized request and Bridge-sized reply over TCP loopback.
func BenchmarkFloorTCPEcho(b *testing.B) { benchFloor(b, telephonyHop) }

// floor measures both terms with n round trips each, interleaved in
// batches so that a noisy moment hits both alike, and returns their p50s.
func floor(tb testing.TB, n int) (uds, tcp time.Duration) {
	tb.Helper()
	u, t := startHop(tb, frontEndHop), startHop(tb, telephonyHop)
	ud, td := make([]time.Duration, n), make([]time.Duration, n)
	const batch = 500
	for i := 0; i < n; i += batch {
		j := min(i+batch, n)
		if err := timeRoundTrips(ud[i:j], u.roundTrip); err != nil {
			tb.Fatal(err)
		}
		if err := timeRoundTrips(td[i:j], t.roundTrip); err != nil {
			tb.Fatal(err)
		}
	}
	return quantile(ud, 0.5), quantile(td, 0.5)
}

// TestFloorEcho checks that the echo pair moves the right frames: the reply
// a client reads is the canned reply with the request's id, on both hops.
func TestFloorEcho(t *testing.T) {
	for _, h := range []hop{frontEndHop, telephonyHop} {
		t.Run(h.network, func(t *testing.T) {
			c := startHop(t, h)
			want := h.response(t)
			for range 3 {
				if err := c.roundTrip(); err != nil {
					t.Fatal(err)
				}
				hd, n, err := wire.ParseHeader(c.buf, maxEchoFrame)
				if err != nil || n != len(want) || hd.ID != c.id || !hd.IsResponse() {
					t.Fatalf("reply header %+v, %d bytes (want %d), err %v", hd, n, len(want), err)
				}
				if !bytes.Equal(c.buf[wire.HeaderSize:], want[wire.HeaderSize:]) {
					t.Fatal("reply payload differs from the canned reply")
				}
			}
		})
	}
}

func TestFloorMeasures(t *testing.T) {
	uds, tcp := floor(t, 50)
	if uds <= 0 || tcp <= 0 {
		t.Fatalf("floor terms uds=%v tcp=%v, want both positive", uds, tcp)
	}
}

func TestQuantile(t *testing.T) {
	d := []time.Duration{9, 1, 5, 3, 7, 2, 8, 4, 6, 10}
	if got := quantile(d, 0.5); got != 5 {
		t.Fatalf("p50 = %v, want 5", got)
	}
	if got := quantile(d, 0.99); got != 9 {
		t.Fatalf("p99 = %v, want 9 (nearest rank below)", got)
	}
	if got := quantile(d, 1); got != 10 {
		t.Fatalf("p100 = %v, want 10", got)
	}
	if got := quantile(nil, 0.5); got != 0 {
		t.Fatalf("empty = %v", got)
	}
}
