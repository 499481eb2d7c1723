package main

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// The real binary answers -h with its usage on stdout and exit 0 (it once
// exited 2 with the flag package's stock text), and -version with one line:
// the module version, the VCS revision the go command recorded, the Go
// version.
func TestHelpAndVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon binary")
	}
	for _, args := range [][]string{{"-h"}, {"-help"}} {
		var out, errb bytes.Buffer
		cmd := exec.Command(daemonBin, args...)
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil || errb.Len() != 0 {
			t.Fatalf("switchboard %v: %v, stderr %q", args, err, errb.String())
		}
		for _, want := range []string{"usage: switchboard", "-check-config", "-init-keys", "-version", "Exit status"} {
			if !strings.Contains(out.String(), want) {
				t.Fatalf("switchboard %v: usage lacks %q:\n%s", args, want, out.String())
			}
		}
	}
	out, err := exec.Command(daemonBin, "-version").Output()
	if err != nil {
		t.Fatalf("switchboard -version: %v", err)
	}
	line := string(out)
	if !strings.HasPrefix(line, "switchboard ") || !strings.Contains(line, " revision ") || !strings.Contains(line, " go1.") || strings.Count(line, "\n") != 1 {
		t.Fatalf("switchboard -version: %q", line)
	}
	// A flag mistake is still exit 2, one line on stderr.
	var errb bytes.Buffer
	cmd := exec.Command(daemonBin, "-bogus")
	cmd.Stderr = &errb
	var ee *exec.ExitError
	if err := cmd.Run(); !errors.As(err, &ee) || ee.ExitCode() != 2 || strings.Count(errb.String(), "\n") != 1 {
		t.Fatalf("switchboard -bogus: %v, stderr %q", err, errb.String())
	}
}
