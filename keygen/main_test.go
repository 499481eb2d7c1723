package keygen

import (
	"testing"

	"go.uber.org/goleak"

	"switchboard/internal/etcdtest"
)

// etcd's own process-wide goroutines outlive the etcd benchmarks' servers.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, etcdtest.IgnoreLeaks()...) }
