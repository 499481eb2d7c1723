package testsupport

import (
	"testing"

	"go.uber.org/goleak"
)

// NetpollLeaks are the goroutines a process that used netpoll (the daemon's
// default server, a mux connection on netpoll) keeps until it exits: the
// poller and the gopool workers that run its callbacks. They are global,
// started once, and not leaks of any test.
func NetpollLeaks() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("github.com/cloudwego/netpoll.(*defaultPoll).Wait"),
		goleak.IgnoreAnyFunction("github.com/cloudwego/netpoll.(*defaultPoll).Wait"),
		goleak.IgnoreAnyFunction("github.com/bytedance/gopkg/util/gopool.(*worker).run.func1"),
	}
}

// VerifyTestMainNetpoll runs the tests of m and fails the package if a
// goroutine is left at the end other than netpoll's (NetpollLeaks) and
// those extra ignores.
func VerifyTestMainNetpoll(m *testing.M, extra ...goleak.Option) {
	goleak.VerifyTestMain(m, append(NetpollLeaks(), extra...)...)
}
