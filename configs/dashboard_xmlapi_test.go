package configs_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"switchboard/xmlapi"
)

// xmlapiMetricsSource declares the front end's metric families.
const xmlapiMetricsSource = "../xmlapi/metrics.go"

// xmlapiInstanceVar is the dashboard variable selecting the front ends,
// which Prometheus scrapes on their own metrics.addr (another instance
// label than their daemon's).
const xmlapiInstanceVar = "xmlapi_instance"

// xmlapiMetricRE finds xmlapi metric names in the dashboard; the instance
// variable's name looks like one and is left out by the callers.
var xmlapiMetricRE = regexp.MustCompile(`xmlapi_[a-z0-9_]+`)

// xmlapiExportedMetrics is exportedMetrics for the XML front end: every
// name a scrape of xmlapi's metrics.addr can show (its xmlapi_* families,
// with _bucket, _sum and _count for the histograms, and the go_* and
// process_* names of its registry), and its xmlapi_* families. The families
// are read from the source, as a vector without a series yet
// (xmlapi_exceptions_total before the first FAILURE) is not gathered; the
// registry, xmlapi.NewMetrics().Registry(), tells the histograms and must
// hold no family the source does not declare.
func xmlapiExportedMetrics(t *testing.T) (names map[string]bool, families []string) {
	t.Helper()
	src, err := os.ReadFile(xmlapiMetricsSource)
	if err != nil {
		t.Fatal(err)
	}
	names = map[string]bool{}
	for _, m := range regexp.MustCompile(`Name: +"(xmlapi_[a-z0-9_]+)"`).FindAllSubmatch(src, -1) {
		if n := string(m[1]); !names[n] {
			names[n] = true
			families = append(families, n)
		}
	}
	if len(families) < 5 {
		t.Fatalf("only %d xmlapi metric families found in %s: %v", len(families), xmlapiMetricsSource, families)
	}
	mfs, err := xmlapi.NewMetrics().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		n := mf.GetName()
		if strings.HasPrefix(n, "xmlapi_") && !names[n] {
			t.Errorf("xmlapi exports %s, which the regexp over %s did not find", n, xmlapiMetricsSource)
		}
		names[n] = true
		switch mf.GetType().String() {
		case "HISTOGRAM":
			names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
		case "SUMMARY":
			names[n+"_sum"], names[n+"_count"] = true, true
		}
	}
	return names, families
}
