package grpcpeer

import (
	"context"
	"sync/atomic"

	"google.golang.org/grpc"

	pb "switchboard/bench/grpcpeer/peerpb"
)

// Client is the front end's side of the peer: conns gRPC client
// connections to the front's Unix socket, taken round robin per call. Each
// is one HTTP/2 connection carrying many concurrent calls, as switchboard's
// client pipelines on its connections. It is safe for concurrent use.
type Client struct {
	conns  []*grpc.ClientConn
	fronts []pb.SwitchboardClient
	next   atomic.Uint32
	closed atomic.Bool
}

// NewClient returns a client of the front at socket over conns connections
// (at least one), dialed at once in the background.
func NewClient(socket string, conns int, o Options) (*Client, error) {
	c := &Client{}
	for range max(conns, 1) {
		cc, err := grpc.NewClient("unix://"+socket, dialOptions(o)...)
		if err != nil {
			c.Close()
			return nil, err
		}
		cc.Connect()
		c.conns = append(c.conns, cc)
		c.fronts = append(c.fronts, pb.NewSwitchboardClient(cc))
	}
	return c, nil
}

func (c *Client) front() pb.SwitchboardClient {
	return c.fronts[int(c.next.Add(1))%len(c.fronts)]
}

// Allocate calls the front's Allocate. Errors are the package's sentinels
// (errors.Is), wrapped with the server's message.
func (c *Client) Allocate(ctx context.Context, req *pb.AllocateRequest) (*pb.AllocateResponse, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	resp, err := c.front().Allocate(ctx, req)
	return resp, fromStatus(err)
}

// Release calls the front's Release.
func (c *Client) Release(ctx context.Context, key uint64) error {
	if c.closed.Load() {
		return ErrClosed
	}
	_, err := c.front().Release(ctx, &pb.KeyRequest{Key: key})
	return fromStatus(err)
}

// Close closes the connections; later calls fail with ErrClosed.
// Idempotent.
func (c *Client) Close() {
	if c.closed.Swap(true) {
		return
	}
	for _, cc := range c.conns {
		_ = cc.Close()
	}
}
