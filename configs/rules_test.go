package configs_test

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// ruleFile is a Prometheus rule file, strictly: a misspelt key is an error.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// synthesized are series Prometheus itself writes for every target, which
// no exporter exports.
var synthesized = map[string]bool{"up": true, "scrape_duration_seconds": true, "scrape_samples_scraped": true}

// configs/switchboard.rules.yml parses, every rule is well formed, and
// every metric its expressions name is one the daemon exports (or a
// recording rule of the file, or a series Prometheus writes itself).
func TestAlertRules(t *testing.T) {
	b, err := os.ReadFile("switchboard.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var f ruleFile
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("switchboard.rules.yml: %v", err)
	}
	if len(f.Groups) == 0 {
		t.Fatal("no rule groups")
	}
	names := exportedNames(t)
	recorded := map[string]bool{}
	alerts := map[string]bool{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
		}
	}
	for _, g := range f.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: want a name and rules", g.Name)
		}
		for _, r := range g.Rules {
			id := r.Alert + r.Record
			switch {
			case (r.Alert == "") == (r.Record == ""):
				t.Errorf("rule %q: want exactly one of alert and record", id)
			case r.Alert != "":
				if alerts[r.Alert] {
					t.Errorf("alert %s twice", r.Alert)
				}
				alerts[r.Alert] = true
				if s := r.Labels["severity"]; s != "critical" && s != "warning" {
					t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, s)
				}
				if r.Annotations["summary"] == "" {
					t.Errorf("alert %s: no summary annotation", r.Alert)
				}
				if r.For != "" {
					if d, err := time.ParseDuration(r.For); err != nil || d <= 0 {
						t.Errorf("alert %s: for %q is not a duration", r.Alert, r.For)
					}
				}
			case r.Record != "":
				if !strings.Contains(r.Record, ":") || r.For != "" || len(r.Annotations) > 0 {
					t.Errorf("recording rule %s: want a level:metric name, no for, no annotations", r.Record)
				}
			}
			used, err := promqlMetricNames(r.Expr)
			if err != nil {
				t.Errorf("rule %s: %v in %q", id, err, r.Expr)
				continue
			}
			if len(used) == 0 {
				t.Errorf("rule %s: expression %q names no metric", id, r.Expr)
			}
			for _, n := range used {
				if !names[n] && !recorded[n] && !synthesized[n] {
					t.Errorf("rule %s uses %s, which the daemon does not export", id, n)
				}
			}
		}
	}
	// The alerts the operations guide relies on are there.
	for _, a := range []string{"SwitchboardNoTierAvailable", "SwitchboardDown", "SwitchboardPrimaryNotServing", "SwitchboardKeysExhausted", "SwitchboardMemoryHigh", "SwitchboardLogLinesDropped"} {
		if !alerts[a] {
			t.Errorf("no alert %s", a)
		}
	}
	doc, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(doc, []byte("configs/switchboard.rules.yml")) {
		t.Errorf("%s does not point to configs/switchboard.rules.yml", operationsDoc)
	}
	if bytes.Contains(doc, []byte("- alert: ")) {
		t.Errorf("%s holds alert rules of its own: they belong in switchboard.rules.yml", operationsDoc)
	}
}

// promqlKeywords are the words of PromQL that are neither functions nor
// metrics. Those that take a label list in parentheses are true.
var promqlKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"and": false, "or": false, "unless": false, "bool": false, "offset": false, "atan2": false,
}

// promqlAggregations are the aggregation operators, which may take their
// by/without clause before their parenthesised expression.
var promqlAggregations = map[string]bool{}

// promqlFunctions are the functions and aggregations an expression may
// call; a name followed by "(" outside this list is an error, so that a
// typo cannot pass as a function.
var promqlFunctions = map[string]bool{}

func init() {
	for _, f := range strings.Fields(`sum min max avg count stddev stdvar topk bottomk quantile count_values group limitk
		rate irate increase delta idelta deriv predict_linear resets changes histogram_quantile
		clamp clamp_min clamp_max abs absent absent_over_time ceil floor round exp ln log2 log10 sqrt sgn
		min_over_time max_over_time avg_over_time sum_over_time count_over_time last_over_time
		quantile_over_time stddev_over_time stdvar_over_time present_over_time
		time timestamp vector scalar sort sort_desc label_replace label_join
		day_of_month day_of_week day_of_year days_in_month hour minute month year`) {
		promqlFunctions[f] = true
	}
	for _, f := range strings.Fields("sum min max avg count stddev stdvar topk bottomk quantile count_values group limitk") {
		promqlAggregations[f] = true
	}
}

// promqlMetricNames returns the metric names an expression selects, in
// order of appearance: every identifier that is not a function, keyword,
// label name or value, duration or number. It knows enough PromQL for rule
// files: strings in any quotes, label matchers in braces, ranges and
// subqueries in brackets, label lists after by/without/on/ignoring/
// group_left/group_right, offsets, numbers with exponents.
func promqlMetricNames(expr string) ([]string, error) {
	var out []string
	s := expr
	i := 0
	skipSpace := func() {
		for i < len(s) && strings.ContainsRune(" \t\r\n", rune(s[i])) {
			i++
		}
	}
	// skipString skips the string starting at s[i].
	skipString := func() error {
		q := s[i]
		for i++; i < len(s); i++ {
			if s[i] == '\\' && q != '`' {
				i++
				continue
			}
			if s[i] == q {
				i++
				return nil
			}
		}
		return fmt.Errorf("unterminated string")
	}
	// skipTo skips past the closing byte matching the opening one at s[i],
	// over strings.
	skipTo := func(closing byte) error {
		i++
		for i < len(s) {
			switch c := s[i]; {
			case c == '"' || c == '\'' || c == '`':
				if err := skipString(); err != nil {
					return err
				}
			case c == closing:
				i++
				return nil
			default:
				i++
			}
		}
		return fmt.Errorf("no closing %q", closing)
	}
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	for skipSpace(); i < len(s); skipSpace() {
		c := s[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			if err := skipString(); err != nil {
				return nil, err
			}
		case c == '{':
			if err := skipTo('}'); err != nil {
				return nil, err
			}
		case c == '[':
			if err := skipTo(']'); err != nil {
				return nil, err
			}
		case c >= '0' && c <= '9' || c == '.':
			// A number (1e-9, 0.25, 0x1f) or a duration (5m, 1h30m).
			for i < len(s) && (isIdent(s[i]) || s[i] == '.' ||
				(s[i] == '-' || s[i] == '+') && (s[i-1] == 'e' || s[i-1] == 'E')) {
				i++
			}
		case isIdentStart(c):
			j := i
			for i < len(s) && isIdent(s[i]) {
				i++
			}
			word := s[j:i]
			skipSpace()
			paren := i < len(s) && s[i] == '('
			if !paren && promqlAggregations[word] {
				// "sum by (l) (expr)": the aggregation's clause comes first.
				k := i
				for k < len(s) && isIdent(s[k]) {
					k++
				}
				next := strings.ToLower(s[i:k])
				paren = next == "by" || next == "without"
			}
			lower := strings.ToLower(word)
			list, keyword := promqlKeywords[lower]
			switch {
			case keyword && list:
				if !paren {
					return nil, fmt.Errorf("%s without a label list", word)
				}
				if err := skipTo(')'); err != nil {
					return nil, err
				}
			case keyword && lower == "offset":
				// The duration that follows is skipped as a number.
			case keyword:
			case paren:
				if !promqlFunctions[word] {
					return nil, fmt.Errorf("unknown function %s", word)
				}
			case lower == "inf" || lower == "nan":
			default:
				if !slices.Contains(out, word) {
					out = append(out, word)
				}
			}
		case strings.IndexByte("()+-*/%^=!<>,", c) >= 0:
			i++
		default:
			return nil, fmt.Errorf("unexpected %q at %d", c, i)
		}
	}
	return out, nil
}

// The scanner finds the metrics and only the metrics, and refuses what it
// does not understand rather than guessing.
func TestPromQLMetricNames(t *testing.T) {
	for _, c := range []struct {
		expr string
		want []string
	}{
		{`up{job="switchboard"} == 0`, []string{"up"}},
		{`sum by (instance, le) (rate(a_bucket{op="allocate",x=~"b|c}"}[5m])) > 0.25 and on (instance) b offset 5m`, []string{"a_bucket", "b"}},
		{`a / clamp_min(rate(c_total[1d]), 1e-9) < 30 * 86400`, []string{"a", "c_total"}},
		{"sum without(tier) (x:rec) * on (instance) group_left(version) info{v='}'} unless bool_thing", []string{"x:rec", "info", "bool_thing"}},
		{`histogram_quantile(0.99, sum(rate(h_bucket[5m:1m]))) > Inf`, []string{"h_bucket"}},
		{`max(a) by (tier)`, []string{"a"}},
	} {
		got, err := promqlMetricNames(c.expr)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%q: %v %v, want %v", c.expr, got, err, c.want)
		}
	}
	for _, bad := range []string{`rat(x[5m])`, `x{a="b"`, `sum by x`, `x # comment`, `"open`} {
		if got, err := promqlMetricNames(bad); err == nil {
			t.Errorf("%q: %v, want an error", bad, got)
		}
	}
}
