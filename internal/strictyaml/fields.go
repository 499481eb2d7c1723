package strictyaml

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// structInfo is what a YAML mapping may hold for one struct type, read from
// the `yaml` tags by yaml.v3's rules (getStructInfo in its yaml.go): the tag's
// name, else the lower-cased Go name; "-" and unexported fields skipped;
// ",inline" structs flattened; one ",inline" map taking every other key.
type structInfo struct {
	names  []string                // in declaration order, for "valid fields here"
	fields map[string]reflect.Type // name → the field's type
	// inlineMap is the element type of an ",inline" map, nil without one.
	inlineMap reflect.Type
	// delegate is set when an inline field decodes itself (UnmarshalYAML
	// sees the whole mapping): the walk then leaves the struct to yaml.v3.
	delegate bool
}

// structInfos caches structInfo by struct type; types are few and fixed.
var structInfos sync.Map // reflect.Type → *structInfo

// structInfoOf returns t's fields. A malformed tag is a programmer error
// (yaml.v3 panics on it too), so it panics.
func structInfoOf(t reflect.Type) *structInfo {
	if si, ok := structInfos.Load(t); ok {
		return si.(*structInfo)
	}
	si := &structInfo{fields: map[string]reflect.Type{}}
	si.add(t)
	structInfos.Store(t, si)
	return si
}

func (si *structInfo) add(t reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.PkgPath != "" && !f.Anonymous {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "" && !strings.Contains(string(f.Tag), ":") {
			tag = string(f.Tag)
		}
		if tag == "-" {
			continue
		}
		name, flags, _ := strings.Cut(tag, ",")
		inline := false
		for flag := range strings.SplitSeq(flags, ",") {
			switch flag {
			case "", "omitempty", "flow":
			case "inline":
				inline = true
			default:
				panic(fmt.Sprintf("strictyaml: unsupported flag %q in the yaml tag of %s.%s", flag, t, f.Name))
			}
		}
		if inline {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch {
			case ft.Kind() == reflect.Map && f.Type.Kind() == reflect.Map:
				si.inlineMap = ft.Elem()
			case ft.Kind() == reflect.Struct && decodesItself(ft):
				si.delegate = true
			case ft.Kind() == reflect.Struct:
				si.add(ft)
			default:
				panic(fmt.Sprintf("strictyaml: ,inline on %s.%s, which is neither a struct nor a map", t, f.Name))
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if _, dup := si.fields[name]; dup {
			panic(fmt.Sprintf("strictyaml: yaml field %q appears twice in %s", name, t))
		}
		si.names = append(si.names, name)
		si.fields[name] = f.Type
	}
}

// valid lists the field names for an error message.
func (si *structInfo) valid() string {
	return strings.Join(si.names, ", ")
}

// suggest returns the field name an unknown key most likely meant, or "".
// A match ignoring case, '_' and '-' wins ("maxFrame" for max_frame); else
// the nearest name within an edit distance of 2, closer than the key is
// long (so "ab" does not suggest "id").
func (si *structInfo) suggest(key string) string {
	norm := func(s string) string {
		return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(s))
	}
	nk := norm(key)
	best, bestD := "", 3
	for _, n := range si.names {
		if norm(n) == nk {
			return n
		}
		if d := distance(strings.ToLower(key), n); d < bestD && d < len(key) {
			best, bestD = n, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b, in bytes; field
// names are ASCII. Keys longer than any sane field name are not compared.
func distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
