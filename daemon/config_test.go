package daemon

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte("tiers:\n  - name: only\n    servers: [tcp://127.0.0.1:7001]\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tr := c.Tiers[0]
	if tr.AttemptTimeout != 250*time.Millisecond || tr.Pool.MinConns != 2 || tr.Breaker.Failures != 5 ||
		c.Keys.Digits != 9 || c.Server.MaxFrame != 65536 || c.Socket != DefaultSocket {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

func TestTierOverridesInherit(t *testing.T) {
	y := `
pool: {min_conns: 3, dial_timeout: 2s}
breaker: {failures: 7}
tiers:
  - name: a
    servers: [sim://a]
    pool: {min_conns: 1}
    breaker: {open_for: 9s}
`
	c, err := ParseConfig([]byte(y), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, b := c.Tiers[0].Pool, c.Tiers[0].Breaker
	if p.MinConns != 1 || p.DialTimeout != 2*time.Second || b.Failures != 7 || b.OpenFor != 9*time.Second {
		t.Fatalf("pool %+v breaker %+v", p, b)
	}
}

func TestParseConfigErrors(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown field has its line", "tiers: []\nbogus: 1\n", "line 2: field bogus not found"},
		{"wrong type", "server:\n  max_in_flight: lots\n", "line 2"},
		{"no tiers", "log: {level: info}\n", "tiers: at least one tier"},
		{"bad level", "log: {level: loud}\ntiers: [{name: a, servers: ['sim://a']}]\n", `log.level: "loud"`},
		{"bad server", "tiers: [{name: a, servers: ['http://x']}]\n", "tiers[a].servers[0]"},
		{"bad port", "tiers: [{name: a, servers: ['tcp://h:99999']}]\n", "not in 1..65535"},
		{"duplicate tier", "tiers: [{name: a, servers: ['sim://a']}, {name: a, servers: ['sim://b']}]\n", "appears twice"},
		{"bad digits", "keys: {digits: 30}\ntiers: [{name: a, servers: ['sim://a']}]\n", "keys.digits: 30 not in 6..18"},
		{"bad node", "keys: {node: {id: 2, count: 2}}\ntiers: [{name: a, servers: ['sim://a']}]\n", "keys.node"},
		{"negative timeout", "tiers: [{name: a, servers: ['sim://a'], attempt_timeout: -1s}]\n", "attempt_timeout"},
		{"two documents", "tiers: [{name: a, servers: ['sim://a']}]\n---\nlog: {}\n", "more than one YAML document"},
		{"empty", "", "empty document"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(c.yaml), "t.yaml")
			if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestValidateReportsEveryError(t *testing.T) {
	_, err := ParseConfig([]byte("log: {level: x, format: y}\nkeys: {digits: 1}\n"), "t.yaml")
	for _, want := range []string{"log.level", "log.format", "keys.digits", "tiers"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}
