package xmlapi

import (
	"net"
	"testing"
	"time"

	"switchboard/daemon"
	"switchboard/internal/testsupport"
	"switchboard/wire"
)

// TestDaemonConnectionFloodCostsNoFailures: another process on the
// daemon's socket churns connections (connect, PING, next) while a host
// creates meetings through the XML front end: the host must see no
// failure. At server.max_conns each new connection evicts one; a redial of
// the front end refused at accept is told so (GOODBYE) and the client sends
// the call again after a backoff. Before: 50 of 717 creates failed with
// 000035, then 9 of 530 once eviction skipped connections with a request
// in transit (a refused redial failed its call).
func TestDaemonConnectionFloodCostsNoFailures(t *testing.T) {
	rd := startDaemon(t, testsupport.ShortTempDir(t), func(c *daemon.Config) {
		c.Server.MaxConns = 8
		c.Server.IdleTimeout = time.Hour
	})
	fe := startFrontEnd(t, testConfig(t), dialDaemon(t, rd.Socket()))
	seed := readFile(t, "seed_request.xml")
	mustSucceed(t, post(t, fe, seed)) // warms the password cache
	stop, flooded := make(chan struct{}), make(chan int)
	go func() {
		var ring []net.Conn
		n := 0
		defer func() {
			for _, c := range ring {
				c.Close()
			}
			flooded <- n
		}()
		f, _ := wire.AppendFrame(nil, wire.Header{Op: wire.OpPing, ID: 1}, nil, wire.DefaultMaxFrame)
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := net.Dial("unix", rd.Socket())
			if err != nil {
				continue
			}
			c.SetDeadline(time.Now().Add(time.Second))
			if _, err := c.Write(f); err == nil {
				wire.ReadFrame(c, nil, wire.DefaultMaxFrame)
			}
			n++
			if ring = append(ring, c); len(ring) > 32 {
				ring[0].Close()
				ring = ring[1:]
			}
		}
	}()
	good := clientFrom(t, "127.0.0.2", 1)
	byID := map[string]int{}
	calls := 0
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); calls++ {
		a, err := send(good, fe.url, seed)
		switch {
		case err != nil:
			byID["http error"]++
		case a.result != "SUCCESS":
			byID[a.exception]++
		}
	}
	close(stop)
	n := <-flooded
	t.Logf("%d connections churned on the daemon's socket; the host's %d creates: failures %v", n, calls, byID)
	if len(byID) > 0 {
		t.Errorf("a connection flood on the daemon's socket failed %v of the host's %d creates", byID, calls)
	}
}
