package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"switchboard/bench/fakedaemon"
	"switchboard/wire"
)

func TestProgressOnlyOnATerminal(t *testing.T) {
	if p := newProgress(&bytes.Buffer{}, ""); p != nil {
		t.Fatal("progress on a bytes.Buffer")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if p := newProgress(w, ""); p != nil {
		t.Fatal("progress on a pipe")
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	if p := newProgress(devnull, ""); p != nil {
		t.Fatal("progress on /dev/null (a character device, not a terminal)")
	}
	var nilp *progress
	nilp.start(time.Now(), time.Second) // nil-safe, as runLoad uses it
	nilp.stop()
}

func TestProgressCountsAndErases(t *testing.T) {
	// A file: safe for the progress goroutine's writes and the test's.
	out, err := os.Create(filepath.Join(t.TempDir(), "progress"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	p := &progress{w: out, label: "steady"}
	from := time.Now()
	p.start(from, 2*time.Second)
	p.allocation(&outcome{intended: from.Add(-time.Millisecond)}) // warmup: not counted
	p.allocation(&outcome{intended: from})
	p.allocation(&outcome{intended: from, err: wire.StatusOverloaded})
	p.allocation(&outcome{intended: from, err: errClientBacklog})
	p.draw()
	p.stop()
	p.stop() // idempotent
	s := string(mustRead(t, out.Name()))
	if !strings.Contains(s, "steady  ") || !strings.Contains(s, "ok 1  overloaded 1  errors 1") {
		t.Fatalf("progress output %q", s)
	}
	if !strings.HasSuffix(s, "\r\033[K") {
		t.Fatalf("progress line not erased at the end: %q", s)
	}
}

// TestRunWritesHgrm: -hgrm writes the distribution of exactly the ok
// allocations the summary counts.
func TestRunWritesHgrm(t *testing.T) {
	fd := fakedaemon.StartTB(t, fakedaemon.Config{})
	path := filepath.Join(t.TempDir(), "run.hgrm")
	r := sbbench(t, bounded(t), "-socket", fd.Path(), "-rate", "1000", "-duration", "200ms", "-json", "-hgrm", path)
	if r.code != exitOK || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	s := decodeSummary(t, r.stdout)
	vals, _ := readHgrm(t, path)
	m := regexp.MustCompile(`Total count\s*=\s*(\d+)`).FindStringSubmatch(string(mustRead(t, path)))
	if m == nil {
		t.Fatal("no total count in the .hgrm footer")
	}
	if n, _ := strconv.ParseInt(m[1], 10, 64); n != s.OK || n == 0 {
		t.Fatalf(".hgrm total count %d, summary ok %d", n, s.OK)
	}
	if got := vals[len(vals)-1] * 1000; got < s.Max*0.99 || got > s.Max*1.01 {
		t.Fatalf(".hgrm max %.1f µs, summary max %.1f µs", got, s.Max)
	}
}
