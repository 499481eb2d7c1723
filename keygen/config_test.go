package keygen

import (
	"errors"
	"strings"
	"testing"
)

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if c.Digits != 9 || c.BlockSize != 4096 || c.Node != (NodeConfig{0, 1}) || c.WarnAt != 0.8 || c.Secret != nil {
		t.Fatalf("DefaultConfig() = %+v", c)
	}
	if got := (Config{}).withDefaults(); got.Digits != c.Digits || got.BlockSize != c.BlockSize || got.Node != c.Node || got.WarnAt != c.WarnAt {
		t.Fatalf("zero Config does not default: %+v", got)
	}
	c.Dir = "/x"
	if err := c.Validate(); err != nil {
		t.Fatalf("default config with a dir: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Dir: "/data"}
	cases := []struct {
		name string
		mod  func(*Config)
		want string // substring of the error; "" = valid
	}{
		{"defaults", func(c *Config) {}, ""},
		{"6 digits", func(c *Config) { c.Digits = 6 }, ""},
		{"18 digits", func(c *Config) { c.Digits = 18 }, ""},
		{"5 digits", func(c *Config) { c.Digits = 5 }, "digits is 5"},
		{"19 digits", func(c *Config) { c.Digits = 19 }, "digits is 19"},
		{"negative digits", func(c *Config) { c.Digits = -1 }, "digits"},
		{"huge block", func(c *Config) { c.BlockSize = MaxBlockSize + 1 }, "block size"},
		{"block 1", func(c *Config) { c.BlockSize = 1 }, ""},
		{"short secret", func(c *Config) { c.Secret = []byte("short") }, "secret is 5 bytes"},
		{"secret, no dir", func(c *Config) { c.Secret, c.Dir = testSecret, "" }, ""},
		{"no secret, no dir", func(c *Config) { c.Dir = "" }, "no secret and no data directory"},
		{"warn 0.5", func(c *Config) { c.WarnAt = 0.5 }, ""},
		{"warn 1", func(c *Config) { c.WarnAt = 1 }, ""},
		{"warn > 1", func(c *Config) { c.WarnAt = 1.5 }, "warn_at"},
		{"warn < 0", func(c *Config) { c.WarnAt = -0.1 }, "warn_at"},
		{"node 2 of 3", func(c *Config) { c.Node = NodeConfig{ID: 2, Count: 3} }, ""},
		{"node 3 of 3", func(c *Config) { c.Node = NodeConfig{ID: 3, Count: 3} }, "node id is 3"},
		{"node -1", func(c *Config) { c.Node = NodeConfig{ID: -1, Count: 3} }, "node id"},
		{"node count too big", func(c *Config) { c.Node = NodeConfig{Count: MaxNodes + 1} }, "node count"},
		{"node count -1", func(c *Config) { c.Node = NodeConfig{Count: -1} }, "node count"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want ErrInvalidConfig containing %q", err, tc.want)
			}
		})
	}
}

func TestNodePartitionDisjointAndCovering(t *testing.T) {
	for _, digits := range []int{6, 9, 18} {
		n := DomainSize(digits)
		for _, count := range []int{1, 2, 3, 7, 1000, MaxNodes} {
			var prev uint64
			for id := 0; id < count; id++ {
				lo, hi := NodePartition(digits, NodeConfig{ID: id, Count: count})
				if lo != prev || hi <= lo {
					t.Fatalf("D=%d count=%d node %d: [%d, %d) after %d", digits, count, id, lo, hi, prev)
				}
				prev = hi
			}
			if prev != n {
				t.Fatalf("D=%d count=%d: partitions end at %d, want %d", digits, count, prev, n)
			}
		}
	}
	if lo, hi := NodePartition(9, NodeConfig{}); lo != 0 || hi != 900_000_000 {
		t.Fatalf("zero NodeConfig partition = [%d, %d)", lo, hi)
	}
}

func TestDomain(t *testing.T) {
	if KeyOffset(6) != 100_000 || DomainSize(6) != 900_000 || DomainSize(18) != 900_000_000_000_000_000 {
		t.Fatal("domain arithmetic")
	}
	mustPanic(t, "KeyOffset(5)", func() { KeyOffset(5) })
}
