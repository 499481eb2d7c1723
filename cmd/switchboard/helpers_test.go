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
	"switchboard/internal/etcdtest"
	"switchboard/internal/testsupport"
	"switchboard/wire"
)

// daemonBin and telsimBin are the switchboard and telsim binaries, built
// once by TestMain (without -race: the processes under test are the
// production build; the race detector watches the test process).
var daemonBin, telsimBin string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := testsupport.BuildBinaries("switchboard/cmd/switchboard", "switchboard/cmd/telsim")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		daemonBin = filepath.Join(dir, "switchboard")
		telsimBin = filepath.Join(dir, "telsim")
		code := m.Run()
		if code == 0 {
			if err := goleak.Find(etcdtest.IgnoreLeaks()...); err != nil {
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
	logs *testsupport.Buffer
}

// start runs the daemon binary and waits until its socket answers PING.
func start(t *testing.T, bin, sock, data string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"-socket", sock, "-data-dir", data}, extra...)
	cmd := exec.Command(bin, args...)
	logs := &testsupport.Buffer{}
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

// telsimProc is one telsim process, serving until the test ends.
type telsimProc struct {
	listen, control string
	logs            *testsupport.Buffer
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
	tp := &telsimProc{logs: &testsupport.Buffer{}}
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

// crashRun is the daemon binary on a configuration of its own, with one
// ALLOCATE sent and not answered yet: the tests of a SIGKILL between a
// RESERVE and its answer start from it.
type crashRun struct {
	cfgPath, sock, data string
	p                   *proc
	c                   *client.Client
	first               chan error // the first ALLOCATE's outcome
}

// startCrashRun writes cfg to dir/sb.yaml, creates the key space, starts the
// daemon binary and sends req on a client of its socket without waiting.
func startCrashRun(ctx context.Context, t *testing.T, dir, cfg string, req *wire.AllocateRequest) *crashRun {
	t.Helper()
	r := &crashRun{cfgPath: filepath.Join(dir, "sb.yaml"), sock: filepath.Join(dir, "sb.sock"), data: filepath.Join(dir, "data"), first: make(chan error, 1)}
	r.writeConfig(t, cfg)
	initKeys(t, r.cfgPath, r.data)
	r.p = start(t, daemonBin, r.sock, r.data, "-config", r.cfgPath)
	c, err := client.Dial(ctx, r.sock)
	if err != nil {
		t.Fatal(err)
	}
	r.c = c
	go func() {
		_, err := c.Allocate(ctx, req)
		r.first <- err
	}()
	return r
}

// writeConfig replaces the run's configuration file (read at the next start).
func (r *crashRun) writeConfig(t *testing.T, cfg string) {
	t.Helper()
	if err := os.WriteFile(r.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// kill9 kills the daemon and checks that the first ALLOCATE was not
// answered; the client is closed.
func (r *crashRun) kill9(t *testing.T) {
	t.Helper()
	r.p.kill9(t)
	if err := <-r.first; err == nil {
		t.Fatal("the first allocation was answered although the daemon was killed before the server replied")
	}
	r.c.Close()
}

// restart starts the daemon binary again on the run's configuration and
// data directory and returns a new client of it (closed at cleanup).
func (r *crashRun) restart(ctx context.Context, t *testing.T) *client.Client {
	t.Helper()
	start(t, daemonBin, r.sock, r.data, "-config", r.cfgPath)
	c, err := client.Dial(ctx, r.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
