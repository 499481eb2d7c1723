// Package strictyaml decodes a YAML configuration file strictly and reports
// every problem in it at once, each naming the file, the line, the field and
// what would be valid there.
//
// Why not yaml.v3 alone: with KnownFields(true) it refuses unknown fields, but
// its messages name Go types rather than config fields ("field bogus not
// found in type daemon.Config", "cannot unmarshal !!str `fast` into
// time.Duration"), never say what would have been valid, and know nothing of
// the validation that follows decoding, whose errors then carry no line. An
// operator fixing a file at 3 a.m. wants the compiler's treatment instead:
//
//	switchboard.yaml: line 14: server.max_frme: unknown field (did you mean max_frame?); valid fields here: transport, max_frame, …
//	switchboard.yaml: line 20: server.request_timeout: "fast" is not a duration (e.g. 250ms, 2s, 1m)
//	switchboard.yaml: line 31: tiers[1] (nextgen).pool.min_conns: 100 not in 1..64 (inherited from pool.min_conns)
//
// Decode parses the document into a yaml.Node tree, walks it against the Go
// type of the destination (the same `yaml` struct tags yaml.v3 reads) and
// collects every structural problem: unknown fields, values of the wrong
// kind or unparsable scalars, duplicate keys. Only a clean document is then
// decoded by yaml.v3 itself, so values land exactly as yaml.v3 has always put
// them (scalars are even checked by yaml.v3: the walk asks it to decode each
// scalar alone, so the two cannot disagree about what a duration or an
// integer is). Decode is stricter than yaml.v3 in a few ways: an empty
// document, more than one document (and a syntax error after the first,
// which yaml.v3 never reads) and an empty (null) key are errors.
// FuzzStrictYAML in package fuzz holds it to exactly that.
//
// Decode also returns Lines, the line of every field path it saw, so that
// errors found later by a config's own validation can be given a line too:
// validation returns FieldErrors naming their paths and the loader calls
// Errors.Locate. A FieldError whose value came from a default, not from the
// file, has no line.
//
// DecodePartial goes one step further, so that a loader can report every
// problem in one pass rather than in rounds: on a document with problems it
// cuts out the values and keys they were found at (a cut list item becomes
// a zero item, so indexes and paths hold), decodes the rest, and says so;
// the loader validates what decoded and leaves out, with Errors.Except, the
// validation problems at or around a field that did not decode. Problems a
// cut cannot remove (not YAML, a bad << merge, too many problems) stop
// there, as with Decode. FuzzDecodePartial holds it to Decode.
//
// Field paths are written as operators read them: server.max_frame,
// tiers[0].pool.min_conns, simulators[1].name.
package strictyaml
