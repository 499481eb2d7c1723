package xmlapi

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"switchboard/internal/strictyaml"
)

// configProblems parses y and returns its problems, one string each,
// checking that the error wraps ErrConfig.
func configProblems(t *testing.T, y string) []string {
	t.Helper()
	_, err := ParseConfig([]byte(y), "x.yaml")
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("error %v, want an ErrConfig", err)
	}
	var out []string
	for _, e := range strictyaml.List(err) {
		out = append(out, e.Error())
	}
	return out
}

func TestConfigProblemsHaveLines(t *testing.T) {
	h, err := testHashes()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"decoding", "http:\n  max_body: 1\n  read_timeout: slow\nxml: {max_depth: deep}\naccounts: {web_ex_id: a}\n", []string{
			"x.yaml: line 2: http.max_body: unknown field; valid fields here: max_body_bytes, max_header_bytes, read_header_timeout, read_timeout, write_timeout, idle_timeout, shutdown_timeout, allow_sample_account",
			`x.yaml: line 3: http.read_timeout: "slow" is not a duration (e.g. 250ms, 2s, 1m)`,
			`x.yaml: line 4: xml.max_depth: "deep" is not an integer`,
			"x.yaml: line 5: accounts: want a list, got a mapping",
		}},
		{"validation", "xml:\n  gsb_status: SECONDARY\naccounts:\n  - web_ex_id: a\n    site_id: x1\n    time_zone_id: 99\n    password_hash: '" + h[0] + "'\n  - {web_ex_id: b, password_hash: '" + h[0] + "'}\n", []string{
			`x.yaml: line 2: xml.gsb_status: "SECONDARY" is not PRIMARY or BACKUP`,
			`x.yaml: line 5: accounts[0].site_id: "x1" is not a number`,
			"x.yaml: line 6: accounts[0].time_zone_id: 99 not in 0..61",
			"x.yaml: line 8: accounts[1]: site_id or site_name is required",
		}},
		// One pass: what decodes is validated beside what does not, so a
		// fixed file does not reveal a second round of problems.
		{"both at once", "http:\n  max_body: 1\n  max_header_bytes: 10\nxml:\n  gsb_status: SECONDARY\n  max_depth: deep\n", []string{
			"x.yaml: line 2: http.max_body: unknown field; valid fields here: max_body_bytes, max_header_bytes, read_header_timeout, read_timeout, write_timeout, idle_timeout, shutdown_timeout, allow_sample_account",
			`x.yaml: line 6: xml.max_depth: "deep" is not an integer`,
			"x.yaml: line 3: http.max_header_bytes: 10 not in 1024..1048576",
			`x.yaml: line 5: xml.gsb_status: "SECONDARY" is not PRIMARY or BACKUP`,
			"x.yaml: accounts: at least one account is required",
		}},
		{"empty", "# nothing\n", []string{"x.yaml: empty document"}},
		{"duplicate", "log:\n  level: info\nlog: {}\n", []string{"x.yaml: line 3: log: duplicate key, first set at line 1", "x.yaml: accounts: at least one account is required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := configProblems(t, tc.yaml)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestDefaultYAMLListsEveryField: default.yaml, the documented starting
// point of an xmlapi.yaml, names every field of every section (a field
// whose default depends on the machine may be commented out).
func TestDefaultYAMLListsEveryField(t *testing.T) {
	doc := string(DefaultYAML)
	ct := reflect.TypeOf(Config{})
	for i := range ct.NumField() {
		sec := ct.Field(i)
		if sec.Type.Kind() != reflect.Struct {
			continue // accounts: an example, not a schema
		}
		name := sec.Tag.Get("yaml")
		if !strings.Contains(doc, "\n"+name+":\n") {
			t.Errorf("default.yaml has no %s section", name)
		}
		for j := range sec.Type.NumField() {
			f := sec.Type.Field(j).Tag.Get("yaml")
			if !strings.Contains(doc, "  "+f+":") && !strings.Contains(doc, "  # "+f+":") {
				t.Errorf("default.yaml does not list %s.%s", name, f)
			}
		}
	}
}

// TestCheckListen: the sample account serves on loopback only, unless
// http.allow_sample_account says otherwise; other accounts anywhere. The
// sample is recognised by its hash, or by its name and password under
// another hash.
func TestCheckListen(t *testing.T) {
	def, err := DefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	h, err := testHashes()
	if err != nil {
		t.Fatal(err)
	}
	rehashed := *def
	rehashed.Accounts = []Account{def.Accounts[0]}
	rehashed.Accounts[0].PasswordHash = h[1] // hostpassword, cost 4
	renamed := *def
	renamed.Accounts = []Account{{WebExID: "ops", SiteID: "1", PasswordHash: def.Accounts[0].PasswordHash}}
	own := *def
	own.Accounts = []Account{{WebExID: "hostid", SiteID: "1", PasswordHash: h[0]}} // another password
	allowed := *def
	allowed.HTTP.AllowSampleAccount = true
	for _, tc := range []struct {
		name   string
		cfg    *Config
		listen string
		refuse bool
	}{
		{"default on 127.0.0.1", def, "127.0.0.1:8080", false},
		{"default on 127.1.2.3", def, "127.1.2.3:8080", false},
		{"default on ::1", def, "[::1]:8080", false},
		{"default on localhost", def, "localhost:8080", false},
		{"default on every interface", def, ":8080", true},
		{"default on 0.0.0.0", def, "0.0.0.0:8080", true},
		{"default on a public address", def, "203.0.113.7:8080", true},
		{"default on a host name", def, "xml.example.com:8080", true},
		{"default on a mapped loopback", def, "[::ffff:127.0.0.1]:8080", false},
		{"sample rehashed", &rehashed, "0.0.0.0:8080", true},
		{"sample hash under another name", &renamed, "0.0.0.0:8080", true},
		{"hostid with its own password", &own, "0.0.0.0:8080", false},
		{"allowed", &allowed, "0.0.0.0:8080", false},
	} {
		err := tc.cfg.CheckListen(tc.listen)
		if tc.refuse != (err != nil) {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if err != nil && (!errors.Is(err, ErrSampleAccount) || !strings.Contains(err.Error(), "http.allow_sample_account: true")) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
