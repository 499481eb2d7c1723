package daemon

import (
	"strings"
	"testing"

	"switchboard/internal/strictyaml"
)

// A file with problems in every section gets every one reported in one
// pass: the decoding problems (unknown field, not a duration, wrong kind,
// not an integer) and the validation problems of everything that did
// decode, each with its line and field. -check-config once reported the 4
// decoding problems alone, and the 11 others only once those were fixed.
// A value that did not decode is not reported twice: tiers[1].servers[1]
// (a list, cut out) is not also "not a server URL", and breaker.failures
// takes its default.
func TestParseConfigReportsEveryErrorAtOnce(t *testing.T) {
	const file = `log:
  level: loud
  formatt: json
server:
  max_frame: 10
  request_timeout: fast
  idle_timeout: 10ms
keys:
  digits: 30
cache:
  size_mb: 8
pool:
  min_conns: 100
tiers:
  - name: a
    servers: ["ftp://x"]
    attempt_timeout: -1s
  - name: a
    servers: ["sim://b", [1]]
    breaker: {failures: many}
simulators:
  - {name: b, capacity: -1}
`
	_, err := ParseConfig([]byte(file), "bad.yaml")
	want := []string{
		`bad.yaml: line 3: log.formatt: unknown field (did you mean format?); valid fields here: level, format`,
		`bad.yaml: line 6: server.request_timeout: "fast" is not a duration (e.g. 250ms, 2s, 1m)`,
		`bad.yaml: line 19: tiers[1].servers[1]: want a string, got a list`,
		`bad.yaml: line 20: tiers[1].breaker.failures: "many" is not an integer`,
		`bad.yaml: line 2: log.level: "loud" is not one of debug, info, warn, error`,
		`bad.yaml: line 5: server.max_frame: 10 not in 16384..16777216`,
		`bad.yaml: line 7: server.idle_timeout: 10ms: at least 1s`,
		`bad.yaml: line 9: keys.digits: 30 not in 6..18`,
		`bad.yaml: line 11: cache.size_mb: 8 not in 32..65536`,
		`bad.yaml: line 16: tiers[0] (a).servers[0]: "ftp://x": want tcp://host:port or sim://NAME`,
		`bad.yaml: line 17: tiers[0] (a).attempt_timeout: -1s must be positive`,
		`bad.yaml: line 13: tiers[0] (a).pool.min_conns: 100 not in 1..64 (inherited from pool.min_conns)`,
		`bad.yaml: line 18: tiers[1] (a).name: "a" appears twice (also tiers[0]): tier names are unique`,
		`bad.yaml: line 13: tiers[1] (a).pool.min_conns: 100 not in 1..64 (inherited from pool.min_conns)`,
		`bad.yaml: line 22: simulators[0].capacity: -1 must not be negative (0: the simulator's default)`,
	}
	var got []string
	for _, e := range strictyaml.List(err) {
		got = append(got, e.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got %d problems:\n%s\nwant %d:\n%s", len(got), strings.Join(got, "\n"), len(want), strings.Join(want, "\n"))
	}

	// The fixed file has none left: nothing was hidden behind the others.
	fixed := strings.NewReplacer("loud", "info", "formatt", "format", "max_frame: 10", "max_frame: 65536",
		"fast", "2s", "10ms", "1m", "digits: 30", "digits: 9", "size_mb: 8", "size_mb: 32", "min_conns: 100", "min_conns: 2",
		"ftp://x", "sim://a", "-1s", "250ms", "- name: a\n    servers: [\"sim://b\"", "- name: c\n    servers: [\"sim://b\"",
		", [1]]", "]", "many", "5", "capacity: -1", "capacity: 10").Replace(file)
	if _, err := ParseConfig([]byte(fixed), "fixed.yaml"); err != nil {
		t.Fatalf("the fixed file still fails:\n%v\n%s", err, fixed)
	}
}
