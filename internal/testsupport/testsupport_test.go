package testsupport

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) { VerifyTestMainNetpoll(m) }

func TestPoll(t *testing.T) {
	n := 0
	if !Poll(time.Minute, nil, func() bool { n++; return n == 3 }) || n != 3 {
		t.Fatalf("Poll held after %d calls, want 3", n)
	}
	steps := 0
	if !Poll(time.Minute, func() { steps++ }, func() bool { return steps == 5 }) {
		t.Fatal("Poll with step did not hold")
	}
	if Poll(time.Millisecond, nil, func() bool { return false }) {
		t.Fatal("Poll of a condition that never holds returned true")
	}
}

func TestBufferConcurrentWrites(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				b.Write([]byte("x"))
			}
		}()
	}
	wg.Wait()
	if got := len(b.String()); got != 800 {
		t.Fatalf("%d bytes, want 800", got)
	}
	b.Reset()
	if b.String() != "" {
		t.Fatal("Reset left bytes")
	}
}

func TestShortTempDirFitsASocketPath(t *testing.T) {
	var dir string
	t.Run("inner test with a long name that t.TempDir would put in the path", func(t *testing.T) {
		dir = ShortTempDir(t)
		if p := filepath.Join(dir, "switchboard.sock"); len(p) >= 108 {
			t.Fatalf("socket path %q is %d bytes", p, len(p))
		}
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("directory left after the test: %v", err)
	}
}

func TestServeClosesEverythingAtTheEnd(t *testing.T) {
	var client net.Conn
	t.Run("serve", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		Serve(t, ln, func(nc net.Conn) { _, _ = io.Copy(nc, nc) })
		client, err = net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("echo %q, %v", buf, err)
		}
	})
	defer client.Close()
	// The server side was closed when the subtest ended: EOF, not a hang.
	if err := client.SetReadDeadline(time.Now().Add(WaitBound)); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after the test ended: %v, want EOF", err)
	}
}
