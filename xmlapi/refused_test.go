package xmlapi

import (
	"net"
	"testing"
	"time"

	"switchboard/daemon"
	"switchboard/internal/testsupport"
)

// TestDaemonRefusingIsBusyRetry: a daemon that refuses the front end's
// connections (at server.max_conns or max_conns_per_uid: a GOODBYE frame,
// OVERLOADED, then closed unread) is busy, not down. The Go client sends the
// call again until backend.request_timeout; the front end then answers
// 069903 "overloaded, retry later" (Retry-After), never 000035 "not
// responding". Before, the refusal's error did not carry OVERLOADED (and
// was often the write's broken pipe, or the client gave up after 64 tries),
// so a WebEx client was told the service was not responding.
func TestDaemonRefusingIsBusyRetry(t *testing.T) {
	rd := startDaemon(t, testsupport.ShortTempDir(t), func(c *daemon.Config) { c.Server.MaxConnsPerUID = 2 })
	// Two idle connections of this uid hold its slots: the front end's
	// are refused.
	for range 2 {
		nc, err := net.Dial("unix", rd.Socket())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
	}
	cfg := testConfig(t)
	cfg.Backend.RequestTimeout = time.Second
	fe := startFrontEnd(t, cfg, dialDaemon(t, rd.Socket()))
	mustFail(t, post(t, fe, readFile(t, "seed_request.xml")), ExcOverloaded, "overloaded")
}
