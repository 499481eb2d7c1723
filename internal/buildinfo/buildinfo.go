package buildinfo

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Unknown stands for a fact the binary does not record: a test binary has
// no module version, a build outside a git checkout (or with -buildvcs=false)
// no revision.
const Unknown = "unknown"

// Info is what a binary knows of its own build.
type Info struct {
	// Version is the main module's version: a tag such as v1.2.0, a
	// pseudo-version, or "(devel)" for a build of a working tree.
	Version string
	// Revision is the VCS commit the binary was built from.
	Revision string
	// Modified is true when the working tree had uncommitted changes.
	Modified bool
	// Time is the commit's time (RFC 3339), or Unknown.
	Time string
	// GoVersion is the toolchain that built the binary (go1.26.8).
	GoVersion string
}

// Read returns the running binary's build facts; any the binary does not
// record is Unknown (GoVersion falls back to runtime.Version).
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	return fromBuildInfo(bi, ok)
}

func fromBuildInfo(bi *debug.BuildInfo, ok bool) Info {
	i := Info{Version: Unknown, Revision: Unknown, Time: Unknown, GoVersion: runtime.Version()}
	if !ok || bi == nil {
		return i
	}
	if bi.Main.Version != "" {
		i.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		i.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if s.Value != "" {
				i.Revision = s.Value
			}
		case "vcs.modified":
			i.Modified = s.Value == "true"
		case "vcs.time":
			if s.Value != "" {
				i.Time = s.Value
			}
		}
	}
	return i
}

// RevisionLabel is Revision with "-modified" appended for a build of a tree
// with uncommitted changes: the one string a metric label or a log field
// carries.
func (i Info) RevisionLabel() string {
	if i.Modified {
		return i.Revision + "-modified"
	}
	return i.Revision
}

// String is the -version line without the program name:
// "v1.2.0 revision 4f80eee… (modified) committed 2026-12-07T16:00:00Z go1.26.8".
func (i Info) String() string {
	s := i.Version + " revision " + i.Revision
	if i.Modified {
		s += " (modified)"
	}
	if i.Time != Unknown {
		s += " committed " + i.Time
	}
	return s + " " + i.GoVersion
}

// Print writes prog's -version line to w: "switchboard v1.2.0 revision …".
func Print(w io.Writer, prog string) {
	fmt.Fprintf(w, "%s %s\n", prog, Read())
}
