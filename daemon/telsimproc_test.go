package daemon

import (
	"bufio"
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"switchboard/telsim"
)

// telsimBin builds cmd/telsim into the test's temporary directory (the
// build cache makes every build after the first a link).
func telsimBin(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the telsim binary")
	}
	bin := filepath.Join(t.TempDir(), "telsim")
	out, err := exec.Command("go", "build", "-o", bin, "switchboard/cmd/telsim").CombinedOutput()
	if err != nil {
		t.Fatalf("go build telsim: %v\n%s", err, out)
	}
	return bin
}

// telsimProc is one telsim process: its telephony address (tcp://…) and a
// client of its control API.
type telsimProc struct {
	addr string
	ctl  *telsim.ControlClient
}

// startTelsimProc runs the telsim binary on loopback ports with a control
// API, waits for it to print its addresses, and stops it (SIGKILL, then
// wait) at cleanup.
func startTelsimProc(t *testing.T, bin, tier, id string) *telsimProc {
	t.Helper()
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0", "-control", "127.0.0.1:0", "-tier", tier, "-id", id, "-log-level", "warn")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	var logMu sync.Mutex
	cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	lines := make(chan string, 4)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	p := &telsimProc{}
	timeout := time.After(30 * time.Second)
	for p.addr == "" || p.ctl == nil {
		select {
		case l, ok := <-lines:
			if !ok {
				logMu.Lock()
				defer logMu.Unlock()
				t.Fatalf("telsim %s exited early: %s", id, logs.String())
			}
			k, v, _ := strings.Cut(l, " ")
			switch k {
			case "listen":
				p.addr = "tcp://" + v
			case "control":
				p.ctl = telsim.NewControlClient(v, nil)
			}
		case <-timeout:
			t.Fatalf("telsim %s did not print its addresses", id)
		}
	}
	return p
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (p *telsimProc) stats(t *testing.T) telsim.Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := p.ctl.Stats(ctx)
	if err != nil {
		t.Fatalf("telsim stats: %v", err)
	}
	return st
}

func (p *telsimProc) fault(t *testing.T, f telsim.Fault) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.ctl.SetFault(ctx, f); err != nil {
		t.Fatalf("telsim fault: %v", err)
	}
}
