package strictyaml

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testConfig has every shape the configs use, and a few they may.
type testConfig struct {
	Name         string         `yaml:"name"`
	Server       testServer     `yaml:"server"`
	Tiers        []testTier     `yaml:"tiers"`
	Limits       map[string]int `yaml:"limits"`
	Zone         *int           `yaml:"zone"`
	Debug        bool           `yaml:"debug"`
	Ratio        float64        `yaml:"ratio"`
	Small        int8           `yaml:"small"`
	Count        uint32         `yaml:"count"`
	Extra        any            `yaml:"extra"`
	Raw          yaml.Node      `yaml:"raw"`
	Level        level          `yaml:"level"`
	Pair         [2]string      `yaml:"pair"`
	Ignored      string         `yaml:"-"`
	Plain        string
	testEmbedded `yaml:",inline"`
}

type testEmbedded struct {
	Region string `yaml:"region"`
}

type testServer struct {
	Transport string        `yaml:"transport"`
	MaxFrame  int           `yaml:"max_frame"`
	Timeout   time.Duration `yaml:"request_timeout"`
}

type testTier struct {
	Name    string     `yaml:"name"`
	Servers []string   `yaml:"servers"`
	Pool    testServer `yaml:"pool"`
}

// level decodes itself: only "low" and "high" are valid.
type level int

func (l *level) UnmarshalYAML(n *yaml.Node) error {
	switch n.Value {
	case "low":
		*l = 1
	case "high":
		*l = 2
	default:
		return errors.New("level must be low or high")
	}
	return nil
}

func decode(t *testing.T, y string) (*testConfig, Lines, Errors) {
	t.Helper()
	var c testConfig
	lines, err := Decode([]byte(y), "t.yaml", &c)
	if err == nil {
		return &c, lines, nil
	}
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error %v (%T) is not an Errors", err, err)
	}
	for _, e := range es {
		if e.File != "t.yaml" {
			t.Errorf("error %q does not name the file", e)
		}
	}
	return &c, lines, es
}

func TestDecodeValid(t *testing.T) {
	y := `
name: sb
server:
  transport: net
  max_frame: 65536
  request_timeout: 2s
tiers:
  - name: a
    servers: [tcp://h:1, sim://b]
    pool: {max_frame: 1}
  - name: b
limits: {x: 1, y: 2}
zone: 4
debug: yes
ratio: 0.5
small: -128
count: 4294967295
extra: {any: [thing, 1]}
raw: {whatever: [1, 2]}
level: high
pair: [a, b]
plain: p
region: eu
`
	c, lines, es := decode(t, y)
	if es != nil {
		t.Fatal(es)
	}
	var want testConfig
	if err := yaml.Unmarshal([]byte(y), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*c, want) {
		t.Fatalf("decoded\n%+v\nyaml.v3 decodes\n%+v", *c, want)
	}
	if c.Server.Timeout != 2*time.Second || *c.Zone != 4 || !c.Debug || c.Level != 2 || c.Region != "eu" {
		t.Fatalf("values: %+v", c)
	}
	for path, line := range map[string]int{
		"name": 2, "server": 3, "server.max_frame": 5, "tiers": 7, "tiers[0]": 8, "tiers[0].servers": 9,
		"tiers[0].servers[1]": 9, "tiers[0].pool.max_frame": 10, "tiers[1].name": 11, "limits.y": 12, "region": 23,
	} {
		if lines[path] != line {
			t.Errorf("line of %s: %d, want %d", path, lines[path], line)
		}
	}
}

func TestUnknownFields(t *testing.T) {
	_, _, es := decode(t, "server:\n  max_frme: 1\n  transport: net\nbogus: 2\ntiers:\n  - name: a\n    pool: {MaxFrame: 2}\n")
	want := []string{
		`t.yaml: line 2: server.max_frme: unknown field (did you mean max_frame?); valid fields here: transport, max_frame, request_timeout`,
		`t.yaml: line 4: bogus: unknown field; valid fields here: name, server, tiers, limits, zone, debug, ratio, small, count, extra, raw, level, pair, plain, region`,
		`t.yaml: line 7: tiers[0].pool.MaxFrame: unknown field (did you mean max_frame?); valid fields here: transport, max_frame, request_timeout`,
	}
	checkErrors(t, es, want)
}

func TestWrongTypes(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"server: {max_frame: lots}", `t.yaml: line 1: server.max_frame: "lots" is not an integer`},
		{"server: {max_frame: '65536'}", `t.yaml: line 1: server.max_frame: "65536" is quoted, which makes it a string: write it without quotes`},
		{"server: {max_frame: 1e30}", `server.max_frame: "1e30" is not an integer in -9223372036854775808..9223372036854775807`},
		{"small: 300", `t.yaml: line 1: small: "300" is not an integer in -128..127`},
		{"count: -1", `count: "-1" is not an integer in 0..4294967295`},
		{"server:\n  request_timeout: fast", `t.yaml: line 2: server.request_timeout: "fast" is not a duration (e.g. 250ms, 2s, 1m)`},
		{"server:\n  request_timeout: 5", `t.yaml: line 2: server.request_timeout: "5" is not a duration: give a unit (e.g. 250ms, 2s, 1m)`},
		{"debug: maybe", `t.yaml: line 1: debug: "maybe" is not a boolean (true or false)`},
		{"ratio: half", `ratio: "half" is not a number`},
		{"tiers: primary", `t.yaml: line 1: tiers: want a list, got "primary"`},
		{"tiers: {name: a}", `t.yaml: line 1: tiers: want a list, got a mapping`},
		{"server: [a]", `t.yaml: line 1: server: want a mapping (fields: transport, max_frame, request_timeout), got a list`},
		{"server: fast", `server: want a mapping (fields: transport, max_frame, request_timeout), got "fast"`},
		{"name: {a: 1}", `t.yaml: line 1: name: want a string, got a mapping`},
		{"zone: [1]", `zone: want an integer, got a list`},
		{"limits: [1]", `limits: want a mapping, got a list`},
		{"limits: {a: b}", `t.yaml: line 1: limits.a: "b" is not an integer`},
		{"level: medium", `t.yaml: line 1: level: level must be low or high`},
		{"pair: [a]", `pair: want a list of exactly 2 items, got 1`},
		{"- a\n- b", `t.yaml: line 1: want a mapping (fields: name, server`},
		{"name: " + strings.Repeat("x", 50) + "\nsmall: " + strings.Repeat("9", 50), `small: "` + strings.Repeat("9", 39) + `…" is not an integer`},
	} {
		_, _, es := decode(t, tc.yaml)
		if len(es) != 1 || !strings.Contains(es[0].Error(), tc.want) {
			t.Errorf("%q: errors %q, want one containing %q", tc.yaml, es, tc.want)
		}
	}
}

func TestDocumentErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"", "t.yaml: empty document"},
		{"# only a comment\n", "t.yaml: empty document"},
		{"~\n", "t.yaml: line 1: empty document"},
		{"name: a\n---\nname: b\n", "t.yaml: line 2: more than one YAML document"},
		{"name: a\n---\n", "more than one YAML document"},
		{"name: a\n debug: true\n", "t.yaml: line 2: invalid YAML: mapping values are not allowed in this context"},
		{"name: [a\n", "t.yaml: line 1: invalid YAML:"},
		{"name: a\nname: b\n", "t.yaml: line 2: name: duplicate key, first set at line 1"},
		{"limits:\n  x: 1\n  x: 2\n", "t.yaml: line 3: limits.x: duplicate key, first set at line 2"},
		{"~: 1\n", "t.yaml: line 1: empty key"},
		{"? [a]\n: 1\n", "t.yaml: line 1: a key must be a single value, not a list"},
		{"limits: {? {a: 1} : 2}\n", "a key must be a single value, not a mapping"},
	} {
		_, _, es := decode(t, tc.yaml)
		if len(es) != 1 || !strings.Contains(es[0].Error(), tc.want) {
			t.Errorf("%q: errors %q, want one containing %q", tc.yaml, es, tc.want)
		}
	}
}

func TestEveryProblemIsReported(t *testing.T) {
	y := `
name: a
server:
  max_frame: x
  request_timeout: 2
  nope: 1
tiers:
  - name: a
    servers: tcp://h:1
  - naem: b
debug: perhaps
debug: true
`
	c, _, es := decode(t, y)
	checkErrors(t, es, []string{
		`t.yaml: line 12: debug: duplicate key, first set at line 11`,
		`t.yaml: line 4: server.max_frame: "x" is not an integer`,
		`t.yaml: line 5: server.request_timeout: "2" is not a duration: give a unit (e.g. 250ms, 2s, 1m)`,
		`t.yaml: line 6: server.nope: unknown field; valid fields here: transport, max_frame, request_timeout`,
		`t.yaml: line 9: tiers[0].servers: want a list, got "tcp://h:1"`,
		`t.yaml: line 10: tiers[1].naem: unknown field (did you mean name?); valid fields here: name, servers, pool`,
		`t.yaml: line 11: debug: "perhaps" is not a boolean (true or false)`,
	})
	if c.Name != "" {
		t.Fatal("out was written although the document has problems")
	}
}

func TestMergesAndAliases(t *testing.T) {
	y := `
server: &base
  transport: net
  max_frame: 7
tiers:
  - name: a
    pool:
      <<: *base
      max_frame: 9
  - name: b
    pool: *base
`
	c, lines, es := decode(t, y)
	if es != nil {
		t.Fatal(es)
	}
	if c.Tiers[0].Pool.MaxFrame != 9 || c.Tiers[0].Pool.Transport != "net" || c.Tiers[1].Pool.MaxFrame != 7 {
		t.Fatalf("merge: %+v", c.Tiers)
	}
	if lines["tiers[0].pool.max_frame"] != 9 || lines["tiers[0].pool.transport"] != 3 {
		t.Fatalf("lines %v", lines)
	}

	_, _, es = decode(t, "extra: &x {a: 1}\nserver:\n  <<: *x\n")
	checkErrors(t, es, []string{`t.yaml: line 1: server.a: unknown field; valid fields here: transport, max_frame, request_timeout`})
	_, _, es = decode(t, "server:\n  <<: 5\n")
	checkErrors(t, es, []string{`t.yaml: line 2: server: a << merge takes a mapping or a list of mappings`})

	// A billion laughs is refused quickly, not expanded.
	var b strings.Builder
	b.WriteString("extra:\n  l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		b.WriteString("  l" + string(rune('0'+i)) + ": &l" + string(rune('0'+i)) + " [")
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*l" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	start := time.Now()
	_, _, es = decode(t, b.String())
	if len(es) != 1 || !strings.Contains(es[0].Msg, "too many values") {
		t.Fatalf("billion laughs: %v", es)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("billion laughs took %v", d)
	}
}

func TestTooManyProblems(t *testing.T) {
	var b strings.Builder
	for i := range 150 {
		b.WriteString("x" + strings.Repeat("y", i) + ": 1\n")
	}
	_, _, es := decode(t, b.String())
	if len(es) != maxErrors+1 || !strings.Contains(es[maxErrors].Msg, "too many problems") {
		t.Fatalf("%d errors, last %v", len(es), es[len(es)-1])
	}
}

func checkErrors(t *testing.T, es Errors, want []string) {
	t.Helper()
	var got []string
	for _, e := range es {
		got = append(got, e.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestDecodePanicsOnNonPointer(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	Decode([]byte("a: 1"), "t", testConfig{})
}
