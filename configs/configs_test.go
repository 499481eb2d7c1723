package configs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"switchboard/configs"
	"switchboard/daemon"
)

// Every example configuration loads through the daemon's strict loader, so
// the examples cannot rot.
func TestEveryConfigLoads(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no config files found: %v", err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			if _, err := daemon.LoadConfig(f); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestEmbeddedDefaultIsDefaultYAML(t *testing.T) {
	b, err := os.ReadFile("default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, configs.Default) {
		t.Fatal("embedded default differs from default.yaml")
	}
	c, err := daemon.DefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tr := range c.Tiers {
		names = append(names, tr.Name)
	}
	if len(names) != 3 || names[0] != "primary-large" || names[1] != "nextgen" || names[2] != "backup2-large" {
		t.Fatalf("default tier order %v", names)
	}
}
