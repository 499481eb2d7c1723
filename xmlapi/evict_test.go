package xmlapi

import (
	"net"
	"testing"
	"time"

	"switchboard/daemon"
	"switchboard/wire"
)

// TestDaemonConnectionFloodCostsNoFailures: another process on the
// daemon's socket churns connections (connect, PING, next) while a host
// creates meetings through the XML front end: the host must see no
// failure. At server.max_conns each new connection evicts one; a redial of
// the front end refused at accept still fails its call with 000035 (9 of
// 530 here, 50 of 717 before eviction skipped connections with a request
// in transit): skipped until fixed, see the skip's reason.
func TestDaemonConnectionFloodCostsNoFailures(t *testing.T) {
	t.Skip("known failure, open in issue 11 (adversarial review 2026-12-07): a connection churn on the daemon's socket still costs the front end a few 000035 (9 of 530, down from 50 of 717): a reconnect refused at max_conns fails the call; unskip with the fix")
	rd := startDaemon(t, shortTempDir(t), func(c *daemon.Config) {
		c.Server.MaxConns = 8
		c.Server.IdleTimeout = time.Hour
	})
	fe := startFrontEnd(t, testConfig(t), dialDaemon(t, rd.cfg.Socket))
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
			c, err := net.Dial("unix", rd.cfg.Socket)
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
