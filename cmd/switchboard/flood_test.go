package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"switchboard/internal/testsupport"
	"switchboard/wire"
)

// TestPingingFloodCostsGoodClientNoErrors: TestBadClients' flood is of
// idle connections, which eviction takes first. Here each flood connection
// sends one PING (and reads the PONG), so it looks as recent as the
// well-behaved client's; eviction must still not cost the client an error.
// Before the fix it took the client's connection with a request written and
// not yet read (connection lost, outcome unknown). The real binary,
// max_conns 64, max_conns_per_uid 0 (the default), for 8 seconds.
func TestPingingFloodCostsGoodClientNoErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon binary")
	}
	dir := testsupport.ShortTempDir(t)
	sock := filepath.Join(dir, "sb.sock")
	cfgPath := filepath.Join(dir, "sb.yaml")
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(limitsConfig("net", filepath.Join(dir, "m.sock")), "server:\n", "server:\n  max_conns: 64\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	initKeys(t, cfgPath, filepath.Join(dir, "data"))
	startLogged(t, sock, filepath.Join(dir, "data"), "-config", cfgPath)
	good := startGoodClient(t, sock)
	defer good.stop()
	time.Sleep(time.Second)
	quiet := good.window()
	ping, _ := wire.AppendFrame(nil, wire.Header{Op: wire.OpPing, ID: 1}, nil, wire.DefaultMaxFrame)
	var ring []net.Conn
	defer func() {
		for _, c := range ring {
			c.Close()
		}
	}()
	// Each round opens one more connection (at the bound it evicts) and
	// PINGs one held connection, so every connection the attacker holds
	// stays as recent as the good client's.
	alive := func(c net.Conn) bool {
		c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write(ping); err != nil {
			return false
		}
		_, _, _, err := wire.ReadFrame(c, nil, wire.DefaultMaxFrame)
		return err == nil
	}
	opened := 0
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		opened++
		if alive(c) {
			ring = append(ring, c)
		} else {
			c.Close()
		}
		for range 2 {
			if len(ring) > 0 {
				c := ring[0]
				ring = ring[1:]
				if alive(c) {
					ring = append(ring, c)
				} else {
					c.Close()
				}
			}
		}
	}
	w := good.window()
	t.Logf("quiet: %s; during a flood of %d pinging connections (%d held at the end): %s", quiet, opened, len(ring), w)
	if w.errs > 0 {
		t.Errorf("the well-behaved client saw %d errors during the flood; first: %v", w.errs, w.first)
	}
}
