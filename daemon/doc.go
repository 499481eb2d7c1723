// Package daemon is switchboard itself, as the composition root: it loads
// and validates the configuration, builds the tiers (per-tier warm
// connection pools and circuit breakers), owns the lifecycle (New, Run,
// shutdown on context end) and reloads, serves the admin socket and the
// Prometheus metrics. It does not link the simulator: a server that is
// not tcp:// is resolved through a Resolver (WithResolver) or a SimHost
// (WithSimHost: telsim/simhost, wired by cmd/switchboard and the tests).
// Of the simulators it decides nothing: it hands the host the list a
// configuration names (package simplan) and calls the plan's steps at its
// reload's points (resolve.go); the host owns and closes them.
//
// The request path lives in two packages below it, which do not know each
// other: frontend (the front-end socket server: transports, the default
// being the standard library's net and the other netpoll; framing,
// connection hygiene, admission, flush-combined writes) and route (the tier
// order, ALLOCATE/LOOKUP/UPDATE/RELEASE, idempotency, the outcome
// classifier, the session index, orphans, the in-flight table). The daemon
// joins them in handler.go: frontend.Handler decodes a request and calls
// the route.Router. Its metrics implement the observers both report to
// (route.TierObserver, frontend.Observer), so neither imports the metrics
// code.
//
// It is the only package that knows all the others; the packages below it
// receive plain values, never the YAML types. Goroutines: Run owns the
// event loop and the reloader; the front-end server owns its readers, its
// request handlers (bounded by server.max_in_flight and awaited on
// shutdown) and its reaper; the router owns the orphan releaser; the pools,
// the key generator and the simulators own theirs and stop them when
// closed (the simulators by their host's creator, after Run).
package daemon
