package daemon

import (
	"errors"
	"testing"

	"switchboard/internal/strictyaml"
)

// TestAdvEtcdEndpointValidation (adversarial review of issue 13): endpoints
// that are not http(s)://host:port pass validation and -check-config
// ("ok"), although the field's own message says it wants host:port. Each
// is a daemon that starts and is never ready for keys (a port that cannot
// exist, no host), or worse: a URL with user:password puts a password in
// the config file, which -init-keys then prints with the endpoints and
// sbctl status shows. Promise 1: strict validation and -check-config as
// for every other field.
func TestAdvEtcdEndpointValidation(t *testing.T) {
	base := "tiers: [{name: t, servers: [\"tcp://127.0.0.1:1\"]}]\n"
	for _, ep := range []string{
		"http://127.0.0.1:99999",           // no such port
		"http://:2379",                     // no host
		"http://127.0.0.1",                 // no port
		"http://127.0.0.1:2379?x=1",        // a query
		"http://127.0.0.1:2379#f",          // a fragment
		"http://sb:hunter2@127.0.0.1:2379", // a password in the config file
	} {
		_, err := ParseConfig([]byte(base+"keys: {store: etcd, etcd: {endpoints: [\""+ep+"\"]}}\n"), "test.yaml")
		var es strictyaml.Errors
		found := false
		if errors.As(err, &es) {
			for _, e := range es {
				found = found || e.Field == "keys.etcd.endpoints"
			}
		}
		if !found {
			t.Errorf("endpoint %q: %v, want an error on keys.etcd.endpoints", ep, err)
		}
	}
}
