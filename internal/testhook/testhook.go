package testhook

import "sync/atomic"

// BeforeRefresh runs in route's Router.Update after the server's reply
// arrived and before the session index is refreshed with it, with the
// session's key: a test forces a RELEASE into that window.
var BeforeRefresh atomic.Pointer[func(key uint64)]

// Evict runs in frontend's eviction at max_conns between choosing a quiet
// connection and evicting it, with the server (a *frontend.Server) and the
// connection chosen: the daemon's tests race a request against an eviction.
var Evict atomic.Pointer[func(server any, c EvictingConn)]

// EvictingConn is what Evict sees of the connection chosen.
type EvictingConn interface {
	Unanswered() int64 // requests read and not yet answered
	Writes() int64     // socket writes completed
	Paused() bool      // its reader is paused at its bounds
}
