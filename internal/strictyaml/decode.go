package strictyaml

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Lines maps a field path, as Decode writes it in errors
// ("server.max_frame", "tiers[0].pool.min_conns", "tiers[0]"), to the line
// of the file that sets it: the line of its key, or of the list item.
type Lines map[string]int

// maxErrors bounds the problems reported for one document: past it the
// file is not a config with mistakes but something else entirely.
const maxErrors = 100

// Decode strictly decodes the single YAML document in data into out, a
// non-nil pointer to a zero value, and returns the line of every field path
// the document sets. name labels the errors (a file name).
//
// Every problem is reported, as Errors of *FieldError: a syntax error; an
// empty document or more than one; an unknown field (with the valid ones
// and a likely intended one); a value of the wrong kind or a scalar that
// does not parse as the field's type; a duplicate or empty key. out is
// written only when there is none, by yaml.v3 with KnownFields(true),
// exactly as yaml.v3 alone would have written it.
func Decode(data []byte, name string, out any) (Lines, error) {
	lines, _, err := decodeDoc(data, name, out, false)
	return lines, err
}

// DecodePartial is Decode that, on a document with problems, still decodes
// what it can: when the document is YAML and every problem is at a value or
// a key that can be cut out (a value of the wrong kind or that does not
// parse, an unknown, duplicate or invalid key), it cuts those out, decodes
// the rest into out as Decode would (a cut value stays zero; a cut list
// item is a zero item, so the other items keep their indexes), and returns
// rest true with the same problems Decode returns. A caller can then
// validate the values that did decode and report those problems too, in
// one pass, instead of an operator fixing a file in rounds. Problems at the
// cut paths are the caller's to leave out (Errors.Except): a value that did
// not decode is not worth a second message.
//
// rest is false, and out untouched, when the document is not YAML, is
// empty, or has a problem cutting cannot remove (a bad << merge, too many
// problems); it is true with a nil error for a clean document.
func DecodePartial(data []byte, name string, out any) (lines Lines, rest bool, err error) {
	return decodeDoc(data, name, out, true)
}

func decodeDoc(data []byte, name string, out any, partial bool) (Lines, bool, error) {
	rv := reflect.ValueOf(out)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		panic(fmt.Sprintf("strictyaml: Decode needs a non-nil pointer, got %T", out))
	}
	lines := Lines{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return lines, false, Errors{{File: name, Msg: "empty document"}}
		}
		return lines, false, Errors{yamlError(name, err)}
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return lines, false, Errors{{File: name, Line: extra.Line, Msg: "more than one YAML document (a config is exactly one; remove the ---)"}}
	case !errors.Is(err, io.EOF):
		return lines, false, Errors{yamlError(name, err)}
	}
	if len(doc.Content) != 1 || isNull(doc.Content[0]) {
		return lines, false, Errors{{File: name, Line: doc.Line, Msg: "empty document"}}
	}

	// A config reusing an anchor in every tier expands a few times over;
	// a hundredfold (and 10000 nodes for small files) is far beyond that
	// and far below what makes the walk slow.
	w := walker{file: name, lines: lines, active: map[*yaml.Node]bool{}, bad: map[*yaml.Node]bool{}, zero: map[*yaml.Node]reflect.Type{}}
	w.budget = 10000 + 100*countNodes(&doc)
	w.walk(doc.Content[0], rv.Elem().Type(), "")
	if len(w.errs) > 0 {
		if !partial || w.uncut || w.bad[doc.Content[0]] {
			return lines, false, w.errs
		}
		// Cut the bad nodes out and decode the rest, leniently: what
		// is left passed the walk.
		if !prune(doc.Content[0], w.bad, w.zero, map[*yaml.Node]bool{}) {
			return lines, false, w.errs
		}
		v := reflect.New(rv.Elem().Type())
		if err := doc.Content[0].Decode(v.Interface()); err != nil {
			return lines, false, w.errs
		}
		rv.Elem().Set(v.Elem())
		return lines, true, w.errs
	}

	// Clean: let yaml.v3 put the values where it always has. It cannot
	// fail where the walk passed; if it does, its own words still beat
	// silence.
	v := reflect.New(rv.Elem().Type())
	final := yaml.NewDecoder(bytes.NewReader(data))
	final.KnownFields(true)
	if err := final.Decode(v.Interface()); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return lines, false, Errors{yamlError(name, err)}
		}
		var es Errors
		for _, s := range te.Errors {
			line, msg := splitLine(s)
			es = append(es, &FieldError{File: name, Line: line, Msg: msg})
		}
		return lines, false, es
	}
	rv.Elem().Set(v.Elem())
	return lines, true, nil
}

// prune removes from the tree under n the mapping entries whose key or
// value is bad and replaces bad list items with their type's zero value,
// so that the other items keep their indexes and their paths. Every node
// is visited once, so an anchor's value is pruned where it is written and
// every alias of it sees the result. It returns false when a list item
// has no zero value yaml.v3 would keep.
func prune(n *yaml.Node, bad map[*yaml.Node]bool, zero map[*yaml.Node]reflect.Type, seen map[*yaml.Node]bool) bool {
	if seen[n] {
		return true
	}
	seen[n] = true
	switch n.Kind {
	case yaml.MappingNode:
		var kept []*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k, v := n.Content[i], n.Content[i+1]; !bad[k] && !bad[v] {
				kept = append(kept, k, v)
			}
		}
		n.Content = kept
	case yaml.SequenceNode:
		for i, item := range n.Content {
			if bad[item] {
				z := zeroNode(zero[item])
				if z == nil {
					return false
				}
				z.Line, z.Column = item.Line, item.Column
				n.Content[i] = z
			}
		}
	}
	for _, c := range n.Content {
		if !prune(c, bad, zero, seen) {
			return false
		}
	}
	return true
}

// zeroNode returns a node that yaml.v3 decodes into t's zero value and
// keeps as a list item (it drops a null item of a struct, string or
// number list), or nil when there is none.
func zeroNode(t reflect.Type) *yaml.Node {
	if t == nil || decodesItself(t) {
		return nil
	}
	scalar := func(tag, v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: v} }
	switch {
	case t == durationType:
		return scalar("!!str", "0s")
	case t == timeType:
		return nil
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Interface:
		return scalar("!!null", "null")
	case reflect.Struct, reflect.Map:
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	case reflect.Slice:
		return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	case reflect.String:
		return scalar("!!str", "")
	case reflect.Bool:
		return scalar("!!bool", "false")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return scalar("!!int", "0")
	case reflect.Float32, reflect.Float64:
		return scalar("!!float", "0")
	}
	return nil
}

// walker checks a node tree against a Go type, collecting problems and
// lines. It is used once, by one goroutine.
type walker struct {
	file  string
	lines Lines
	errs  Errors
	// budget is how many more nodes may be visited. Aliases make a tree of
	// a DAG, which a few lines of YAML can make astronomically large
	// ("billion laughs"); yaml.v3 refuses such documents too.
	budget int
	// active holds the aliases being expanded: one met again is a cycle.
	active map[*yaml.Node]bool
	// stopped is set once the budget or the error limit is exhausted.
	stopped bool
	// bad holds the nodes a problem was found at: a value of the wrong
	// kind or that does not parse, or the key of an unknown, duplicate or
	// invalid entry. DecodePartial cuts them out and decodes the rest.
	bad map[*yaml.Node]bool
	// zero holds the type each bad value was meant for.
	zero map[*yaml.Node]reflect.Type
	// uncut is set by a problem that cutting nodes cannot remove (a bad
	// << merge, too many problems, too many values).
	uncut bool
}

// cut marks n as the node a problem was found at (walker.bad).
func (w *walker) cut(n *yaml.Node) { w.bad[n] = true }

// cutValue marks n, a value meant for type t, as bad, and records t: a
// list item cut out is replaced by t's zero value (zeroNode).
func (w *walker) cutValue(n *yaml.Node, t reflect.Type) {
	w.cut(n)
	w.zero[n] = t
}

var (
	nodeType         = reflect.TypeFor[yaml.Node]()
	durationType     = reflect.TypeFor[time.Duration]()
	timeType         = reflect.TypeFor[time.Time]()
	unmarshalerType  = reflect.TypeFor[yaml.Unmarshaler]()
	obsoleteType     = reflect.TypeFor[obsoleteUnmarshaler]()
	textUnmarshalerT = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// obsoleteUnmarshaler is yaml.v2's Unmarshaler, which yaml.v3 still calls.
type obsoleteUnmarshaler interface {
	UnmarshalYAML(unmarshal func(any) error) error
}

// decodesItself reports whether yaml.v3 hands a value of type t its whole
// node (UnmarshalYAML): the walk cannot know what t accepts.
func decodesItself(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	return pt.Implements(unmarshalerType) || pt.Implements(obsoleteType)
}

func (w *walker) add(line int, field, format string, args ...any) {
	if w.stopped {
		return
	}
	if len(w.errs) == maxErrors {
		w.errs = append(w.errs, &FieldError{File: w.file, Line: line, Msg: "too many problems; fix these first"})
		w.stopped = true
		w.uncut = true
		return
	}
	w.errs = append(w.errs, &FieldError{File: w.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// setLine records where path is set; the first setting wins (an explicit
// key comes before the ones a << merge brings).
func (w *walker) setLine(path string, line int) {
	if _, ok := w.lines[path]; !ok {
		w.lines[path] = line
	}
}

// visit spends one node of the budget on n and reports whether the walk
// goes on: false once the budget or the error limit is exhausted.
func (w *walker) visit(n *yaml.Node) bool {
	if w.stopped {
		return false
	}
	w.budget--
	if w.budget < 0 {
		w.add(n.Line, "", "the document expands to too many values (excessive use of aliases)")
		w.stopped = true
		w.uncut = true
		return false
	}
	return true
}

// walk checks n, found at path, against type t.
func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	if !w.visit(n) {
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return // the parser resolves every alias; nothing to check
		}
		if w.active[n] {
			w.add(n.Line, path, "alias *%s refers to a value that contains it", n.Value)
			w.cutValue(n, t)
			return
		}
		w.active[n] = true
		w.walk(n.Alias, t, path)
		delete(w.active, n)
		if w.bad[n.Alias] {
			w.cutValue(n, t)
		}
		return
	}
	if isNull(n) {
		return // yaml.v3 leaves or zeroes the field: valid for every type
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nodeType {
		return // the field takes any YAML as is
	}
	if decodesItself(t) {
		w.delegate(n, t, path)
		return
	}
	switch n.Kind {
	case yaml.ScalarNode:
		w.scalar(n, t, path)
	case yaml.MappingNode:
		switch t.Kind() {
		case reflect.Struct:
			w.mappingStruct(n, t, path)
		case reflect.Map:
			w.mappingMap(n, t.Key(), t.Elem(), path)
		case reflect.Interface:
			w.mappingMap(n, nil, t, path)
		default:
			w.add(n.Line, path, "want %s, got a mapping", want(t))
			w.cutValue(n, t)
		}
	case yaml.SequenceNode:
		switch t.Kind() {
		case reflect.Slice:
			w.sequence(n, t.Elem(), path)
		case reflect.Array:
			if len(n.Content) != t.Len() {
				w.add(n.Line, path, "want a list of exactly %d items, got %d", t.Len(), len(n.Content))
				w.cutValue(n, t)
				return
			}
			w.sequence(n, t.Elem(), path)
		case reflect.Interface:
			w.sequence(n, t, path)
		default:
			w.add(n.Line, path, "want %s, got a list", want(t))
			w.cutValue(n, t)
		}
	default:
		w.add(n.Line, path, "unexpected YAML node")
		w.cutValue(n, t)
	}
}

// delegate lets yaml.v3 decode a value that decodes itself, and reports
// what it says.
func (w *walker) delegate(n *yaml.Node, t reflect.Type, path string) {
	err := n.Decode(reflect.New(t).Interface())
	if err == nil {
		return
	}
	w.cutValue(n, t)
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		w.add(n.Line, path, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		return
	}
	for _, s := range te.Errors {
		line, msg := splitLine(s)
		if line == 0 {
			line = n.Line
		}
		w.add(line, path, "%s", msg)
	}
}

// scalar checks a scalar by asking yaml.v3 to decode it alone into t: the
// walk and the final decode then agree by construction.
func (w *walker) scalar(n *yaml.Node, t reflect.Type, path string) {
	err := n.Decode(reflect.New(t).Interface())
	if err == nil {
		return
	}
	w.add(n.Line, path, "%s", scalarMsg(n, t, err))
	w.cutValue(n, t)
}

// scalarMsg says why scalar n is not a value of type t, and what would be.
func scalarMsg(n *yaml.Node, t reflect.Type, err error) string {
	v := quote(n.Value)
	if quotedWouldDo(n, t) {
		return v + " is quoted, which makes it a string: write it without quotes"
	}
	switch {
	case t == durationType:
		if tag := n.ShortTag(); tag == "!!int" || tag == "!!float" {
			return v + " is not a duration: give a unit (e.g. 250ms, 2s, 1m)"
		}
		return v + " is not a duration (e.g. 250ms, 2s, 1m)"
	case t == timeType:
		return v + " is not a timestamp (e.g. 2006-01-02 or 2006-01-02T15:04:05Z)"
	case reflect.PointerTo(t).Implements(textUnmarshalerT):
		return v + ": " + strings.TrimPrefix(err.Error(), "yaml: ")
	}
	isNum := n.ShortTag() == "!!int" || n.ShortTag() == "!!float"
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if isNum {
			bits := t.Bits()
			return fmt.Sprintf("%s is not an integer in %d..%d", v, int64(-1)<<(bits-1), int64(math.MaxInt64>>(64-bits)))
		}
		return v + " is not an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if isNum {
			return fmt.Sprintf("%s is not an integer in 0..%d", v, uint64(math.MaxUint64)>>(64-t.Bits()))
		}
		return v + " is not an integer"
	case reflect.Bool:
		return v + " is not a boolean (true or false)"
	case reflect.Float32, reflect.Float64:
		return v + " is not a number"
	case reflect.Struct, reflect.Map, reflect.Slice, reflect.Array:
		return "want " + want(t) + ", got " + v
	}
	return v + ": " + strings.TrimPrefix(err.Error(), "yaml: ")
}

// quotedWouldDo reports whether n is a quoted scalar that t would take
// without its quotes (max_frame: "65536").
func quotedWouldDo(n *yaml.Node, t reflect.Type) bool {
	if n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) == 0 || n.Tag != "" && n.Tag != "!!str" {
		return false
	}
	plain := &yaml.Node{Kind: yaml.ScalarNode, Value: n.Value, Line: n.Line, Column: n.Column}
	tag := plain.ShortTag()
	return tag != "!!str" && tag != "!!null" && plain.Decode(reflect.New(t).Interface()) == nil
}

// want names what a type takes, for "want …, got …".
func want(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration (e.g. 250ms, 2s, 1m)"
	case t == timeType:
		return "a timestamp"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "an integer"
	case reflect.Bool:
		return "a boolean (true or false)"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Struct:
		if si := structInfoOf(t); len(si.names) > 0 {
			return "a mapping (fields: " + si.valid() + ")"
		}
		return "a mapping"
	case reflect.Map:
		return "a mapping"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	return "a " + t.String()
}

// entry is one key: value of a mapping, after << merges.
type entry struct{ key, value *yaml.Node }

// entries returns n's entries with the ones its << merges bring, explicit
// keys first, each key once (the first setting wins, as in yaml.v3), and
// reports duplicate keys.
func (w *walker) entries(n *yaml.Node, path string) []entry {
	var out []entry
	var merges []*yaml.Node
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		id := strconv.Itoa(int(k.Kind)) + ":" + k.Value
		if first, dup := seen[id]; dup {
			w.add(k.Line, join(path, k.Value), "duplicate key, first set at line %d", first.Line)
			w.cut(k)
			continue
		}
		seen[id] = k
		if isMerge(k) {
			merges = append(merges, v)
			continue
		}
		out = append(out, entry{k, v})
	}
	if len(merges) == 0 {
		return out
	}
	have := map[string]bool{}
	for _, e := range out {
		have[keyID(e.key)] = true
	}
	for _, m := range merges {
		for _, e := range w.merged(m, path) {
			if id := keyID(e.key); !have[id] {
				have[id] = true
				out = append(out, e)
			}
		}
	}
	return out
}

// merged returns the entries a << merge value brings: a mapping, or a list
// of mappings, possibly through aliases.
func (w *walker) merged(m *yaml.Node, path string) []entry {
	if !w.visit(m) {
		return nil
	}
	switch m.Kind {
	case yaml.AliasNode:
		if w.active[m] {
			w.add(m.Line, path, "alias *%s refers to a value that contains it", m.Value)
			w.uncut = true
			return nil
		}
		if m.Alias == nil || m.Alias.Kind != yaml.MappingNode {
			w.add(m.Line, path, "a << merge takes a mapping or a list of mappings")
			w.uncut = true
			return nil
		}
		w.active[m] = true
		defer delete(w.active, m)
		return w.merged(m.Alias, path)
	case yaml.MappingNode:
		return w.entries(m, path)
	case yaml.SequenceNode:
		var out []entry
		for _, item := range m.Content {
			if item.Kind != yaml.MappingNode && (item.Kind != yaml.AliasNode || item.Alias == nil || item.Alias.Kind != yaml.MappingNode) {
				w.add(item.Line, path, "a << merge takes a mapping or a list of mappings")
				w.uncut = true
				continue
			}
			out = append(out, w.merged(item, path)...)
		}
		return out
	}
	w.add(m.Line, path, "a << merge takes a mapping or a list of mappings")
	w.uncut = true
	return nil
}

// keyID identifies a key by its resolved text, for merge precedence.
func keyID(k *yaml.Node) string {
	for k.Kind == yaml.AliasNode && k.Alias != nil {
		k = k.Alias
	}
	return strconv.Itoa(int(k.Kind)) + ":" + k.Value
}

// key returns the scalar a key stands for, following an alias, or nil
// after reporting a key that is not a single non-null value.
func (w *walker) key(k *yaml.Node, path string) *yaml.Node {
	r := k
	for i := 0; r.Kind == yaml.AliasNode && r.Alias != nil && i < 100; i++ {
		r = r.Alias
	}
	switch {
	case r.Kind != yaml.ScalarNode:
		w.add(k.Line, path, "a key must be a single value, not %s", describe(r))
		w.cut(k)
		return nil
	case isNull(r):
		w.add(k.Line, path, "empty key")
		w.cut(k)
		return nil
	}
	return r
}

// mappingStruct checks a mapping against struct type t's fields.
func (w *walker) mappingStruct(n *yaml.Node, t reflect.Type, path string) {
	si := structInfoOf(t)
	if si.delegate {
		w.delegate(n, t, path)
		return
	}
	for _, e := range w.entries(n, path) {
		k := w.key(e.key, path)
		if k == nil {
			continue
		}
		var name string
		if err := k.Decode(&name); err != nil {
			w.add(e.key.Line, path, "key %s: %s", quote(k.Value), strings.TrimPrefix(err.Error(), "yaml: "))
			w.cut(e.key)
			continue
		}
		fp := join(path, name)
		ft, known := si.fields[name]
		if !known && si.inlineMap != nil {
			ft, known = si.inlineMap, true
		}
		if !known {
			w.add(e.key.Line, fp, "%s", unknownMsg(si, name))
			w.cut(e.key)
			continue
		}
		w.setLine(fp, e.key.Line)
		w.walk(e.value, ft, fp)
	}
}

// unknownMsg says a field is unknown and what is known.
func unknownMsg(si *structInfo, name string) string {
	if len(si.names) == 0 {
		return "unknown field; nothing is valid here"
	}
	msg := "unknown field"
	if s := si.suggest(name); s != "" {
		msg += " (did you mean " + s + "?)"
	}
	return msg + "; valid fields here: " + si.valid()
}

// mappingMap checks a mapping against a map type; kt nil means any keys
// (an interface value).
func (w *walker) mappingMap(n *yaml.Node, kt, et reflect.Type, path string) {
	for _, e := range w.entries(n, path) {
		k := w.key(e.key, path)
		if k == nil {
			continue
		}
		fp := join(path, k.Value)
		if kt != nil {
			if err := k.Decode(reflect.New(kt).Interface()); err != nil {
				w.add(e.key.Line, fp, "key %s", scalarMsg(k, kt, err))
				w.cut(e.key)
				continue
			}
		}
		w.setLine(fp, e.key.Line)
		w.walk(e.value, et, fp)
	}
}

// sequence checks every item of a list against et.
func (w *walker) sequence(n *yaml.Node, et reflect.Type, path string) {
	for i, item := range n.Content {
		ip := path + "[" + strconv.Itoa(i) + "]"
		w.setLine(ip, item.Line)
		w.walk(item, et, ip)
	}
}

// isNull mirrors yaml.v3's test for a null value (decode.go, prepare).
func isNull(n *yaml.Node) bool { return n.ShortTag() == "!!null" }

// isMerge mirrors yaml.v3's test for a << merge key (decode.go, isMerge).
func isMerge(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Value == "<<" && (n.Tag == "" || n.Tag == "!" || n.Tag == "!!merge" || n.Tag == "tag:yaml.org,2002:merge")
}

// join appends a field name to a path.
func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// describe names a node for "got …".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return quote(n.Value)
}

// quote quotes a scalar for a message, cut to 40 characters: the message
// must stay one readable line.
func quote(s string) string {
	const max = 40
	if utf8.RuneCountInString(s) > max {
		r := []rune(s)
		s = string(r[:max-1]) + "…"
	}
	return strconv.Quote(s)
}

// countNodes counts the nodes written in the document, aliases not
// followed: the measure of how far expansion may go.
func countNodes(n *yaml.Node) int {
	c := 1
	for _, ch := range n.Content {
		c += countNodes(ch)
	}
	return c
}

// yamlError turns one of yaml.v3's errors ("yaml: line 3: mapping values
// are not allowed in this context") into a FieldError with that line.
func yamlError(file string, err error) *FieldError {
	line, msg := splitLine(strings.TrimPrefix(err.Error(), "yaml: "))
	return &FieldError{File: file, Line: line, Msg: "invalid YAML: " + msg}
}

// splitLine splits "line N: msg" into N and msg; 0 and s without one.
func splitLine(s string) (int, string) {
	rest, ok := strings.CutPrefix(s, "line ")
	if !ok {
		return 0, s
	}
	num, msg, ok := strings.Cut(rest, ": ")
	if !ok {
		return 0, s
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return 0, s
	}
	return n, msg
}
