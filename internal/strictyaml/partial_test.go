package strictyaml

import (
	"errors"
	"slices"
	"testing"
)

// DecodePartial reports exactly what Decode reports, and also decodes
// every value that has no problem: a cut value stays zero, a cut list item
// is a zero item and the others keep their indexes.
func TestDecodePartial(t *testing.T) {
	y := `name: n
server:
  transport: tcp
  max_frme: 10
  max_frame: lots
  request_timeout: 2s
tiers:
  - name: a
    servers: [x, {bad: map}, z]
  - oops
  - name: c
    pool: {max_frame: 7, max_frame: 8}
debug: maybe
ratio: 0.5
`
	var want testConfig
	_, werr := Decode([]byte(y), "t.yaml", &want)
	var c testConfig
	lines, rest, err := DecodePartial([]byte(y), "t.yaml", &c)
	if !rest || err == nil || werr == nil || err.Error() != werr.Error() {
		t.Fatalf("rest %v, err %v; Decode: %v", rest, err, werr)
	}
	var es Errors
	if !errors.As(err, &es) || len(es) != 6 {
		t.Fatalf("%d problems, want 6: %v", len(es), err)
	}
	if c.Name != "n" || c.Server.Transport != "tcp" || c.Server.MaxFrame != 0 || c.Server.Timeout.String() != "2s" || c.Ratio != 0.5 || c.Debug {
		t.Errorf("decoded %+v", c)
	}
	if len(c.Tiers) != 3 || c.Tiers[0].Name != "a" || !slices.Equal(c.Tiers[0].Servers, []string{"x", "", "z"}) ||
		c.Tiers[1].Name != "" || c.Tiers[2].Name != "c" || c.Tiers[2].Pool.MaxFrame != 7 {
		t.Errorf("tiers %+v", c.Tiers)
	}
	if lines["tiers[2].pool.max_frame"] != 12 {
		t.Errorf("lines %v", lines)
	}

	// A clean document: rest and no error, as Decode.
	var ok testConfig
	if _, rest, err := DecodePartial([]byte("name: n\n"), "t.yaml", &ok); !rest || err != nil || ok.Name != "n" {
		t.Fatalf("clean: %v %v %+v", rest, err, ok)
	}
	// Not YAML, or a problem no cut removes: nothing decoded.
	for _, bad := range []string{"name: [\n", "server:\n  <<: 5\nname: n\n", ""} {
		var c testConfig
		if _, rest, err := DecodePartial([]byte(bad), "t.yaml", &c); rest || err == nil || c.Name != "" {
			t.Errorf("%q: rest %v, err %v, decoded %+v", bad, rest, err, c)
		}
	}
}

func TestErrorsExcept(t *testing.T) {
	decoded := Errors{{Field: "server.max_frame"}, {Field: "tiers[1]"}, {Field: "pool.min_conns"}, {Msg: "document problem"}}
	es := Errors{
		{Field: "server.max_frame", Msg: "cut: same field"},
		{Field: "server.max_frame_x", Msg: "kept: another field"},
		{Field: "tiers[1] (b).pool.min_conns", Paths: []string{"tiers[1].pool.min_conns", "pool.min_conns"}, Msg: "cut: inside tiers[1]"},
		{Field: "tiers[0] (a).pool.min_conns", Paths: []string{"tiers[0].pool.min_conns", "pool.min_conns"}, Msg: "cut: inherits pool.min_conns"},
		{Field: "tiers", Msg: "cut: around tiers[1]"},
		{Field: "server", Msg: "cut: around server.max_frame"},
		{Field: "keys.node", Msg: "kept"},
	}
	var got []string
	for _, e := range es.Except(decoded) {
		got = append(got, e.Msg)
	}
	if !slices.Equal(got, []string{"kept: another field", "kept"}) {
		t.Fatalf("Except kept %q", got)
	}
}
