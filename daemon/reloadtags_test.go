package daemon

import (
	"reflect"
	"slices"
	"testing"
)

// Every configuration field says whether a reload can change it: a new field
// without its reload tag fails here.
func TestEveryFieldDeclaresReload(t *testing.T) {
	n := 0
	walkReload(reflect.TypeFor[Config](), "", func(path string, _ []int, tag string) {
		n++
		if tag != reloadRestart && tag != reloadLive {
			t.Errorf("%s: reload tag %q: declare reload:\"restart\" or reload:\"live\" on the field", path, tag)
		}
	})
	if n < 20 {
		t.Fatalf("only %d fields walked", n)
	}
}

// The tags give the restart-only fields the hand-kept list of reload.go gave,
// and a change to any one of them is refused naming it alone.
func TestRestartFieldsFromTags(t *testing.T) {
	want := []string{"instance", "socket", "data_dir", "log.format", "admin.socket", "metrics.addr",
		"server.transport", "server.max_frame", "server.read_timeout", "server.write_timeout",
		"keys.store", "keys.digits", "keys.block_size", "keys.secret", "keys.node", "keys.etcd",
		"cache.size_mb", "cache.token_ttl"}
	got := RestartFields()
	if !slices.Equal(got, want) {
		t.Fatalf("RestartFields:\n got %v\nwant %v", got, want)
	}
	old, err := DefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	if f := restartFields(old, old); len(f) != 0 {
		t.Fatalf("unchanged config: %v", f)
	}
	walkReload(reflect.TypeFor[Config](), "", func(path string, index []int, tag string) {
		if tag != reloadRestart {
			return
		}
		nc := *old
		change(reflect.ValueOf(&nc).Elem().FieldByIndex(index))
		if f := restartFields(old, &nc); !slices.Equal(f, []string{path}) {
			t.Errorf("changing %s: restart fields %v", path, f)
		}
	})
	// A nil and an empty list are the same configuration.
	nc := *old
	nc.Keys.Etcd.Endpoints = []string{}
	if f := restartFields(old, &nc); len(f) != 0 {
		t.Errorf("empty endpoints for none: %v", f)
	}
}

// change gives v a different value (of a struct, its first field).
func change(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Int, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Uint64, reflect.Uint32:
		v.SetUint(v.Uint() + 1)
	case reflect.Slice:
		v.Set(reflect.Append(reflect.MakeSlice(v.Type(), 0, v.Len()+1), reflect.Zero(v.Type().Elem())))
	case reflect.Struct:
		change(v.Field(0))
	default:
		panic("change: " + v.Kind().String())
	}
}
