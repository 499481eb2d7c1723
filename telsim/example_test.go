package telsim_test

import (
	"bufio"
	"fmt"
	"net"

	"switchboard/telsim"
	"switchboard/wire"
)

// Example starts a simulated server the way the daemon does for a sim://
// tier, greets it and reserves a bridge.
func Example() {
	srv, err := telsim.New(telsim.Config{Tier: "primary-large", Capacity: 10})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	addr, err := srv.Start("127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	nc, err := net.Dial("tcp", addr.String())
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)

	// Two pipelined requests, one write.
	var out []byte
	out, _ = wire.AppendFrame(out, wire.Header{Op: wire.OpHello, ID: 1}, &wire.Hello{Client: []byte("example")}, wire.DefaultMaxFrame)
	out, _ = wire.AppendFrame(out, wire.Header{Op: wire.OpReserve, ID: 2},
		&wire.UpdateRequest{Key: 123456789, Spec: wire.Spec{Name: []byte("Standup"), TimeZone: 4, Duration: 15}}, wire.DefaultMaxFrame)
	if _, err := nc.Write(out); err != nil {
		panic(err)
	}
	var buf []byte
	for range 2 {
		h, p, b, err := wire.ReadFrame(br, buf, wire.DefaultMaxFrame)
		if err != nil {
			panic(err)
		}
		buf = b
		switch h.ID {
		case 1:
			var r wire.HelloResponse
			_ = r.Decode(p)
			fmt.Printf("HELLO: server %s, tier %s, load %d/%d\n", r.Server, r.Tier, r.Load.InUse, r.Load.Capacity)
		case 2:
			var b wire.Bridge
			_ = b.Decode(p)
			fmt.Printf("RESERVE: %s, attendee code of %d digits\n", h.Status.String(), len(b.AttendeeCode))
		}
	}
	fmt.Println("live reservations:", srv.Stats().Reservations)
	// Output:
	// HELLO: server telsim-primary-large, tier primary-large, load 0/10
	// RESERVE: OK, attendee code of 9 digits
	// live reservations: 1
}
