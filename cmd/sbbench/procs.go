package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// errNotReady marks a process that did not print its ready line in time
// or exited before it did.
var errNotReady = errors.New("process not ready")

// How long a started process may take to print its ready line, and how
// long a stopped one may take to exit after SIGTERM before SIGKILL.
const (
	readyTimeout = 15 * time.Second
	stopTimeout  = 5 * time.Second
	pollEvery    = 20 * time.Millisecond
)

// child is one process a scenario started: its output goes to NAME.out
// and NAME.log in the scenario's directory.
type child struct {
	name string
	cmd  *exec.Cmd
	out  string        // stdout file
	log  string        // stderr file
	done chan struct{} // closed when Wait returned
	err  error         // Wait's result, set before done is closed
}

// procRecord is what the report says of a process: its command line, pid
// and how it ended.
type procRecord struct {
	Name string   `json:"name"`
	Args []string `json:"args"`
	PID  int      `json:"pid"`
	Exit string   `json:"exit"` // Wait's result: "ok", "signal: terminated", …
}

// procSet starts a scenario's processes in dir and stops every one of
// them: stop sends SIGTERM, last started first (the daemon before the
// servers it uses), waits up to stopTimeout, then SIGKILLs and reaps
// what is left. Each child also gets SIGKILL from the kernel if sbbench
// itself dies (Pdeathsig, Linux), so a killed sbbench leaves nothing
// behind. A procSet is used by one goroutine.
type procSet struct {
	dir   string
	procs []*child
}

// start runs bin with args in the set's directory. The process is reaped
// by a goroutine of its own, which ends when the process does.
func (s *procSet) start(name, bin string, args ...string) (*child, error) {
	c := &child{
		name: name,
		out:  filepath.Join(s.dir, name+".out"),
		log:  filepath.Join(s.dir, name+".log"),
		done: make(chan struct{}),
	}
	stdout, err := os.Create(c.out)
	if err != nil {
		return nil, err
	}
	defer stdout.Close()
	stderr, err := os.Create(c.log)
	if err != nil {
		return nil, err
	}
	defer stderr.Close()
	c.cmd = exec.Command(bin, args...)
	c.cmd.Dir = s.dir
	c.cmd.Stdout, c.cmd.Stderr = stdout, stderr
	c.cmd.SysProcAttr = childAttr()
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s.procs = append(s.procs, c)
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// line waits until the child printed a line starting with prefix and
// returns the rest of it (telsim's "listen ADDR", "control ADDR").
func (c *child) line(ctx context.Context, prefix string) (string, error) {
	return c.until(ctx, func() (string, bool) {
		b, _ := os.ReadFile(c.out)
		for _, l := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(l, prefix); ok {
				return strings.TrimSpace(rest), true
			}
		}
		return "", false
	})
}

// until polls ready every pollEvery until it reports true, the child
// exits, ctx ends or readyTimeout passes.
func (c *child) until(ctx context.Context, ready func() (string, bool)) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		if v, ok := ready(); ok {
			return v, nil
		}
		select {
		case <-c.done:
			return "", fmt.Errorf("%w: %s exited (%v): %s", errNotReady, c.name, c.err, c.tail())
		case <-ctx.Done():
			return "", fmt.Errorf("%w: %s: %v: %s", errNotReady, c.name, ctx.Err(), c.tail())
		case <-t.C:
		}
	}
}

// tail is the last lines of the child's stderr, for an error message.
func (c *child) tail() string {
	b, _ := os.ReadFile(c.log)
	b = bytes.TrimSpace(b)
	if i := len(b) - 400; i > 0 {
		b = b[i:]
	}
	return strings.ReplaceAll(string(b), "\n", " | ")
}

// stop ends every process (see procSet) and returns their records, in the
// order they were started. It is safe to call more than once.
func (s *procSet) stop() []procRecord {
	for i := len(s.procs) - 1; i >= 0; i-- {
		c := s.procs[i]
		select {
		case <-c.done:
			continue
		default:
		}
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(stopTimeout)
		select {
		case <-c.done:
		case <-t.C:
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		t.Stop()
	}
	recs := make([]procRecord, len(s.procs))
	for i, c := range s.procs {
		exit := "ok"
		if c.err != nil {
			exit = c.err.Error()
		}
		recs[i] = procRecord{Name: c.name, Args: c.cmd.Args, PID: c.cmd.Process.Pid, Exit: exit}
	}
	return recs
}

// rssKB returns a running child's resident set size in KiB (VmRSS of
// /proc/PID/status), or 0 where that is not available.
func (c *child) rssKB() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb
		}
	}
	return 0
}
