package xmlapi

import (
	"testing"

	"switchboard/internal/testsupport"
)

// TestTrailingCRRoundTrips: issue 11 point 5 promises that a CR sent as
// &#13; comes back from Get as a CR. TestXMLFidelity checks CRs inside a
// value only (each of its values ends in "x"); a value that ends (or
// begins) with a CR loses it: every leaf's text is trimmed of white space
// (request.go, parser.end), and &#13; decodes to white space. So "line
// one&#13;" is stored and returned as "line one". Through the real daemon;
// no timing involved.
func TestTrailingCRRoundTrips(t *testing.T) {
	rd := startDaemon(t, testsupport.ShortTempDir(t), nil)
	fe := startFrontEnd(t, testConfig(t), dialDaemon(t, rd.Socket()))
	for name, c := range map[string]struct{ sent, want string }{
		"trailing CR": {"line one&#13;", "line one\r"},
		"leading CR":  {"&#13;line one", "\rline one"},
	} {
		t.Run(name, func(t *testing.T) {
			key := createKey(t, post(t, fe, envelope(hostSec, typeCreate,
				"<metaData><confName>"+c.sent+"</confName></metaData><teleconference><extTelephonyDescription>"+c.sent+"</extTelephonyDescription></teleconference>")))
			get := post(t, fe, envelope(hostSec, typeGet, keyBody(key)))
			mustSucceed(t, get)
			for _, p := range []string{"body/bodyContent/metaData/confName", "body/bodyContent/teleconference/extTelephonyDescription"} {
				got := "<missing>"
				if n := get.root.find(p); n != nil {
					got = n.Text
				}
				if got != c.want {
					t.Errorf("%s sent as %q came back as %q, want %q", p, c.sent, got, c.want)
				}
			}
		})
	}
}
