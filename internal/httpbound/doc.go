// Package httpbound bounds the connections an http.Server holds open at
// once.
//
// net/http has no such bound: every accepted connection costs a goroutine,
// a descriptor and its buffers for as long as its client keeps it, and a
// keep-alive connection waits for its next request for IdleTimeout (for
// ever without one). On a port any local user can reach (a loopback
// metrics port), connections opened and left idle grow the process's
// memory and descriptors without limit. golang.org/x/net/netutil's
// LimitListener bounds them by blocking Accept until one closes, which
// lets idle connections lock new clients out until they time out.
//
// Bound serves a new connection even at the bound: it closes the
// connection idle the longest (between two requests, which HTTP lets a
// server close at any time: clients retry an idempotent request on a new
// connection), or one that has sent no request for a second since it was
// accepted. Only when every connection has a request in progress does
// Accept wait for one to end (the server's read and write timeouts bound
// that).
package httpbound
