package testsupport

import (
	"errors"
	"os"
	"os/exec"
	"testing"
)

// ShortTempDir is a temporary directory with a short path, removed when the
// test ends: a Unix socket's path must fit in 108 bytes, which t.TempDir()
// under a long test name may not.
func ShortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// BuildBinaries builds the main packages pkgs (import paths, e.g.
// "switchboard/cmd/telsim") into a new temporary directory, without -race:
// the processes an end-to-end test runs are the production build, and the
// race detector watches the test process. Each binary is named after the
// last element of its path. The caller removes dir.
func BuildBinaries(pkgs ...string) (dir string, err error) {
	dir, err = os.MkdirTemp("", "sbbin")
	if err != nil {
		return "", err
	}
	out, err := exec.Command("go", append([]string{"build", "-o", dir + "/"}, pkgs...)...).CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		return "", errors.New("go build: " + err.Error() + ": " + string(out))
	}
	return dir, nil
}
