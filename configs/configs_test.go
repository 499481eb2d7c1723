package configs_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"switchboard/configs"
	"switchboard/daemon"
	"switchboard/internal/testsupport"
)

// An in-process daemon leaves netpoll's process-wide goroutines behind by
// design; nothing else may leak.
func TestMain(m *testing.M) { testsupport.VerifyTestMainNetpoll(m) }

// Files outside this directory that the tests read: they hold the facts the
// files here must agree with.
const (
	operationsDoc = "../docs/operations.md"
	metricsSource = "../daemon/metrics.go"
)

// Every example configuration loads through the daemon's strict loader, so
// the examples cannot rot.
func TestEveryConfigLoads(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no config files found: %v", err)
	}
	if !slices.Contains(files, "production.yaml") {
		t.Fatalf("production.yaml missing from %v", files)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			if _, err := daemon.LoadConfig(f); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestEmbeddedDefaultIsDefaultYAML(t *testing.T) {
	b, err := os.ReadFile("default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, configs.Default) {
		t.Fatal("embedded default differs from default.yaml")
	}
	c, err := daemon.DefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tr := range c.Tiers {
		names = append(names, tr.Name)
	}
	if len(names) != 3 || names[0] != "primary-large" || names[1] != "nextgen" || names[2] != "backup2-large" {
		t.Fatalf("default tier order %v", names)
	}
}

// production.yaml is a real deployment: three tiers of tcp:// servers in the
// failover order, at the paths the systemd unit provides.
func TestProductionConfig(t *testing.T) {
	c := loadProduction(t)
	var names []string
	for _, tr := range c.Tiers {
		names = append(names, tr.Name)
		if len(tr.Servers) < 2 {
			t.Errorf("tier %s: %d servers, want at least 2 in production", tr.Name, len(tr.Servers))
		}
		for _, u := range tr.Servers {
			s, err := daemon.ParseServer(u)
			if err != nil || s.Sim != "" || !strings.HasPrefix(u, "tcp://") {
				t.Errorf("tier %s: server %q is not a tcp:// server (%v)", tr.Name, u, err)
			}
		}
	}
	if want := []string{"primary-large", "nextgen", "backup2-large"}; !slices.Equal(names, want) {
		t.Fatalf("production tiers %v, want %v", names, want)
	}
	if len(c.Simulators) != 0 {
		t.Errorf("production configures %d simulators", len(c.Simulators))
	}
	if c.Log.Format != "json" {
		t.Errorf("log.format %q, want json for journald", c.Log.Format)
	}
	if c.Admin.Socket == "" || c.Metrics.Addr == "" {
		t.Errorf("admin.socket %q, metrics.addr %q: production wants both", c.Admin.Socket, c.Metrics.Addr)
	}
	// Every tier must get a full attempt within one request.
	var sum time.Duration
	for _, tr := range c.Tiers {
		sum += tr.AttemptTimeout
	}
	if sum >= c.Server.RequestTimeout {
		t.Errorf("attempt timeouts add up to %v, not below server.request_timeout %v", sum, c.Server.RequestTimeout)
	}
}

// fieldPaths lists every configuration field as the YAML path operators
// write ("server.max_frame", "tiers[].pool"). A struct type is expanded at
// its first occurrence only: the tier's pool and breaker sections repeat the
// top-level ones and are listed as "tiers[].pool", "tiers[].breaker".
func fieldPaths(t reflect.Type, prefix string, seen map[reflect.Type]bool) []string {
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		path := prefix + name
		ft := f.Type
		switch {
		case ft.Kind() == reflect.Struct && !seen[ft]:
			seen[ft] = true
			out = append(out, fieldPaths(ft, path+".", seen)...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && !seen[ft.Elem()]:
			seen[ft.Elem()] = true
			out = append(out, fieldPaths(ft.Elem(), path+"[].", seen)...)
		default:
			out = append(out, path)
		}
	}
	return out
}

func configFields(t *testing.T) []string {
	t.Helper()
	ct := reflect.TypeFor[daemon.Config]()
	paths := fieldPaths(ct, "", map[reflect.Type]bool{ct: true})
	if len(paths) < 40 {
		t.Fatalf("only %d config fields found: %v", len(paths), paths)
	}
	return paths
}

// Every tunable is shown in production.yaml, set or commented out, so an
// operator finds each one there.
func TestProductionShowsEveryField(t *testing.T) {
	b, err := os.ReadFile("production.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range configFields(t) {
		key := p[strings.LastIndexAny(p, ".]")+1:]
		re := regexp.MustCompile(`(?m)^[ \t]*(#[ \t]*)?(-[ \t]+)?` + regexp.QuoteMeta(key) + `:`)
		if !re.Match(b) {
			t.Errorf("production.yaml does not show %s (key %q), neither set nor commented", p, key)
		}
	}
}

// docRow is one row of a configuration table in docs/operations.md.
type docRow struct {
	def, reload string
}

var docRowRE = regexp.MustCompile("(?m)^\\|\\s*`([a-z_.\\[\\]]+)`\\s*\\|([^|]*)\\|([^|]*)\\|")

func docRows(t *testing.T) map[string]docRow {
	t.Helper()
	b, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	// Only the configuration reference (section 2) holds field rows.
	_, ref, ok := strings.Cut(string(b), "\n## 2. Configuration reference\n")
	ref, _, _ = strings.Cut(ref, "\n## 3.")
	if !ok {
		t.Fatalf("%s: no section \"## 2. Configuration reference\"", operationsDoc)
	}
	rows := map[string]docRow{}
	for _, m := range docRowRE.FindAllStringSubmatch(ref, -1) {
		rows[m[1]] = docRow{def: strings.TrimSpace(m[2]), reload: strings.TrimSpace(m[3])}
	}
	return rows
}

// noLiteralDefault are fields documented without a literal default: the
// host name, or required (the minimal file below sets them).
var noLiteralDefault = map[string]bool{"instance": true, "tiers[].name": true, "simulators[].name": true}

// docs/operations.md documents every field with the default the code
// applies and whether a reload can change it, so the reference cannot drift
// from the code.
func TestOperationsDocumentsEveryField(t *testing.T) {
	rows := docRows(t)
	restart := daemon.RestartFields() // from the fields' reload tags
	// The smallest valid file: everything else takes its default.
	def, err := daemon.ParseConfig([]byte("tiers: [{name: t, servers: [\"tcp://127.0.0.1:1\"]}]\nsimulators: [{name: s}]\n"), "minimal")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range configFields(t) {
		row, ok := rows[p]
		if !ok {
			t.Errorf("%s: no row in %s", p, operationsDoc)
			continue
		}
		wantRestart := false
		for _, r := range restart {
			if p == r || strings.HasPrefix(p, r+".") {
				wantRestart = true
			}
		}
		switch {
		case wantRestart && row.reload != "restart":
			t.Errorf("%s: reload column %q, want restart (the field is tagged reload:\"restart\" in daemon/config.go)", p, row.reload)
		case !wantRestart && row.reload != "yes":
			t.Errorf("%s: reload column %q, want yes", p, row.reload)
		}
		checkDefault(t, p, row.def, lookup(t, reflect.ValueOf(def).Elem(), p))
	}
	fields := configFields(t)
	for p := range rows {
		if !slices.Contains(fields, p) {
			t.Errorf("%s documents %s, which is not a configuration field", operationsDoc, p)
		}
	}
}

// lookup returns the value at a field path, taking the first element of a
// list.
func lookup(t *testing.T, v reflect.Value, path string) reflect.Value {
	t.Helper()
	for part := range strings.SplitSeq(path, ".") {
		name, list := strings.CutSuffix(part, "[]")
		found := false
		for i := range v.NumField() {
			if tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ","); tag == name {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			t.Fatalf("%s: no field %q", path, name)
		}
		if list {
			v = v.Index(0)
		}
	}
	return v
}

// checkDefault compares a documented default with the code's: a default
// cell starting with a backticked literal must equal it; any other text is
// allowed only where the code's default is empty or zero (none), for
// noLiteralDefault, and for lists and sections.
func checkDefault(t *testing.T, path, cell string, v reflect.Value) {
	t.Helper()
	lit, isLit := "", strings.HasPrefix(cell, "`")
	if isLit {
		lit, _, _ = strings.Cut(cell[1:], "`")
	}
	if v.Kind() == reflect.Struct || v.Kind() == reflect.Slice {
		return
	}
	if !isLit {
		if !v.IsZero() && !noLiteralDefault[path] {
			t.Errorf("%s: documented default %q, want the literal %v in backticks", path, cell, v.Interface())
		}
		return
	}
	var ok bool
	switch {
	case v.Type() == reflect.TypeFor[time.Duration]():
		d, err := time.ParseDuration(lit)
		ok = err == nil && d == time.Duration(v.Int())
	case v.CanInt():
		n, err := strconv.ParseInt(lit, 10, 64)
		ok = err == nil && n == v.Int()
	case v.CanUint():
		n, err := strconv.ParseUint(lit, 10, 64)
		ok = err == nil && n == v.Uint()
	case v.Kind() == reflect.String:
		ok = lit == v.String()
	default:
		t.Fatalf("%s: cannot compare a %v default", path, v.Type())
	}
	if !ok {
		t.Errorf("%s: documented default %q, the code's is %v", path, lit, v.Interface())
	}
}

// exportedMetrics returns every metric name a scrape of the daemon can show:
// the switchboard_* names in daemon/metrics.go, plus _bucket, _sum and _count
// for the histograms, and the go_* and process_* names of its registry;
// families lists the switchboard_* families only. The registry of a daemon that is not running tells
// which families are histograms (the histogram is registered at New).
func exportedMetrics(t *testing.T) (names map[string]bool, families []string) {
	t.Helper()
	src, err := os.ReadFile(metricsSource)
	if err != nil {
		t.Fatal(err)
	}
	names = map[string]bool{}
	for _, m := range regexp.MustCompile(`"(switchboard_[a-z0-9_]+)"`).FindAllSubmatch(src, -1) {
		if n := string(m[1]); !names[n] {
			names[n] = true
			families = append(families, n)
		}
	}
	if len(families) < 15 {
		t.Fatalf("only %d metric names found in %s: %v", len(families), metricsSource, families)
	}
	cfg, err := daemon.DefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mfs, err := d.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	histograms := 0
	for _, mf := range mfs {
		n := mf.GetName()
		if !strings.HasPrefix(n, "switchboard_") {
			// The Go runtime's and the process's own families
			// (go_*, process_*), for the memory panels and alerts.
			names[n] = true
			switch mf.GetType().String() {
			case "HISTOGRAM":
				names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
			case "SUMMARY":
				names[n+"_sum"], names[n+"_count"] = true, true
			}
			continue
		}
		if !names[n] {
			t.Errorf("the daemon exports %s, which the regexp over %s did not find", n, metricsSource)
		}
		if mf.GetType().String() == "HISTOGRAM" {
			histograms++
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[n+s] = true
			}
		}
	}
	if histograms == 0 {
		t.Fatal("no histogram among the daemon's metrics: switchboard_request_duration_seconds expected")
	}
	return names, families
}

var metricRE = regexp.MustCompile(`switchboard_[a-z0-9_]+`)

// dashboard is the part of a Grafana dashboard the tests look at.
type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Panels        []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ H, W, X, Y int } `json:"gridPos"`
		Targets []struct {
			Expr  string `json:"expr"`
			RefID string `json:"refId"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

// The Grafana dashboard plots only metrics the daemon and the XML front
// end export, and every metric family of either is on at least one panel.
// A query selects the daemons with $instance, or the front ends (scraped
// on their own metrics.addr) with $xmlapi_instance and xmlapi's names only.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var d dashboard
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("uid %q, title %q, schemaVersion %d: want both set and a schema of Grafana 9 or later", d.UID, d.Title, d.SchemaVersion)
	}
	hasDS, hasXMLAPI := false, false
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			hasDS = true
		}
		hasXMLAPI = hasXMLAPI || v.Name == xmlapiInstanceVar && v.Type == "query"
	}
	if !hasDS {
		t.Error("no templated Prometheus data source variable named datasource")
	}
	if !hasXMLAPI {
		t.Errorf("no query variable named %s selecting the XML front ends", xmlapiInstanceVar)
	}

	names, families := exportedMetrics(t)
	xnames, xfamilies := xmlapiExportedMetrics(t)
	for _, n := range metricRE.FindAllString(string(b), -1) {
		if !names[n] {
			t.Errorf("the dashboard uses %s, which the daemon does not export", n)
		}
	}
	for _, n := range xmlapiMetricRE.FindAllString(string(b), -1) {
		if n != xmlapiInstanceVar && !xnames[n] {
			t.Errorf("the dashboard uses %s, which xmlapi does not export", n)
		}
	}
	plotted := map[string]bool{}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: data source not the ${datasource} variable", p.Title)
		}
		if p.GridPos.W == 0 || p.GridPos.H == 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: grid position %+v", p.Title, p.GridPos)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			found, err := promqlMetricNames(tg.Expr)
			if err != nil || len(found) == 0 || tg.RefID == "" {
				t.Errorf("panel %q: query %q uses no metric, does not scan (%v) or has no refId", p.Title, tg.Expr, err)
			}
			exported, who, sel := names, "the daemon", `instance=~"$instance"`
			if strings.Contains(tg.Expr, `instance=~"$`+xmlapiInstanceVar+`"`) {
				exported, who, sel = xnames, "xmlapi", `instance=~"$`+xmlapiInstanceVar+`"`
			}
			for _, n := range found {
				if !exported[n] {
					t.Errorf("panel %q: query %q uses %s, which %s does not export", p.Title, tg.Expr, n, who)
				}
			}
			if !strings.Contains(tg.Expr, sel) {
				t.Errorf("panel %q: query %q ignores the instance variable", p.Title, tg.Expr)
			}
			for _, n := range found {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					if base, ok := strings.CutSuffix(n, s); ok && exported[base] {
						n = base
					}
				}
				plotted[n] = true
			}
		}
	}
	for _, f := range append(families, xfamilies...) {
		if !plotted[f] {
			t.Errorf("no panel plots %s", f)
		}
	}
}

// docs/operations.md describes every metric family and mentions no metric
// the daemon does not export.
func TestOperationsDocumentsEveryMetric(t *testing.T) {
	b, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	names, families := exportedMetrics(t)
	for _, n := range metricRE.FindAllString(string(b), -1) {
		if !names[n] {
			t.Errorf("%s mentions %s, which the daemon does not export", operationsDoc, n)
		}
	}
	for _, f := range families {
		if !bytes.Contains(b, []byte("| `"+f+"` |")) {
			t.Errorf("%s: no row for %s in the metrics table", operationsDoc, f)
		}
	}
}

// unitFile is a systemd unit: section → key → values (a key may repeat).
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, `\`) {
				t.Fatalf("%s:%d: %q is not key=value in a section", path, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

func (u unitFile) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// unitDuration parses a systemd time span written as a Go duration or as
// plain seconds.
func unitDuration(t *testing.T, key, s string) time.Duration {
	t.Helper()
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 30s", key, s)
	}
	return d
}

// The systemd unit asks for what the daemon implements (Type=notify,
// watchdog, SIGHUP reload), runs production.yaml, and its timeouts and
// directories fit that file.
func TestSystemdUnit(t *testing.T) {
	u := parseUnit(t, "switchboard.service")
	c := loadProduction(t)
	want := map[string]string{
		"Type": "notify", "NotifyAccess": "main", "Restart": "on-failure",
		"RestartPreventExitStatus": "2", "KillSignal": "SIGTERM",
	}
	for k, v := range want {
		if got := u.get("Service", k); got != v {
			t.Errorf("%s=%q, want %q", k, got, v)
		}
	}
	for _, k := range []string{"User", "Group"} {
		if v := u.get("Service", k); v == "" || v == "root" {
			t.Errorf("%s=%q: want an unprivileged account", k, v)
		}
	}

	start := strings.Fields(u.get("Service", "ExecStart"))
	if len(start) != 3 || start[1] != "-config" || filepath.Base(start[2]) != "production.yaml" || !filepath.IsAbs(start[0]) {
		t.Errorf("ExecStart=%q: want an absolute binary, -config and a production.yaml", start)
	}
	pre := strings.Fields(u.get("Service", "ExecStartPre"))
	if len(pre) != 3 || pre[1] != "-check-config" || len(start) == 3 && (pre[0] != start[0] || pre[2] != start[2]) {
		t.Errorf("ExecStartPre=%q: want the same binary with -check-config on the same file", pre)
	}
	checkSyncReload(t, u, c, start)

	// The watchdog pings come from Run's loop, which does nothing else
	// (reloads run beside it, daemon.TestWatchdogPingsDuringSlowReload):
	// WatchdogSec only has to be long enough for a loaded machine to
	// schedule one ping per WatchdogSec/2.
	wd := unitDuration(t, "WatchdogSec", u.get("Service", "WatchdogSec"))
	if wd < 2*time.Second || wd > time.Minute {
		t.Errorf("WatchdogSec=%v: want 2s..1m", wd)
	}
	s := c.Server
	if st := unitDuration(t, "TimeoutStartSec", u.get("Service", "TimeoutStartSec")); st <= s.ReadyTimeout {
		t.Errorf("TimeoutStartSec=%v: start waits up to server.ready_timeout %v", st, s.ReadyTimeout)
	}
	// Stop: the drain, the handlers' own deadlines, then closing the pools,
	// each bounded as below, plus the admin and metrics servers (2s each).
	if st, worst := unitDuration(t, "TimeoutStopSec", u.get("Service", "TimeoutStopSec")), 2*s.ShutdownTimeout+s.RequestTimeout+5*time.Second; st < worst {
		t.Errorf("TimeoutStopSec=%v: a graceful stop may take %v", st, worst)
	}

	rt := "/run/" + u.get("Service", "RuntimeDirectory")
	for _, p := range []string{c.Socket, c.Admin.Socket} {
		if filepath.Dir(p) != rt {
			t.Errorf("socket %s is not in RuntimeDirectory %s", p, rt)
		}
	}
	if sd := "/var/lib/" + u.get("Service", "StateDirectory"); c.DataDir != sd {
		t.Errorf("data_dir %s is not StateDirectory %s", c.DataDir, sd)
	}
	if m := u.get("Service", "RuntimeDirectoryMode"); m != "0750" {
		t.Errorf("RuntimeDirectoryMode=%q: want 0750 (group switchboard reaches the front-end socket)", m)
	}
	if m := u.get("Service", "StateDirectoryMode"); m != "0700" {
		t.Errorf("StateDirectoryMode=%q: want 0700 (the key secret)", m)
	}
	fams := strings.Fields(u.get("Service", "RestrictAddressFamilies"))
	for _, f := range []string{"AF_UNIX", "AF_INET", "AF_INET6"} {
		if !slices.Contains(fams, f) {
			t.Errorf("RestrictAddressFamilies=%v lacks %s", fams, f)
		}
	}
	for _, k := range []string{"NoNewPrivileges", "ProtectHome", "PrivateTmp"} {
		if v := u.get("Service", k); v != "yes" && v != "true" {
			t.Errorf("%s=%q, want yes", k, v)
		}
	}
	if v := u.get("Service", "ProtectSystem"); v != "strict" {
		t.Errorf("ProtectSystem=%q, want strict", v)
	}
	if u.get("Service", "LimitNOFILE") == "" {
		t.Error("LimitNOFILE not set")
	}
	if u.get("Install", "WantedBy") == "" {
		t.Error("no [Install] WantedBy")
	}
}

// Every file in configs/ is covered by a test above: the YAML files by
// TestEveryConfigLoads, the others by their own test.
func TestNoUntestedFiles(t *testing.T) {
	covered := map[string]bool{
		"grafana-dashboard.json": true, // TestDashboard
		"switchboard.service":    true, // TestSystemdUnit
		"xmlapi.service":         true, // TestXMLAPIUnit
		"switchboard.rules.yml":  true, // TestAlertRules
	}
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		n := e.Name()
		switch {
		case e.IsDir():
			t.Errorf("%s/: configs/ holds files only", n)
		case strings.HasSuffix(n, ".go"), strings.HasSuffix(n, ".yaml"), covered[n]:
		default:
			t.Errorf("%s: no test covers it; add one to configs_test.go", n)
		}
	}
}

func loadProduction(t *testing.T) *daemon.Config {
	t.Helper()
	c, err := daemon.LoadConfig("production.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// exportedNames is every metric name a scrape of the daemon can show.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	names, _ := exportedMetrics(t)
	return names
}
