package fuzz

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"switchboard/wire"
)

var update = flag.Bool("update", false, "rewrite testdata/fuzz/*/golden-* from wire/testdata")

// targets lists every fuzz target of the package; each gets golden seeds.
var targets = []string{
	"FuzzParseHeader", "FuzzReadFrame", "FuzzDecodeError",
	"FuzzEmpty", "FuzzErrorMessage", "FuzzAllocateRequest", "FuzzAllocateResponse",
	"FuzzKeyRequest", "FuzzUpdateRequest", "FuzzReservation", "FuzzRecord",
	"FuzzHello", "FuzzHelloResponse", "FuzzLoad", "FuzzBridge",
}

// seedPrefix marks the corpus files generated from golden vectors; other
// files in a corpus directory (inputs found by fuzzing) are left alone.
const seedPrefix = "golden-"

// corpusFile encodes values in the format of go test's fuzz corpus.
func corpusFile(vals ...any) string {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, v := range vals {
		switch v := v.(type) {
		case byte:
			fmt.Fprintf(&b, "byte(%q)\n", v)
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		default:
			panic(fmt.Sprintf("corpusFile: %T", v))
		}
	}
	return b.String()
}

// seedCorpus derives every target's seeds from the golden vectors: whole
// frames for the framing targets, the payload for the decoder that the
// frame's op and direction select, and (status, payload) for error frames.
func seedCorpus(t *testing.T) map[string]map[string]string {
	seeds := map[string]map[string]string{}
	add := func(target, name string, vals ...any) {
		if seeds[target] == nil {
			seeds[target] = map[string]string{}
		}
		seeds[target][seedPrefix+name] = corpusFile(vals...)
	}
	var stream []byte
	for _, g := range loadGolden(t) {
		stream = append(stream, g.frame...)
		add("FuzzParseHeader", g.name, g.frame)
		add("FuzzReadFrame", g.name, g.frame)
		h, n, err := wire.ParseHeader(g.frame, wire.DefaultMaxFrame)
		if err != nil || n != len(g.frame) {
			t.Fatalf("%s: %v", g.name, err)
		}
		payload := g.frame[wire.HeaderSize:]
		if h.Status != wire.StatusOK {
			add("FuzzDecodeError", g.name, byte(h.Status), payload)
			add("FuzzErrorMessage", g.name, payload)
			continue
		}
		target := payloadTarget(h.Op, h.IsResponse())
		if target == "" {
			t.Fatalf("%s: no decoder for op %v", g.name, h.Op)
		}
		add(target, g.name, payload)
	}
	add("FuzzReadFrame", "stream", stream)
	return seeds
}

// TestSeedCorpus keeps testdata/fuzz/*/golden-* equal to what the golden
// vectors give, and checks that every target has golden seeds.
func TestSeedCorpus(t *testing.T) {
	seeds := seedCorpus(t)
	for _, target := range targets {
		if len(seeds[target]) == 0 {
			t.Errorf("%s: no golden vector feeds this target", target)
		}
	}
	for target := range seeds {
		if !slices.Contains(targets, target) {
			t.Errorf("seeds for unknown target %s", target)
		}
	}
	for _, target := range targets {
		dir := filepath.Join("testdata", "fuzz", target)
		want := seeds[target]
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, content := range want {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		entries, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, e := range entries {
			name := e.Name()
			if !strings.HasPrefix(name, seedPrefix) {
				continue
			}
			path := filepath.Join(dir, name)
			if _, ok := want[name]; !ok {
				if *update {
					if err := os.Remove(path); err != nil {
						t.Fatal(err)
					}
					continue
				}
				t.Errorf("%s: stale seed (run go test ./fuzz -run TestSeedCorpus -update)", path)
				continue
			}
			have[name] = true
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != want[name] {
				t.Errorf("%s differs from its golden vector (run go test ./fuzz -run TestSeedCorpus -update)", path)
			}
		}
		for name := range want {
			if !have[name] {
				t.Errorf("%s: missing seed (run go test ./fuzz -run TestSeedCorpus -update)", filepath.Join(dir, name))
			}
		}
	}
}
