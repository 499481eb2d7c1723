package daemon

import (
	"reflect"
	"strings"
)

// Whether a reload can change a configuration field is declared on the field
// itself, in Config and the section structs it holds, by a struct tag:
//
//	reload:"restart"  a change is refused with ErrRequiresRestart; the field
//	                  is compared whole (a struct such as keys.node counts as
//	                  one field, named by its own path)
//	reload:"live"     a reload puts a change in force
//
// A section struct without the tag (log, server, keys…) is declared field by
// field. TestEveryFieldDeclaresReload keeps every field declared, and
// configs' TestOperationsDocumentsEveryField checks docs/operations.md's
// reload column against RestartFields.
const (
	reloadTag     = "reload"
	reloadRestart = "restart"
	reloadLive    = "live"
)

// RestartFields returns the YAML paths of the fields a reload cannot change
// (tagged reload:"restart"), in the order of the Config struct.
func RestartFields() []string {
	var out []string
	walkReload(reflect.TypeFor[Config](), "", func(path string, _ []int, tag string) {
		if tag == reloadRestart {
			out = append(out, path)
		}
	})
	return out
}

// restartFields lists the fields of nc that differ from old and cannot
// change while the daemon runs (RestartFields). Only names are returned,
// never values (the key secret must not reach a log).
func restartFields(old, nc *Config) []string {
	var f []string
	o, n := reflect.ValueOf(old).Elem(), reflect.ValueOf(nc).Elem()
	walkReload(reflect.TypeFor[Config](), "", func(path string, index []int, tag string) {
		if tag == reloadRestart && !sameValue(o.FieldByIndex(index), n.FieldByIndex(index)) {
			f = append(f, path)
		}
	})
	return f
}

// walkReload calls fn for every field of the struct type t that declares
// its reload tag, with its YAML path (under prefix), its index and the tag;
// it descends into an untagged struct field, and calls fn with an empty tag
// for any other untagged field.
func walkReload(t reflect.Type, prefix string, fn func(path string, index []int, tag string)) {
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			path := name
			if prefix != "" {
				path = prefix + "." + name
			}
			idx := append(append([]int(nil), index...), i)
			tag, ok := sf.Tag.Lookup(reloadTag)
			if !ok && sf.Type.Kind() == reflect.Struct {
				walk(sf.Type, path, idx)
				continue
			}
			fn(path, idx, tag)
		}
	}
	walk(t, prefix, nil)
}

// sameValue reports whether a and b (of one type) hold the same
// configuration: as ==, except that a nil and an empty slice are the same.
func sameValue(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Slice:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !sameValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Struct:
		for i := range a.NumField() {
			if !sameValue(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	default:
		return a.Equal(b)
	}
}
