package fuzz

import (
	"bytes"
	"testing"

	"go.yaml.in/yaml/v3"

	"switchboard/internal/strictyaml"
)

// same compares two decoded configs as YAML (NaN equals NaN there).
func same(a, b *yamlConfig) bool {
	x, _ := yaml.Marshal(a)
	y, _ := yaml.Marshal(b)
	return bytes.Equal(x, y)
}

// FuzzDecodePartial holds strictyaml.DecodePartial to its promise: it
// never panics, reports exactly what Decode reports, decodes a clean
// document exactly as Decode does, and leaves out untouched when it says
// nothing could be decoded (rest false).
func FuzzDecodePartial(f *testing.F) {
	for _, s := range []string{
		"",
		"name: a\n",
		"server: {max_frme: 1, max_frame: x, request_timeout: 5}\nname: n\n",
		"tiers:\n  - name: a\n    servers: [x, {y: 1}, z]\n  - oops\n  - {name: c, pool: {max_frame: 1, max_frame: 2}}\n",
		"server: &s {max_frame: bad}\ntiers: [{name: a, pool: *s}, {pool: *s}]\n",
		"server:\n  <<: 5\nname: n\n",
		"pair: [a]\nzone: many\nlimits: {a: x}\nby_id: {x: 1}\n",
		"a: &a [*a]\nname: n\n",
		"name: [\n",
		"ratio: .nan\nname: n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var whole yamlConfig
		_, werr := strictyaml.Decode(data, "f.yaml", &whole)
		var got yamlConfig
		_, rest, err := strictyaml.DecodePartial(data, "f.yaml", &got)
		if (err == nil) != (werr == nil) || err != nil && err.Error() != werr.Error() {
			t.Fatalf("DecodePartial says %v, Decode %v", err, werr)
		}
		switch {
		case werr == nil && (!rest || !same(&got, &whole)):
			t.Fatalf("clean document: rest %v, decoded %+v, Decode %+v", rest, got, whole)
		case !rest && !same(&got, &yamlConfig{}):
			t.Fatalf("rest false but out written: %+v", got)
		}
	})
}
