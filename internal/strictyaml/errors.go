package strictyaml

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// FieldError is one problem in a configuration: where it is and what is
// wrong, with what would be valid.
type FieldError struct {
	// File names the configuration ("switchboard.yaml", "embedded
	// default"); empty for a configuration built in code.
	File string
	// Line is the 1-based line in File that sets the value; 0 when the value
	// is not in the file (a default, or a configuration built in code).
	Line int
	// Field is the field's path as an operator reads it
	// ("server.max_frame", "tiers[1] (nextgen).pool.min_conns"); empty for a
	// problem of the document itself (a syntax error).
	Field string
	// Msg says what is wrong and what would be valid.
	Msg string
	// Paths are the Lines keys where the file may set the value, in order of
	// precedence; empty means Field itself. A config whose sections inherit
	// from others lists the inherited path after the field's own (see
	// Errors.Locate).
	Paths []string
}

// Error formats the problem as FILE: line N: FIELD: MSG, leaving out what is
// unknown. "line N" rather than FILE:N keeps yaml.v3's wording, which
// operators and existing tooling already grep for.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one configuration, in file order for
// decoding problems and in field order for validation problems. Its Error
// prints one problem per line; errors.As finds it through any wrapping, and
// List takes it apart for printing.
type Errors []*FieldError

// Error prints one problem per line.
func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap returns the problems, for errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Err returns es, or nil when it holds no problem: a nil Errors stored in
// an error interface would not compare equal to nil.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// Locate sets File on every problem and, on those without a line, the line
// of the first of its Paths (or of its Field) that lines holds. A line found
// through a path other than the first means the value was inherited from
// there, which the message then says: the line alone would point at a
// field with another name.
func (es Errors) Locate(file string, lines Lines) {
	for _, e := range es {
		e.File = file
		if e.Line > 0 {
			continue
		}
		paths := e.Paths
		if len(paths) == 0 {
			paths = []string{e.Field}
		}
		for i, p := range paths {
			if l, ok := lines[p]; ok {
				e.Line = l
				if i > 0 {
					e.Msg += " (inherited from " + p + ")"
				}
				break
			}
		}
	}
}

// Except returns the problems of es that concern none of the fields the
// problems of others name: one whose field (or any of its Paths) is equal
// to, inside or around a field of others is left out. A caller of
// DecodePartial validates what decoded and reports
// append(decodeErrs, validationErrs.Except(decodeErrs)...): a value that
// did not decode took its default, and a complaint about that default, or
// about the section it left incomplete, would only mislead.
func (es Errors) Except(others Errors) Errors {
	var out Errors
	for _, e := range es {
		paths := e.Paths
		if len(paths) == 0 {
			paths = []string{e.Field}
		}
		related := false
		for _, o := range others {
			for _, p := range paths {
				related = related || o.Field != "" && p != "" && (nested(p, o.Field) || nested(o.Field, p))
			}
		}
		if !related {
			out = append(out, e)
		}
	}
	return out
}

// nested reports whether field path a is b or lies inside it
// ("tiers[1].pool.min_conns" inside "tiers[1]" and "tiers").
func nested(a, b string) bool {
	rest, ok := strings.CutPrefix(a, b)
	return ok && (rest == "" || rest[0] == '.' || rest[0] == '[')
}

// List returns the problems err holds, one error each, for printing one per
// line: the FieldErrors of the first Errors in err's chain, else err alone
// (a file that cannot be read). It returns nil for a nil err.
func List(err error) []error {
	if err == nil {
		return nil
	}
	var es Errors
	if errors.As(err, &es) && len(es) > 0 {
		return es.Unwrap()
	}
	return []error{err}
}

// Report prints err's problems to w for a -check-config: one per line (see
// List), then a count naming file ("switchboard.yaml: 3 errors"), so that
// the last line says how much is left to fix.
func Report(w io.Writer, file string, err error) {
	list := List(err)
	for _, e := range list {
		fmt.Fprintln(w, e)
	}
	noun := "errors"
	if len(list) == 1 {
		noun = "error"
	}
	fmt.Fprintf(w, "%s: %d %s\n", file, len(list), noun)
}
