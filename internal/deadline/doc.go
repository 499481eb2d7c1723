// Package deadline provides a reusable context.Context that carries a
// deadline and nothing else. It is its own package because two layers of the
// daemon need it and neither may import the other: the front-end server
// bounds a whole request (and a request's wait for admission) with one, the
// router bounds each tier attempt with another. Both keep theirs in pooled
// per-request state, so a steady stream of requests arms timers without
// allocating contexts, timers or channels.
package deadline
