package etcdstore_test

import (
	"testing"

	"go.uber.org/goleak"

	"switchboard/internal/etcdtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, etcdtest.IgnoreLeaks()...) }
