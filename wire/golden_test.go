package wire_test

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"switchboard/wire"
)

var update = flag.Bool("update", false, "rewrite wire/testdata/*.hex from the canonical messages")

// goldenCase is one frame of wire/testdata: a canonical message and the file
// that holds its bytes.
type goldenCase struct {
	file        string      // base name under testdata, without ".hex"
	description string      // the file's first line
	hdr         wire.Header // the frame's header
	msg         message     // payload of a successful frame
	errMsg      string      // message of an error frame (hdr.Status != OK)
}

func (c goldenCase) path() string { return filepath.Join("testdata", c.file+".hex") }

// encode builds the frame with the codec, the way a sender does.
func (c goldenCase) encode() ([]byte, error) {
	if c.hdr.Status != wire.StatusOK {
		req := wire.Header{Op: c.hdr.Op, ID: c.hdr.ID}
		return wire.AppendError(nil, req, c.hdr.Status, c.errMsg), nil
	}
	return wire.AppendFrame(nil, c.hdr, c.msg, wire.DefaultMaxFrame)
}

func request(op wire.Op, id uint64) wire.Header { return wire.Header{Op: op, ID: id} }

func response(op wire.Op, id uint64) wire.Header {
	return wire.Header{Op: op, Flags: wire.FlagResponse, ID: id}
}

func errorFrame(op wire.Op, id uint64, s wire.Status) wire.Header {
	return wire.Header{Op: op, Flags: wire.FlagResponse, Status: s, ID: id}
}

// goldenCases lists every message of both protocols, in both directions, and
// every status code once in an error frame.
func goldenCases() []goldenCase {
	b := bridge()
	alloc := &wire.AllocateRequest{Token: []byte("tok-1"), Spec: createSpec(), Meta: meta()}
	allocResp := &wire.AllocateResponse{Key: sessionKey, Tier: []byte("primary-large"), Bridge: b}
	replayed := *allocResp
	replayed.Replayed = true
	return []goldenCase{
		// Front-end protocol (Unix socket), ops 0x01–0x05.
		{"fe_ping_req", `front end: PING request, id 1, empty payload`,
			request(wire.OpPing, 1), &wire.Empty{}, ""},
		{"fe_ping_resp", `front end: PING response, id 1, empty payload`,
			response(wire.OpPing, 1), &wire.Empty{}, ""},
		{"fe_allocate_req", `front end: ALLOCATE request, id 7, token "tok-1", "Sample Teleconference-only meeting", 2005-04-18T07:08:51Z, timeZoneID 45, 60 min, ANNOUNCENAME, DAILY every 1 until 2005-12-31T15:59:59Z, 1 full + 1 limited attendee, 25-byte meta`,
			request(wire.OpAllocate, 7), alloc, ""},
		{"fe_allocate_req_notoken", `front end: ALLOCATE request, id 8, no token, "Réunion mensuelle – EMEA" (UTF-8), time zone unset (-1), 45 min, NOTONE, MONTHLY every 2 on the 3rd THU, 40 full + 250 limited attendees, empty meta`,
			request(wire.OpAllocate, 8), &wire.AllocateRequest{Spec: monthlySpec()}, ""},
		{"fe_allocate_resp", `front end: ALLOCATE response, id 7, key 904617253, first answer, tier "primary-large", bridge "pl-0042", toll "+1-408-555-0100", toll-free "+1-866-555-0199", host code "731562", attendee code "284619"`,
			response(wire.OpAllocate, 7), allocResp, ""},
		{"fe_allocate_resp_replayed", `front end: ALLOCATE response, id 9, a retry of token "tok-1": the first result again with replayed = 1`,
			response(wire.OpAllocate, 9), &replayed, ""},
		{"fe_lookup_req", `front end: LOOKUP request, id 10, key 904617253`,
			request(wire.OpLookup, 10), &wire.KeyRequest{Key: sessionKey}, ""},
		{"fe_lookup_resp", `front end: LOOKUP response, id 10, the reservation of key 904617253 on "primary-large" with its bridge, spec and meta`,
			response(wire.OpLookup, 10), &wire.Reservation{Key: sessionKey, Tier: []byte("primary-large"), Bridge: b, Spec: createSpec(), Meta: meta()}, ""},
		{"fe_update_req", `front end: UPDATE request, id 11, key 904617253, "Test Setting Teleconf-only", timeZoneID 16, 90 min, BEEP, WEEKLY every 1 on TUE and SAT, 3 full + 12 limited attendees, 25-byte meta`,
			request(wire.OpUpdate, 11), &wire.UpdateRequest{Key: sessionKey, Spec: updateSpec(), Meta: meta()}, ""},
		{"fe_update_resp", `front end: UPDATE response, id 11, the updated reservation of key 904617253`,
			response(wire.OpUpdate, 11), &wire.Reservation{Key: sessionKey, Tier: []byte("primary-large"), Bridge: b, Spec: updateSpec(), Meta: meta()}, ""},
		{"fe_release_req", `front end: RELEASE request, id 12, key 904617253`,
			request(wire.OpRelease, 12), &wire.KeyRequest{Key: sessionKey}, ""},
		{"fe_release_resp", `front end: RELEASE response, id 12, empty payload`,
			response(wire.OpRelease, 12), &wire.Empty{}, ""},

		// Telephony protocol (TCP), ops 0x10–0x15.
		{"tel_hello_req", `telephony: HELLO request, id 1, client "switchboard-a1"`,
			request(wire.OpHello, 1), &wire.Hello{Client: []byte("switchboard-a1")}, ""},
		{"tel_hello_resp", `telephony: HELLO response, id 1, server "telsim-pl-1", tier "primary-large", capacity 500, in use 37`,
			response(wire.OpHello, 1), &wire.HelloResponse{Server: []byte("telsim-pl-1"), Tier: []byte("primary-large"), Load: wire.Load{Capacity: 500, InUse: 37}}, ""},
		{"tel_ping_req", `telephony: PING (TPING) request, id 2, empty payload`,
			request(wire.OpTelPing, 2), &wire.Empty{}, ""},
		{"tel_pong", `telephony: PONG (TPING response), id 2, capacity 500, in use 38`,
			response(wire.OpTelPing, 2), &wire.Load{Capacity: 500, InUse: 38}, ""},
		{"tel_reserve_req", `telephony: RESERVE request, id 3, key 904617253 with the spec and meta of fe_allocate_req`,
			request(wire.OpReserve, 3), &wire.UpdateRequest{Key: sessionKey, Spec: createSpec(), Meta: meta()}, ""},
		{"tel_reserve_resp", `telephony: RESERVE response, id 3, bridge "pl-0042" and how to dial in`,
			response(wire.OpReserve, 3), &b, ""},
		{"tel_update_req", `telephony: UPDATE (TUPDATE) request, id 4, key 904617253 with the spec and meta of fe_update_req`,
			request(wire.OpTelUpdate, 4), &wire.UpdateRequest{Key: sessionKey, Spec: updateSpec(), Meta: meta()}, ""},
		{"tel_update_resp", `telephony: UPDATE (TUPDATE) response, id 4, the bridge`,
			response(wire.OpTelUpdate, 4), &b, ""},
		{"tel_release_req", `telephony: RELEASE (TRELEASE) request, id 5, key 904617253`,
			request(wire.OpTelRelease, 5), &wire.KeyRequest{Key: sessionKey}, ""},
		{"tel_release_resp", `telephony: RELEASE (TRELEASE) response, id 5, empty payload`,
			response(wire.OpTelRelease, 5), &wire.Empty{}, ""},
		{"tel_lookup_req", `telephony: LOOKUP (TLOOKUP) request, id 6, key 904617253`,
			request(wire.OpTelLookup, 6), &wire.KeyRequest{Key: sessionKey}, ""},
		{"tel_lookup_resp", `telephony: LOOKUP (TLOOKUP) response, id 6, the server's record: bridge, spec and meta`,
			response(wire.OpTelLookup, 6), &wire.Record{Bridge: b, Spec: createSpec(), Meta: meta()}, ""},

		// Every status code once in an error frame.
		{"err_bad_request", `front end: error response BAD_REQUEST (1) to ALLOCATE id 20, message "time zone 62 not in -1..61"`,
			errorFrame(wire.OpAllocate, 20, wire.StatusBadRequest), nil, "time zone 62 not in -1..61"},
		{"err_not_found", `front end: error response NOT_FOUND (2) to LOOKUP id 21, message "no reservation under key 904617253"`,
			errorFrame(wire.OpLookup, 21, wire.StatusNotFound), nil, "no reservation under key 904617253"},
		{"err_unavailable", `front end: error response UNAVAILABLE (3) to ALLOCATE id 22, message "no tier could serve"`,
			errorFrame(wire.OpAllocate, 22, wire.StatusUnavailable), nil, "no tier could serve"},
		{"err_capacity", `front end: error response CAPACITY (4) to ALLOCATE id 23, message "every tier is full"`,
			errorFrame(wire.OpAllocate, 23, wire.StatusCapacity), nil, "every tier is full"},
		{"err_overloaded", `front end: error response OVERLOADED (5) to ALLOCATE id 24, message "admission limit reached"`,
			errorFrame(wire.OpAllocate, 24, wire.StatusOverloaded), nil, "admission limit reached"},
		{"err_keys_exhausted", `front end: error response KEYS_EXHAUSTED (6) to ALLOCATE id 25, message "session key domain used up"`,
			errorFrame(wire.OpAllocate, 25, wire.StatusKeysExhausted), nil, "session key domain used up"},
		{"err_timeout", `front end: error response TIMEOUT (7) to ALLOCATE id 26, message "deadline exceeded"`,
			errorFrame(wire.OpAllocate, 26, wire.StatusTimeout), nil, "deadline exceeded"},
		{"err_internal", `telephony: error response INTERNAL (8) to RESERVE id 7, empty message`,
			errorFrame(wire.OpReserve, 7, wire.StatusInternal), nil, ""},
		{"err_key_exists", `telephony: error response KEY_EXISTS (9) to RESERVE id 8, message "key 904617253 is reserved"`,
			errorFrame(wire.OpReserve, 8, wire.StatusKeyExists), nil, "key 904617253 is reserved"},
		{"err_draining", `telephony: error response DRAINING (10) to RESERVE id 9, message "server is draining"`,
			errorFrame(wire.OpReserve, 9, wire.StatusDraining), nil, "server is draining"},
		{"err_unsupported", `front end: error response UNSUPPORTED (11) to op 0x12 (RESERVE, a telephony op) sent to the front-end socket, id 27`,
			errorFrame(wire.OpReserve, 27, wire.StatusUnsupported), nil, "op RESERVE is not a front-end op"},
	}
}

func readGolden(t *testing.T, c goldenCase) []byte {
	t.Helper()
	text, err := os.ReadFile(c.path())
	if err != nil {
		t.Fatalf("%v (run go test ./wire -update to create it)", err)
	}
	if !strings.HasPrefix(string(text), "# "+c.description+"\n") {
		t.Errorf("%s: first line is not the description %q", c.path(), c.description)
	}
	b, err := parseHex(string(text))
	if err != nil {
		t.Fatalf("%s: %v", c.path(), err)
	}
	return b
}

// goldenFrame returns the bytes of the named golden file.
func goldenFrame(t *testing.T, name string) []byte {
	t.Helper()
	for _, c := range goldenCases() {
		if c.file == name {
			return readGolden(t, c)
		}
	}
	t.Fatalf("no golden case %s", name)
	return nil
}

func TestGolden(t *testing.T) {
	for _, c := range goldenCases() {
		t.Run(c.file, func(t *testing.T) {
			enc, err := c.encode()
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			text, err := annotate(enc, c.description)
			if err != nil {
				t.Fatalf("the layout of docs/protocol.md does not match the codec: %v", err)
			}
			if *update {
				if err := os.WriteFile(c.path(), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			file := readGolden(t, c)

			// Encode: the canonical message gives the file's bytes.
			if !bytes.Equal(enc, file) {
				t.Fatalf("encoding differs from %s\n got:\n%s\nwant: % x", c.path(), text, file)
			}

			// Decode: the file's bytes give the canonical message, knowing
			// nothing but the header.
			h, n, err := wire.ParseHeader(file, wire.DefaultMaxFrame)
			if err != nil || n != len(file) || h != c.hdr {
				t.Fatalf("ParseHeader = %+v, %d, %v; want %+v, %d, nil", h, n, err, c.hdr, len(file))
			}
			payload := file[wire.HeaderSize:]
			if h.Status != wire.StatusOK {
				var m wire.ErrorMessage
				if err := m.Decode(payload); err != nil || string(m.Message) != c.errMsg {
					t.Fatalf("ErrorMessage.Decode = %q, %v; want %q", m.Message, err, c.errMsg)
				}
				err := wire.DecodeError(h.Status, payload)
				var re *wire.RemoteError
				if !errors.As(err, &re) || re.Status != c.hdr.Status || re.Message != c.errMsg || !errors.Is(err, c.hdr.Status) {
					t.Fatalf("DecodeError = %#v", err)
				}
				return
			}
			m := newPayload(h.Op, h.IsResponse())
			if m == nil {
				t.Fatalf("no payload type for %v", h.Op)
			}
			if err := m.Decode(payload); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !equal(m, c.msg) {
				t.Fatalf("decoded %+v\nwant    %+v", m, c.msg)
			}
		})
	}
}

// TestGoldenFilesCovered fails on a testdata file that no case produces, so
// a renamed case cannot leave a stale vector behind.
func TestGoldenFilesCovered(t *testing.T) {
	known := map[string]bool{}
	for _, c := range goldenCases() {
		if known[c.file] {
			t.Errorf("duplicate golden case %s", c.file)
		}
		known[c.file] = true
	}
	paths, err := filepath.Glob(filepath.Join("testdata", "*.hex"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".hex")
		if known[name] {
			continue
		}
		if *update {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("%s matches no golden case (run go test ./wire -update to remove it)", p)
	}
}

// TestGoldenCoverage checks that the golden files cover every op in both
// directions and every status code in an error frame.
func TestGoldenCoverage(t *testing.T) {
	type key struct {
		op   wire.Op
		resp bool
	}
	seen := map[key]bool{}
	statuses := map[wire.Status]bool{}
	for _, c := range goldenCases() {
		if c.hdr.Status != wire.StatusOK {
			statuses[c.hdr.Status] = true
			continue
		}
		seen[key{c.hdr.Op, c.hdr.IsResponse()}] = true
	}
	for op := wire.Op(0); op < 0xff; op++ {
		if !op.IsFrontEnd() && !op.IsTelephony() {
			continue
		}
		for _, resp := range []bool{false, true} {
			if !seen[key{op, resp}] {
				t.Errorf("no golden vector for %v response=%v", op, resp)
			}
		}
	}
	for s := wire.Status(1); s.Known(); s++ {
		if !statuses[s] {
			t.Errorf("no golden error frame for %v", s)
		}
	}
}

// TestGoldenStream reads every golden frame back to back from one stream,
// the way a pipelined connection delivers them.
func TestGoldenStream(t *testing.T) {
	var stream []byte
	cases := goldenCases()
	for _, c := range cases {
		stream = append(stream, readGolden(t, c)...)
	}
	r := bytes.NewReader(stream)
	var buf []byte
	for _, c := range cases {
		var h wire.Header
		var p []byte
		var err error
		h, p, buf, err = wire.ReadFrame(r, buf, wire.DefaultMaxFrame)
		if err != nil {
			t.Fatalf("%s: ReadFrame: %v", c.file, err)
		}
		if h != c.hdr {
			t.Fatalf("%s: header %+v, want %+v", c.file, h, c.hdr)
		}
		if c.hdr.Status == wire.StatusOK {
			m := newPayload(h.Op, h.IsResponse())
			if err := m.Decode(p); err != nil || !equal(m, c.msg) {
				t.Fatalf("%s: decoded %+v, %v", c.file, m, err)
			}
		}
	}
	if _, _, _, err := wire.ReadFrame(r, buf, wire.DefaultMaxFrame); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

var docBlock = regexp.MustCompile("(?s)<!-- golden: ([a-z_]+)\\.hex -->\\s*```[a-z]*\\n(.*?)```")

// TestProtocolDocExamples checks that the worked examples of
// docs/protocol.md are byte for byte the golden files they quote.
func TestProtocolDocExamples(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "protocol.md"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]goldenCase{}
	for _, c := range goldenCases() {
		files[c.file] = c
	}
	var quoted []string
	for _, m := range docBlock.FindAllStringSubmatch(string(doc), -1) {
		name, block := m[1], m[2]
		quoted = append(quoted, name)
		c, ok := files[name]
		if !ok {
			t.Errorf("docs/protocol.md quotes %s.hex, which is not a golden file", name)
			continue
		}
		got, err := parseHex(block)
		if err != nil {
			t.Errorf("docs/protocol.md, example %s: %v", name, err)
			continue
		}
		if want := readGolden(t, c); !bytes.Equal(got, want) {
			t.Errorf("docs/protocol.md, example %s differs from %s:\n got % x\nwant % x", name, c.path(), got, want)
		}
	}
	for _, want := range []string{"fe_allocate_req", "fe_allocate_resp", "err_not_found"} {
		if !slices.Contains(quoted, want) {
			t.Errorf("docs/protocol.md has no worked example quoting %s.hex", want)
		}
	}
}
