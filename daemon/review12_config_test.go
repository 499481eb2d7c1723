package daemon

import (
	"strings"
	"testing"

	"switchboard/internal/strictyaml"
)

// Every problem of a config file is reported once (-check-config, a
// reload's error): the lower packages' own Validate (pool, etcdstore) adds
// a problem only where the daemon's checks found none in the fields that
// lower config is built from. Before the split each of these files had
// exactly one problem; a lower Validate repeated it in its own words (the
// tier's name and servers and the instance feed pool.Config; keys.block_size
// feeds etcdstore.Config).
func TestReview12EachProblemReportedOnce(t *testing.T) {
	long := strings.Repeat("a", 65)
	for _, tc := range []struct{ name, file, want string }{
		{"duplicate server", "tiers: [{name: a, servers: [\"tcp://127.0.0.1:1\", \"tcp://127.0.0.1:1\"]}]\n", "appears twice"},
		{"empty tier name", "tiers: [{name: \"\", servers: [\"tcp://127.0.0.1:1\"]}]\n", "tiers[0].name"},
		{"long instance", "instance: " + long + "\ntiers: [{name: a, servers: [\"tcp://127.0.0.1:1\"]}, {name: b, servers: [\"tcp://127.0.0.1:2\"]}]\n", "instance: 65 bytes"},
		{"etcd block size", "keys: {store: etcd, block_size: 2000000, etcd: {endpoints: [\"http://127.0.0.1:2379\"]}}\ntiers: [{name: a, servers: [\"tcp://127.0.0.1:1\"]}]\n", "keys.block_size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.file), "t.yaml")
			list := strictyaml.List(err)
			if len(list) != 1 || !strings.Contains(list[0].Error(), tc.want) {
				t.Fatalf("%d problems %q, want one naming %q", len(list), list, tc.want)
			}
		})
	}
}
