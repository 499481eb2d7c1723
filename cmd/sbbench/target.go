package main

import (
	"context"

	"switchboard/client"
	"switchboard/wire"
)

// clientTarget drives the daemon through the Go client. It is safe for
// concurrent use (the client is).
type clientTarget struct {
	c *client.Client
}

// dialTarget connects conns pipelined connections to the daemon's socket.
func dialTarget(ctx context.Context, socket string, conns int) (*clientTarget, error) {
	c, err := client.Dial(ctx, socket, client.WithConns(conns))
	if err != nil {
		return nil, err
	}
	return &clientTarget{c: c}, nil
}

func (t *clientTarget) Allocate(ctx context.Context, req *wire.AllocateRequest) (uint64, string, error) {
	a, err := t.c.Allocate(ctx, req)
	if err != nil {
		return 0, "", err
	}
	return a.Key, a.Tier, nil
}

func (t *clientTarget) Release(ctx context.Context, key uint64) error {
	return t.c.Release(ctx, key)
}

func (t *clientTarget) Close() error { return t.c.Close() }
