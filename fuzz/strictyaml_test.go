package fuzz

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"switchboard/internal/strictyaml"
)

// yamlConfig has the shapes of switchboard's config files (nested structs,
// lists of structs, durations, integers of several widths, pointers,
// maps) and a few more, for FuzzStrictYAML.
type yamlConfig struct {
	Name       string            `yaml:"name"`
	Server     yamlServer        `yaml:"server"`
	Tiers      []yamlTier        `yaml:"tiers"`
	Limits     map[string]int    `yaml:"limits"`
	ByID       map[int]string    `yaml:"by_id"`
	Zone       *int              `yaml:"zone"`
	On         bool              `yaml:"on"`
	Ratio      float64           `yaml:"ratio"`
	Small      int8              `yaml:"small"`
	Count      uint32            `yaml:"count"`
	Extra      any               `yaml:"extra"`
	Pair       [2]string         `yaml:"pair"`
	Options    map[string][]bool `yaml:"options"`
	yamlRegion `yaml:",inline"`
}

type yamlRegion struct {
	Region string `yaml:"region"`
}

type yamlServer struct {
	Transport string        `yaml:"transport"`
	MaxFrame  int           `yaml:"max_frame"`
	Timeout   time.Duration `yaml:"request_timeout"`
	Block     uint64        `yaml:"block_size"`
}

type yamlTier struct {
	Name    string      `yaml:"name"`
	Servers []string    `yaml:"servers"`
	Pool    *yamlServer `yaml:"pool"`
}

// stricterThanYAML are the problems strictyaml reports on purpose where
// yaml.v3 (KnownFields) accepts the document (it stops reading after the
// first document, so a syntax error further on is news to it).
var stricterThanYAML = []string{"invalid YAML", "empty document", "more than one YAML document", "empty key", "too many values"}

// yamlOwnWords are yaml.v3's messages for what the walk must find first:
// seeing one means strictyaml left a problem to yaml.v3's fallback.
var yamlOwnWords = []string{"cannot unmarshal", "not found in type", "already set in type", "already defined at line"}

// FuzzStrictYAML checks strictyaml.Decode against yaml.v3 itself: it never
// panics; every problem is a FieldError naming the file, found by the walk
// rather than left to yaml.v3; a document it accepts decodes exactly as
// yaml.v3 (KnownFields) decodes it; and a document yaml.v3 accepts is
// refused only for the documented extra strictness.
func FuzzStrictYAML(f *testing.F) {
	for _, s := range []string{
		"",
		"~",
		"name: a\n---\nname: b\n",
		"name: sb\nserver: {transport: net, max_frame: 65536, request_timeout: 2s, block_size: 4096}\n",
		"tiers:\n  - name: a\n    servers: [tcp://h:1, sim://b]\n    pool: {max_frame: 1}\n  - name: b\n",
		"limits: {a: 1, b: 2}\nby_id: {1: x, 0x2: y}\nzone: 4\non: yes\nratio: .nan\nsmall: -128\ncount: 4294967295\n",
		"extra: {any: [thing, 1, {x: ~}]}\npair: [a, b]\noptions: {x: [true, off]}\nregion: eu\n",
		"server: &s {max_frame: 7}\ntiers: [{name: a, pool: {<<: *s, transport: net}}, {pool: *s}]\n",
		"server:\n  <<: [{max_frame: 1}, {transport: x}]\n  <<: {block_size: 2}\n",
		"server: {max_frme: 1}\nbogus: 2\nsmall: 300\ncount: -1\nserver: {}\n",
		"server: {request_timeout: 5}\ntiers: x\nlimits: [1]\npair: [a]\non: maybe\n",
		"server: {max_frame: '65536'}\n~: 1\n? [a]\n: 1\n",
		"a: &a [*a]\n",
		"extra: &x {y: *x}\n",
		"name: a\n debug: true\n",
		"l0: &l0 [x, x]\nl1: &l1 [*l0, *l0]\nextra: [*l1, *l1]\n",
		"by_id: {x: 1}\nlimits: {? {a: 1} : 2}\n",
		"name: !!binary aGVsbG8=\nserver: {max_frame: !!str 5}\n",
	} {
		f.Add([]byte(s))
	}
	for _, glob := range []string{"../configs/*.yaml", "../xmlapi/default.yaml"} {
		paths, _ := filepath.Glob(glob)
		for _, p := range paths {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var got yamlConfig
		lines, err := strictyaml.Decode(data, "f.yaml", &got)

		var want yamlConfig
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		yerr := dec.Decode(&want)

		if err == nil {
			if yerr != nil {
				t.Fatalf("strictyaml accepts, yaml.v3 says %v", yerr)
			}
			g, _ := yaml.Marshal(&got)
			w, _ := yaml.Marshal(&want)
			if !bytes.Equal(g, w) {
				t.Fatalf("decoded differently:\nstrictyaml\n%s\nyaml.v3\n%s", g, w)
			}
			nlines := bytes.Count(data, []byte("\n")) + 1
			for p, l := range lines {
				if l < 1 || l > nlines {
					t.Fatalf("line of %s: %d, the document has %d", p, l, nlines)
				}
			}
			return
		}
		var es strictyaml.Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Fatalf("error %v (%T) is not a strictyaml.Errors", err, err)
		}
		for _, e := range es {
			if e.File != "f.yaml" || e.Msg == "" {
				t.Fatalf("incomplete problem %#v", e)
			}
			for _, words := range yamlOwnWords {
				if strings.Contains(e.Msg, words) {
					t.Fatalf("problem left to yaml.v3: %v", e)
				}
			}
			if yerr == nil && !containsAny(e.Msg, stricterThanYAML) {
				t.Fatalf("yaml.v3 accepts the document, strictyaml says %v", e)
			}
		}
	})
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
