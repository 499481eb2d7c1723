package main

import (
	"bytes"
	"strings"
	"testing"
)

// Issue 15 point 5 (adversarial review): -version on every binary, -h
// exits 0 everywhere. peerbench is one of the repository's binaries
// (cmd/peerbench) and takes neither: both are an "unknown role", exit 2.
func TestAdv15HelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"-help"}, {"--help"}} {
		var out, errb bytes.Buffer
		if c := run(args, &out, &errb); c != 0 || out.Len() == 0 {
			t.Errorf("peerbench %v: exit %d, stdout %q, stderr %q; want exit 0 and a usage on stdout", args, c, out.String(), errb.String())
		}
	}
	var out, errb bytes.Buffer
	c := run([]string{"-version"}, &out, &errb)
	if s := out.String(); c != 0 || !strings.HasPrefix(s, "peerbench ") || !strings.Contains(s, " go1.") {
		t.Errorf("peerbench -version: exit %d, stdout %q, stderr %q; want exit 0 and one line naming the program and Go", c, s, errb.String())
	}
}
