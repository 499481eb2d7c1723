package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"switchboard/client"
	"switchboard/wire"
)

func Example() {
	// A stand-in for the switchboard daemon on a Unix socket; a real
	// deployment dials the daemon's configured socket path.
	dir, err := os.MkdirTemp("", "switchboard-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	socket := filepath.Join(dir, "switchboard.sock")
	stop, err := client.StartFakeDaemon(socket)
	if err != nil {
		panic(err)
	}
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, socket, client.WithConns(2))
	if err != nil {
		panic(err)
	}
	defer c.Close()

	// Allocate is idempotent under its token: after an unknown outcome
	// (mux.ErrUnknownOutcome), retry with the same token.
	a, err := c.Allocate(ctx, &wire.AllocateRequest{
		Token: []byte("create-teleconf-42"),
		Spec:  wire.Spec{Name: []byte("Weekly sync"), TimeZone: 4, Duration: 60, Tone: wire.ToneBeep},
		Meta:  []byte("<meeting/>"),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(a.Key, a.Tier, a.Bridge.ID, a.Bridge.Toll)

	r, err := c.Lookup(ctx, a.Key)
	if err != nil {
		panic(err)
	}
	fmt.Println(r.Spec.Name, r.Spec.Duration, string(r.Meta))

	if err := c.Release(ctx, a.Key); err != nil {
		panic(err)
	}
	_, err = c.Lookup(ctx, a.Key)
	fmt.Println(errors.Is(err, wire.StatusNotFound))
	// Output:
	// 100000001 primary-large br-100000001 +1 555 0100
	// Weekly sync 60 <meeting/>
	// true
}
