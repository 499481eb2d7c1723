package pool

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/cloudwego/netpoll"
)

// Dialer opens a connection to a telephony server. It must honour ctx (the
// pool's dial deadline and its shutdown) and be safe for concurrent use:
// dials to different servers run at once.
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// NetDialer is the default Dialer: the standard library's TCP stack with
// Nagle's algorithm off.
func NetDialer(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		if err := tc.SetNoDelay(true); err != nil {
			nc.Close()
			return nil, fmt.Errorf("pool: set TCP_NODELAY on %s: %w", addr, err)
		}
	}
	return nc, nil
}

// NetpollDialer dials with cloudwego/netpoll (TCP_NODELAY set by netpoll), so
// the two transports can be measured against each other. The connection is
// used through its net.Conn methods: mux's reader goroutine reads it (a read
// on a hung-up netpoll connection returns EOF, which kills and closes it:
// docs/libraries.md N3), and mux's flush-combining guarantees a single writer
// (docs/libraries.md N2). netpoll's dial takes a timeout, not a context: the remaining time of
// ctx's deadline is passed, and a cancellation during the dial is noticed
// only when it returns.
func NetpollDialer(ctx context.Context, network, addr string) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var timeout time.Duration
	if dl, ok := ctx.Deadline(); ok {
		if timeout = time.Until(dl); timeout <= 0 {
			return nil, context.DeadlineExceeded
		}
	}
	c, err := netpoll.DialConnection(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}
