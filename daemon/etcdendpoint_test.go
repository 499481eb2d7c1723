package daemon

import (
	"strings"
	"testing"

	"switchboard/internal/strictyaml"
)

// TestEtcdEndpointPasswordNotEchoed: the error on an endpoint that holds a
// password (refused) never repeats the password, in the error nor in
// -check-config's report of it.
func TestEtcdEndpointPasswordNotEchoed(t *testing.T) {
	base := "tiers: [{name: t, servers: [\"tcp://127.0.0.1:1\"]}]\n"
	for _, ep := range []string{"http://sb:hunter2@127.0.0.1:2379", "http://sb:hunter2@127.0.0.1:2379/x?y#z", "http://sb:hunter2@[::1:2379"} {
		_, err := ParseConfig([]byte(base+"keys: {store: etcd, etcd: {endpoints: [\""+ep+"\"]}}\n"), "test.yaml")
		if err == nil {
			t.Fatalf("endpoint %q accepted", ep)
		}
		var out strings.Builder
		strictyaml.Report(&out, "test.yaml", err)
		if strings.Contains(err.Error(), "hunter2") || strings.Contains(out.String(), "hunter2") {
			t.Errorf("endpoint %q: the error repeats the password:\n%v\n%s", ep, err, out.String())
		}
	}
}
