package buildinfo

import (
	"bytes"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "switchboard", Version: "v1.2.0"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "4f80eee0123456789abcdef0123456789abcdef0"},
			{Key: "vcs.time", Value: "2026-12-07T16:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	i := fromBuildInfo(bi, true)
	want := Info{Version: "v1.2.0", Revision: "4f80eee0123456789abcdef0123456789abcdef0", Modified: true,
		Time: "2026-12-07T16:00:00Z", GoVersion: "go1.26.8"}
	if i != want {
		t.Fatalf("got %+v, want %+v", i, want)
	}
	if got, w := i.String(), "v1.2.0 revision 4f80eee0123456789abcdef0123456789abcdef0 (modified) committed 2026-12-07T16:00:00Z go1.26.8"; got != w {
		t.Errorf("String() = %q, want %q", got, w)
	}
	if got := i.RevisionLabel(); got != "4f80eee0123456789abcdef0123456789abcdef0-modified" {
		t.Errorf("RevisionLabel() = %q", got)
	}
}

// A binary without build information (or a build outside a checkout)
// still answers, with Unknown where it knows nothing.
func TestFromBuildInfoMissing(t *testing.T) {
	for _, bi := range []*debug.BuildInfo{nil, {}} {
		i := fromBuildInfo(bi, bi != nil)
		if i.Version != Unknown || i.Revision != Unknown || i.Modified || i.GoVersion != runtime.Version() {
			t.Errorf("%+v: got %+v", bi, i)
		}
		if got, w := i.String(), "unknown revision unknown "+runtime.Version(); got != w {
			t.Errorf("String() = %q, want %q", got, w)
		}
	}
}

func TestPrint(t *testing.T) {
	var b bytes.Buffer
	Print(&b, "switchboard")
	line := b.String()
	if !strings.HasPrefix(line, "switchboard ") || !strings.HasSuffix(line, runtime.Version()+"\n") || strings.Count(line, "\n") != 1 {
		t.Fatalf("Print wrote %q", line)
	}
}
