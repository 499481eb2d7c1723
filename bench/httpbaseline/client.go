package httpbaseline

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
)

// baseURL is the URL of the daemon behind a Client; the host is a
// placeholder, the Client's dialer always connects to its socket.
const baseURL = "http://httpbaseline"

// Client is the front end's side of the baseline: an http.Client over the
// daemon's Unix socket. HTTP/1.1 has one request in flight per connection,
// so concurrent callers each use a connection of their own, taken from a
// keep-alive pool of up to conns idle connections. It is safe for concurrent
// use.
type Client struct {
	tr     *http.Transport
	hc     *http.Client
	closed atomic.Bool
}

// NewClient returns a client of the daemon at socket that keeps up to conns
// idle connections alive (at least the number of concurrent callers, or
// connections are closed and redialed under load).
func NewClient(socket string, conns int) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:        0, // no overall limit
		MaxIdleConnsPerHost: max(conns, 1),
		IdleConnTimeout:     idleTimeout,
		DisableCompression:  true,
	}
	return &Client{tr: tr, hc: &http.Client{Transport: tr}}
}

// Allocate posts req to /allocate.
func (c *Client) Allocate(ctx context.Context, req *AllocateRequest) (AllocateResponse, error) {
	var resp AllocateResponse
	if c.closed.Load() {
		return resp, ErrClosed
	}
	err := postJSON(ctx, c.hc, baseURL+"/allocate", req, &resp)
	return resp, err
}

// Release posts key to /release.
func (c *Client) Release(ctx context.Context, key uint64) error {
	if c.closed.Load() {
		return ErrClosed
	}
	return postJSON(ctx, c.hc, baseURL+"/release", &KeyRequest{Key: key}, nil)
}

// Close closes the idle connections; later calls fail with ErrClosed.
// Idempotent.
func (c *Client) Close() {
	c.closed.Store(true)
	c.tr.CloseIdleConnections()
}
