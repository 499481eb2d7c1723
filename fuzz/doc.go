// Package fuzz holds the fuzz targets of switchboard's decoders: one per
// wire decoder (every Decode method of package wire, ParseHeader, ReadFrame
// and DecodeError) and one for the strict config decoder
// (FuzzStrictYAML: internal/strictyaml accepts exactly what yaml.v3
// accepts, with the same values, and never leaves an error unexplained;
// FuzzDecodePartial: its partial decode reports what Decode reports) and
// one for the in-flight table's slot decoder (FuzzInflightSlot: package
// inflight reads back whatever a killed process left in its file).
// It contains no code of its own, only tests.
//
// Why a package of its own: every byte a decoder sees comes from a peer we do
// not control (a front end in another language, a telephony adapter, a
// half-dead TCP connection), and the daemon runs for months. A decoder that
// panics, reads past its input, allocates what a length prefix asks for, or
// accepts two encodings of one message is a crash, an outage or a cache
// split waiting for the right bytes. Keeping the targets apart from package
// wire keeps its unit tests fast and lets the fuzzing corpus grow without
// touching the contract package.
//
// Each target checks more than "no panic":
//
//   - a decode either succeeds or fails with one of wire's sentinel errors
//     (ErrTruncated, ErrTrailing, ErrFieldTooLong, ErrBadValue, or a framing
//     error for headers);
//   - a successful decode re-encodes to exactly the input (the encoding is
//     canonical) and decodes again to an equal message (round-trip
//     stability), also when decoded into a struct that held another message;
//   - ParseHeader agrees with an independent reading of the 16 header bytes,
//     and ReadFrame never reads the payload of a frame it refuses nor buffers
//     more than the maximum frame size.
//
// The seed corpora in testdata/fuzz/FuzzX/golden-* are generated from the
// golden vectors of wire/testdata and kept in sync by TestSeedCorpus
// (regenerate with go test ./fuzz -run TestSeedCorpus -update); the targets
// also add edge cases with f.Add. Plain go test ./fuzz runs every seed as a
// regular test in well under a second. To fuzz, one target at a time:
//
//	go test ./fuzz -run XXX -fuzz '^FuzzAllocateRequest$' -fuzztime 60s
//
// A failing input is written to testdata/fuzz/FuzzX/; fix the decoder and
// commit the input, which then runs as a regression seed.
package fuzz
