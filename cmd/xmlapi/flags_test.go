package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// -h prints a real usage on stdout and exits 0 (it once exited 2 with the
// flag package's stock text on stderr); -version prints one line naming
// the program and the Go toolchain. Neither needs a daemon.
func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"-help"}} {
		var out, errb bytes.Buffer
		if c := run(context.Background(), args, nil, &out, &errb, nil); c != 0 || errb.Len() != 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, c, errb.String())
		}
		for _, want := range []string{"usage: xmlapi", "-check-config", "-listen", "-version", "Exit status"} {
			if !strings.Contains(out.String(), want) {
				t.Fatalf("%v: usage lacks %q:\n%s", args, want, out.String())
			}
		}
	}
	var out, errb bytes.Buffer
	if c := run(context.Background(), []string{"-version"}, nil, &out, &errb, nil); c != 0 || errb.Len() != 0 {
		t.Fatalf("-version: exit %d, stderr %q", c, errb.String())
	}
	if s := out.String(); !strings.HasPrefix(s, "xmlapi ") || !strings.Contains(s, " go1.") || strings.Count(s, "\n") != 1 {
		t.Fatalf("-version: %q", s)
	}
}
