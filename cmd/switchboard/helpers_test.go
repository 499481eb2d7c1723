package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"switchboard/client"
)

// daemonBin and telsimBin are the switchboard and telsim binaries, built
// once by TestMain (without -race: the processes under test are the
// production build; the race detector watches the test process).
var daemonBin, telsimBin string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "sbbin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		daemonBin = filepath.Join(dir, "switchboard")
		telsimBin = filepath.Join(dir, "telsim")
		for _, b := range []struct{ out, pkg string }{{daemonBin, "."}, {telsimBin, "../telsim"}} {
			if out, err := exec.Command("go", "build", "-o", b.out, b.pkg).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", b.pkg, err, out)
				return 1
			}
		}
		code := m.Run()
		if code == 0 {
			if err := goleak.Find(); err != nil {
				fmt.Fprintln(os.Stderr, "goroutine leak:", err)
				return 1
			}
		}
		return code
	}())
}

// proc is one run of the daemon binary.
type proc struct {
	cmd  *exec.Cmd
	done chan error // Wait's result; put back by whoever takes it
	logs *lockedWriter
}

// start runs the daemon binary and waits until its socket answers PING.
func start(t *testing.T, bin, sock, data string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"-socket", sock, "-data-dir", data}, extra...)
	cmd := exec.Command(bin, args...)
	logs := &lockedWriter{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan error, 1), logs: logs}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := pingOnce(sock)
		if err == nil {
			return p
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("daemon exited at start: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not answering after 10s: %v\n%s", err, logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// kill9 sends SIGKILL and waits for the process to be gone.
func (p *proc) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-p.done
	p.done <- err // for the cleanup's receive
}

// shortDir is a temporary directory with a short path: a Unix socket path
// must fit in 108 bytes, which t.TempDir() under a long test name may not.
func shortDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "sbcrash")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// telsimProc is one telsim process, serving until the test ends.
type telsimProc struct {
	listen, control string
	logs            *lockedWriter
}

// startTelsimProc runs the telsim binary with args (plus -listen and
// -control on loopback port 0), reads the bound addresses it prints, and
// stops it with SIGTERM at cleanup (SIGKILL if it does not exit in 10 s).
func startTelsimProc(t *testing.T, args ...string) *telsimProc {
	t.Helper()
	cmd := exec.Command(telsimBin, append([]string{"-listen", "127.0.0.1:0", "-control", "127.0.0.1:0"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	tp := &telsimProc{logs: &lockedWriter{}}
	cmd.Stderr = tp.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// One goroutine reads stdout to its end, then reaps the process (Wait
	// must not run before the pipe's reader is done).
	lines := make(chan string, 8)
	exited := make(chan struct{})
	var waitErr error
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // telsim prints nothing after its addresses
			}
		}
		_, _ = io.Copy(io.Discard, out)
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	timeout := time.After(10 * time.Second)
	for tp.listen == "" || tp.control == "" {
		var l string
		select {
		case l = <-lines:
		case <-exited:
			t.Fatalf("telsim %q exited at start: %v\n%s", args, waitErr, tp.logs.String())
		case <-timeout:
			t.Fatalf("telsim %q printed no addresses in 10s\n%s", args, tp.logs.String())
		}
		k, v, _ := strings.Cut(l, " ")
		switch k {
		case "listen":
			tp.listen = v
		case "control":
			tp.control = v
		default:
			t.Fatalf("telsim printed %q", l)
		}
	}
	return tp
}

// pingOnce dials the daemon's socket and sends one PING, within 200 ms:
// nil once the daemon serves.
func pingOnce(sock string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	c, err := client.Dial(ctx, sock)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Ping(ctx)
}
