package xmlapi

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
)

// charsetError is a declared encoding this front end cannot read.
type charsetError struct {
	label  string
	reason string
}

func (e *charsetError) Error() string { return "encoding " + clip(e.label) + ": " + e.reason }

// cp1252High maps Windows-1252 bytes 0x80–0x9F (where it differs from
// ISO-8859-1); 0 marks the five undefined bytes.
var cp1252High = [32]rune{
	0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017D, 0,
	0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178,
}

// charsetReader is the xml.Decoder's CharsetReader: encoding/xml reads
// UTF-8 only and refuses any other declared encoding unless this converts
// it (docs/webex-xml.md §2.3). The encodings clients are known to declare
// (UTF-8, ISO-8859-1, BIG5, Shift_JIS, EUC-KR, GB2312) are handled as
// follows:
//
//   - ISO-8859-1 (and its aliases, and US-ASCII, read as its superset) and
//     Windows-1252 are converted in full;
//   - UTF-8 under another label ("utf8") and UTF-16 (already converted to
//     UTF-8 by decodeUTF16 when the body had a byte order mark) pass
//     through;
//   - BIG5, Shift_JIS (Windows-31J), EUC-JP, EUC-KR and GB2312/GBK/GB18030
//     are converted with golang.org/x/text's decoders; a byte sequence the
//     encoding does not define is a FAILURE 000000 naming the encoding
//     (never a silent U+FFFD).
//
// Anything else is a FAILURE 000000 naming the encoding.
func charsetReader(label string, input io.Reader) (io.Reader, error) {
	l := strings.ToLower(strings.TrimSpace(label))
	switch l {
	case "iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "latin-1", "l1", "cp819", "ibm819",
		"us-ascii", "ascii", "iso-ir-100", "csisolatin1":
		return &singleByteReader{r: bufio.NewReader(input)}, nil
	case "windows-1252", "cp1252", "x-cp1252":
		return &singleByteReader{r: bufio.NewReader(input), cp1252: true, label: label}, nil
	case "utf8", "utf-16", "utf16", "utf-16le", "utf-16be":
		return input, nil
	}
	if enc := multiByte[l]; enc != nil {
		return decodeStrict(input, enc, label)
	}
	return nil, &charsetError{label: label, reason: "not supported"}
}

// singleByteReader converts ISO-8859-1 or Windows-1252 to UTF-8.
type singleByteReader struct {
	r       *bufio.Reader
	cp1252  bool
	label   string
	pending [utf8.UTFMax]byte
	np, ip  int
}

func (s *singleByteReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if s.ip < s.np {
			c := copy(p[n:], s.pending[s.ip:s.np])
			s.ip += c
			n += c
			continue
		}
		b, err := s.r.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		r := rune(b)
		if s.cp1252 && b >= 0x80 && b < 0xA0 {
			if r = cp1252High[b-0x80]; r == 0 {
				return n, &charsetError{label: s.label, reason: fmt.Sprintf("byte %#x is undefined", b)}
			}
		}
		if r < utf8.RuneSelf {
			p[n] = byte(r)
			n++
			continue
		}
		s.np, s.ip = utf8.EncodeRune(s.pending[:], r), 0
	}
	return n, nil
}

// multiByte maps the declared labels of the East Asian encodings clients
// send (docs/webex-xml.md §2.3) to their decoders.
var multiByte = map[string]encoding.Encoding{
	"big5": traditionalchinese.Big5, "big5-hkscs": traditionalchinese.Big5, "csbig5": traditionalchinese.Big5,
	"shift_jis": japanese.ShiftJIS, "shift-jis": japanese.ShiftJIS, "sjis": japanese.ShiftJIS,
	"ms_kanji": japanese.ShiftJIS, "csshiftjis": japanese.ShiftJIS, "windows-31j": japanese.ShiftJIS,
	"euc-jp": japanese.EUCJP, "cseucpkdfmtjapanese": japanese.EUCJP,
	"euc-kr": korean.EUCKR, "ks_c_5601-1987": korean.EUCKR, "cseuckr": korean.EUCKR,
	"gb2312": simplifiedchinese.GBK, "gbk": simplifiedchinese.GBK, "cp936": simplifiedchinese.GBK,
	"gb18030": simplifiedchinese.GB18030,
}

// decodeStrict converts the whole document (already bounded by the body
// size cap) and refuses it if the decoder had to put U+FFFD in place of an
// undefined byte sequence (none of these encodings can encode U+FFFD
// itself), so a mis-declared document fails loudly instead of storing
// mangled names.
func decodeStrict(input io.Reader, enc encoding.Encoding, label string) (io.Reader, error) {
	raw, err := io.ReadAll(input)
	if err != nil {
		return nil, err
	}
	out, err := enc.NewDecoder().Bytes(raw)
	if err != nil {
		return nil, &charsetError{label: label, reason: err.Error()}
	}
	if bytes.Contains(out, replacementUTF8) {
		return nil, &charsetError{label: label, reason: "byte sequence not defined in this encoding"}
	}
	return bytes.NewReader(out), nil
}

var replacementUTF8 = []byte(string(utf8.RuneError))

// decodeUTF16 converts a body that starts with a UTF-16 byte order mark to
// UTF-8 (encoding/xml reads only byte-oriented encodings). ok is false when
// there is no such mark.
func decodeUTF16(body []byte) (out []byte, ok bool) {
	if len(body) < 2 {
		return body, false
	}
	var be bool
	switch {
	case body[0] == 0xFE && body[1] == 0xFF:
		be = true
	case body[0] == 0xFF && body[1] == 0xFE:
	default:
		return body, false
	}
	body = body[2:]
	out = make([]byte, 0, len(body))
	for i := 0; i+1 < len(body); i += 2 {
		u := uint16(body[i+1])<<8 | uint16(body[i])
		if be {
			u = uint16(body[i])<<8 | uint16(body[i+1])
		}
		r := rune(u)
		if utf16.IsSurrogate(r) && i+3 < len(body) {
			u2 := uint16(body[i+3])<<8 | uint16(body[i+2])
			if be {
				u2 = uint16(body[i+2])<<8 | uint16(body[i+3])
			}
			r = utf16.DecodeRune(r, rune(u2))
			i += 2
		}
		out = utf8.AppendRune(out, r)
	}
	return out, true
}
