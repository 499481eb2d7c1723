package main

import "testing"

// Issue 15 point 5 (adversarial review): sbctl accepts the global flags
// after the command, for every command. log-level without a LEVEL takes
// any argument as the LEVEL to set, so `sbctl log-level -json` is a usage
// error although `sbctl -json log-level` prints the level.
func TestAdv15LogLevelFlagsAfterCommand(t *testing.T) {
	a := startAdminDaemon(t)
	m := oneJSON(t, ok(t, "-admin-socket", a.admin, "-json", "log-level"))
	if m["level"] == nil {
		t.Fatalf("-json log-level: %v", m)
	}
	m = oneJSON(t, ok(t, "-admin-socket", a.admin, "log-level", "-json"))
	if m["level"] == nil {
		t.Fatalf("log-level -json: %v", m)
	}
	oneJSON(t, ok(t, "log-level", "-admin-socket", a.admin, "-json"))
}
