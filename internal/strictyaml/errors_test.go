package strictyaml

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

var errSentinel = errors.New("invalid configuration")

func TestFieldErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    FieldError
		want string
	}{
		{FieldError{File: "f.yaml", Line: 3, Field: "a.b", Msg: "bad"}, "f.yaml: line 3: a.b: bad"},
		{FieldError{File: "f.yaml", Field: "a.b", Msg: "bad"}, "f.yaml: a.b: bad"},
		{FieldError{Field: "a.b", Msg: "bad"}, "a.b: bad"},
		{FieldError{File: "f.yaml", Line: 1, Msg: "empty"}, "f.yaml: line 1: empty"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("%q, want %q", got, tc.want)
		}
	}
}

func TestErrors(t *testing.T) {
	var none Errors
	if none.Err() != nil || List(nil) != nil {
		t.Fatal("no problem must be a nil error")
	}
	es := Errors{
		{Field: "tiers[0] (a).pool.min_conns", Msg: "100 not in 1..64", Paths: []string{"tiers[0].pool.min_conns", "pool.min_conns"}},
		{Field: "tiers[1] (b).pool.min_conns", Msg: "0 not in 1..64", Paths: []string{"tiers[1].pool.min_conns", "pool.min_conns"}},
		{Field: "log.level", Msg: `"loud" is not one of debug, info`},
		{Field: "keys.digits", Msg: "30 not in 6..18"},
	}
	es.Locate("f.yaml", Lines{"pool.min_conns": 4, "tiers[1].pool.min_conns": 9, "log.level": 2})
	want := "f.yaml: line 4: tiers[0] (a).pool.min_conns: 100 not in 1..64 (inherited from pool.min_conns)\n" +
		"f.yaml: line 9: tiers[1] (b).pool.min_conns: 0 not in 1..64\n" +
		"f.yaml: line 2: log.level: \"loud\" is not one of debug, info\n" +
		"f.yaml: keys.digits: 30 not in 6..18"
	if es.Error() != want {
		t.Fatalf("got\n%s\nwant\n%s", es, want)
	}

	wrapped := fmt.Errorf("%w: %w", errSentinel, es.Err())
	if !errors.Is(wrapped, errSentinel) {
		t.Fatal("the sentinel is lost")
	}
	var fe *FieldError
	if !errors.As(wrapped, &fe) || fe != es[0] {
		t.Fatalf("errors.As finds %v", fe)
	}
	list := List(wrapped)
	if len(list) != len(es) || list[3] != error(es[3]) {
		t.Fatalf("List: %v", list)
	}
	plain := errors.New("open f.yaml: no such file")
	if l := List(plain); len(l) != 1 || l[0] != plain {
		t.Fatalf("List of a plain error: %v", l)
	}
}

func TestReport(t *testing.T) {
	var b strings.Builder
	Report(&b, "f.yaml", fmt.Errorf("%w: %w", errSentinel, Errors{{File: "f.yaml", Line: 2, Field: "a", Msg: "bad"}, {File: "f.yaml", Field: "b", Msg: "worse"}}))
	if want := "f.yaml: line 2: a: bad\nf.yaml: b: worse\nf.yaml: 2 errors\n"; b.String() != want {
		t.Fatalf("%q, want %q", b.String(), want)
	}
	b.Reset()
	Report(&b, "f.yaml", errors.New("open f.yaml: no such file"))
	if want := "open f.yaml: no such file\nf.yaml: 1 error\n"; b.String() != want {
		t.Fatalf("%q, want %q", b.String(), want)
	}
}
