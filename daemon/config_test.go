package daemon

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"switchboard/internal/strictyaml"
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
		{"unknown field has its line", "tiers: []\nbogus: 1\n", "t.yaml: line 2: bogus: unknown field; valid fields here: instance, socket, data_dir, log,"},
		{"wrong type", "server:\n  max_in_flight: lots\n", "line 2"},
		{"no tiers", "log: {level: info}\n", "tiers: at least one tier"},
		{"bad level", "log: {level: loud}\ntiers: [{name: a, servers: ['sim://a']}]\n", `log.level: "loud"`},
		{"bad server", "tiers: [{name: a, servers: ['http://x']}]\n", "t.yaml: line 1: tiers[0] (a).servers[0]: \"http://x\": want tcp://host:port or sim://NAME"},
		{"bad port", "tiers: [{name: a, servers: ['tcp://h:99999']}]\n", "not in 1..65535"},
		{"duplicate tier", "tiers: [{name: a, servers: ['sim://a']}, {name: a, servers: ['sim://b']}]\n", "appears twice"},
		{"bad digits", "keys: {digits: 30}\ntiers: [{name: a, servers: ['sim://a']}]\n", "keys.digits: 30 not in 6..18"},
		{"bad node", "keys: {node: {id: 2, count: 2}}\ntiers: [{name: a, servers: ['sim://a']}]\n", "keys.node"},
		{"negative timeout", "tiers: [{name: a, servers: ['sim://a'], attempt_timeout: -1s}]\n", "attempt_timeout"},
		{"two documents", "tiers: [{name: a, servers: ['sim://a']}]\n---\nlog: {}\n", "more than one YAML document"},
		{"empty", "", "empty document"},
		{"queued below max_frame", "server: {max_conn_queued_bytes: 1000}\ntiers: [{name: a, servers: ['sim://a']}]\n", "server.max_conn_queued_bytes: 1000 is below server.max_frame 65536"},
		{"short idle timeout", "server: {idle_timeout: 100ms}\ntiers: [{name: a, servers: ['sim://a']}]\n", "server.idle_timeout: 100ms: at least 1s"},
		{"unanswered not positive", "server: {max_conn_unanswered: -1}\ntiers: [{name: a, servers: ['sim://a']}]\n", "server.max_conn_unanswered: -1 must be positive"},
		{"metrics unix path relative", "metrics: {addr: 'unix:m.sock'}\ntiers: [{name: a, servers: ['sim://a']}]\n", `metrics.addr: "unix:m.sock": want unix:/absolute/path`},
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

// configErrors parses y and returns its problems, one string each, checking
// that the error is an ErrConfig that strictyaml.List can take apart.
func configErrors(t *testing.T, y string) []string {
	t.Helper()
	_, err := ParseConfig([]byte(y), "t.yaml")
	if err == nil || !errors.Is(err, ErrConfig) {
		t.Fatalf("error %v, want an ErrConfig", err)
	}
	var out []string
	for _, e := range strictyaml.List(err) {
		out = append(out, e.Error())
	}
	return out
}

func wantErrors(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

const tierA = "tiers:\n  - name: a\n    servers: [sim://a]\n"

func TestDecodeErrorsNameFieldAndLine(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		// The values that did decode are validated too, in the same
		// pass: the empty tier list is reported with the unknown field.
		{"unknown top-level field", "tiers: []\nlogs: {level: info}\n",
			"t.yaml: line 2: logs: unknown field (did you mean log?); valid fields here: instance, socket, data_dir, log, admin, metrics, server, keys, cache, pool, breaker, tiers, simulators\n" +
				"t.yaml: line 1: tiers: at least one tier is required"},
		{"unknown nested field", "server:\n  transport: net\n  max_frme: 65536\n" + tierA,
			"t.yaml: line 3: server.max_frme: unknown field (did you mean max_frame?); valid fields here: transport, max_frame, max_conns, max_in_flight, max_conn_in_flight, request_timeout, read_timeout, write_timeout, ready_timeout, shutdown_timeout, max_conn_unanswered, max_conn_queued_bytes, idle_timeout, max_conns_per_uid, allow_uids, allow_gids"},
		{"unknown field in a tier", tierA + "    pool: {min_con: 2}\n",
			"t.yaml: line 4: tiers[0].pool.min_con: unknown field (did you mean min_conns?); valid fields here: min_conns, max_in_flight, dial_timeout, heartbeat_interval, heartbeat_timeout, backoff_base, backoff_max, max_age"},
		{"int", "server:\n  max_in_flight: lots\n" + tierA, `t.yaml: line 2: server.max_in_flight: "lots" is not an integer`},
		{"negative uint", "keys: {block_size: -1}\n" + tierA, `t.yaml: line 1: keys.block_size: "-1" is not an integer in 0..18446744073709551615`},
		{"duration", "server:\n  request_timeout: fast\n" + tierA, `t.yaml: line 2: server.request_timeout: "fast" is not a duration (e.g. 250ms, 2s, 1m)`},
		{"duration without unit", tierA + "    attempt_timeout: 250\n", `t.yaml: line 4: tiers[0].attempt_timeout: "250" is not a duration: give a unit (e.g. 250ms, 2s, 1m)`},
		{"list", "tiers:\n  - name: a\n    servers: sim://a\n", `t.yaml: line 3: tiers[0].servers: want a list, got "sim://a"`},
		{"mapping", "server: net\n" + tierA, `t.yaml: line 1: server: want a mapping (fields: transport, max_frame, max_conns, max_in_flight, max_conn_in_flight, request_timeout, read_timeout, write_timeout, ready_timeout, shutdown_timeout, max_conn_unanswered, max_conn_queued_bytes, idle_timeout, max_conns_per_uid, allow_uids, allow_gids), got "net"`},
		{"duplicate key", "log:\n  level: info\n  level: debug\n" + tierA, "t.yaml: line 3: log.level: duplicate key, first set at line 2"},
		{"empty", "# nothing\n", "t.yaml: empty document"},
		{"two documents", tierA + "---\n" + tierA, "t.yaml: line 4: more than one YAML document (a config is exactly one; remove the ---)"},
		{"syntax", "log:\n  level: info\n level: x\n", "t.yaml: line 2: invalid YAML: did not find expected key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantErrors(t, configErrors(t, c.yaml), strings.Split(c.want, "\n"))
		})
	}
}

func TestValidationErrorsHaveLines(t *testing.T) {
	y := `log:
  level: loud
pool:
  min_conns: 100
breaker:
  open_for: -1s
tiers:
  - name: a
    servers: [sim://a, 'tcp://h:99999']
  - name: b
    servers: [sim://b]
    pool:
      min_conns: 3
      backoff_base: 10s
  - name: a
    servers: [sim://c]
    breaker: {probes: 20000}
keys:
  digits: 30
`
	wantErrors(t, configErrors(t, y), []string{
		`t.yaml: line 2: log.level: "loud" is not one of debug, info, warn, error`,
		`t.yaml: line 19: keys.digits: 30 not in 6..18`,
		`t.yaml: line 9: tiers[0] (a).servers[1]: "tcp://h:99999": port "99999" not in 1..65535`,
		`t.yaml: line 4: tiers[0] (a).pool.min_conns: 100 not in 1..64 (inherited from pool.min_conns)`,
		`t.yaml: line 6: tiers[0] (a).breaker.open_for: -1s: must not be negative (inherited from breaker.open_for)`,
		// backoff_max is nobody's in the file: a default has no line.
		`t.yaml: tiers[1] (b).pool.backoff_max: 5s is below backoff_base 10s`,
		`t.yaml: line 6: tiers[1] (b).breaker.open_for: -1s: must not be negative (inherited from breaker.open_for)`,
		`t.yaml: line 15: tiers[2] (a).name: "a" appears twice (also tiers[0]): tier names are unique`,
		`t.yaml: line 4: tiers[2] (a).pool.min_conns: 100 not in 1..64 (inherited from pool.min_conns)`,
		`t.yaml: line 6: tiers[2] (a).breaker.open_for: -1s: must not be negative (inherited from breaker.open_for)`,
		`t.yaml: line 17: tiers[2] (a).breaker.probes: 20000: at most 10000`,
	})
}

func TestDecodeErrorsAllReported(t *testing.T) {
	y := `server:
  max_frame: big
  nope: 1
keys:
  digits: 30
tiers:
  - name: a
    servers: [sim://a]
    attempt_timeout: soon
`
	// Decoding problems are reported together, and with them, in the same
	// pass, the validation problems of what did decode (keys.digits): it
	// once waited for a document that decodes.
	wantErrors(t, configErrors(t, y), []string{
		`t.yaml: line 2: server.max_frame: "big" is not an integer`,
		`t.yaml: line 3: server.nope: unknown field; valid fields here: transport, max_frame, max_conns, max_in_flight, max_conn_in_flight, request_timeout, read_timeout, write_timeout, ready_timeout, shutdown_timeout, max_conn_unanswered, max_conn_queued_bytes, idle_timeout, max_conns_per_uid, allow_uids, allow_gids`,
		`t.yaml: line 9: tiers[0].attempt_timeout: "soon" is not a duration (e.g. 250ms, 2s, 1m)`,
		`t.yaml: line 5: keys.digits: 30 not in 6..18`,
	})
}

// A config built in code (a reload source) is validated the same way, with
// no file and no lines.
func TestValidateWithoutFile(t *testing.T) {
	c, err := ParseConfig([]byte(tierA), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.Tiers[0].Pool.MinConns = 0
	c.Log.Level = "loud"
	err = c.Validate()
	var es strictyaml.Errors
	if !errors.As(err, &es) {
		t.Fatalf("Validate returned %T %v", err, err)
	}
	wantErrors(t, strings.Split(err.Error(), "\n"), []string{
		`log.level: "loud" is not one of debug, info, warn, error`,
		`tiers[0] (a).pool.min_conns: 0 not in 1..64`,
	})
	c.Log.Level, c.Tiers[0].Pool.MinConns = "info", 1
	if err := c.Validate(); err != nil {
		t.Fatalf("valid config: %v (a nil Errors must be a nil error)", err)
	}
}

// TestAllowListValidated: server.allow_uids and allow_gids refuse
// (uid_t)-1 and an id listed twice, naming the field.
func TestAllowListValidated(t *testing.T) {
	got := configErrors(t, tierA+"server:\n  allow_uids: [1000, 1000]\n  allow_gids: [4294967295]\n")
	wantErrors(t, got, []string{
		"t.yaml: line 5: server.allow_uids: 1000 is listed twice",
		"t.yaml: line 6: server.allow_gids: 4294967295 is not an id (it is (uid_t)-1)",
	})
	c, err := ParseConfig([]byte(tierA+"server:\n  allow_uids: [0, 1000]\n  allow_gids: [50]\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Server.AllowUIDs, []uint32{0, 1000}) || !slices.Equal(c.Server.AllowGIDs, []uint32{50}) {
		t.Fatalf("allow_uids %v, allow_gids %v", c.Server.AllowUIDs, c.Server.AllowGIDs)
	}
}
