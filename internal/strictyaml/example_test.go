package strictyaml_test

import (
	"fmt"
	"os"
	"time"

	"switchboard/internal/strictyaml"
)

func ExampleDecode() {
	type server struct {
		MaxFrame       int           `yaml:"max_frame"`
		RequestTimeout time.Duration `yaml:"request_timeout"`
	}
	var cfg struct {
		Server server `yaml:"server"`
	}
	doc := "server:\n  max_frme: 65536\n  request_timeout: fast\n"
	_, err := strictyaml.Decode([]byte(doc), "switchboard.yaml", &cfg)
	strictyaml.Report(os.Stdout, "switchboard.yaml", err)
	// Output:
	// switchboard.yaml: line 2: server.max_frme: unknown field (did you mean max_frame?); valid fields here: max_frame, request_timeout
	// switchboard.yaml: line 3: server.request_timeout: "fast" is not a duration (e.g. 250ms, 2s, 1m)
	// switchboard.yaml: 2 errors
}

func ExampleErrors_Locate() {
	// A validation error names the field and where the file may set it:
	// the tier's own pool section, else the top-level one it inherits.
	lines := strictyaml.Lines{"pool.min_conns": 4}
	errs := strictyaml.Errors{{
		Field: "tiers[1] (nextgen).pool.min_conns",
		Msg:   "100 not in 1..64",
		Paths: []string{"tiers[1].pool.min_conns", "pool.min_conns"},
	}}
	errs.Locate("switchboard.yaml", lines)
	fmt.Println(errs)
	// Output:
	// switchboard.yaml: line 4: tiers[1] (nextgen).pool.min_conns: 100 not in 1..64 (inherited from pool.min_conns)
}
