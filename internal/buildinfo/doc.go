// Package buildinfo tells which build of switchboard is running: the module
// version, the VCS revision and whether the tree had uncommitted changes, and
// the Go version, as the Go toolchain recorded them in the binary
// (runtime/debug.ReadBuildInfo).
//
// Why a package: every binary (switchboard, xmlapi, sbctl, sbbench, telsim)
// answers -version with the same line, and the daemon exports the same facts
// as switchboard_build_info, so that an operator comparing a bug report, a
// scrape and `switchboard -version` reads one vocabulary. Nothing is stamped
// with -ldflags: `go build` in a git checkout records the revision itself,
// so a build cannot claim a version it is not.
package buildinfo
