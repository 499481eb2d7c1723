package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"time"

	"switchboard/client"
	"switchboard/wire"
)

// frontEndCommands are the commands spoken over the front-end socket.
func frontEndCommands() []command {
	return []command{
		{name: "ping", synopsis: "", summary: "round trip to the daemon", run: cmdPing},
		{name: "allocate", synopsis: "-name NAME [-token T] [-meta STRING] [-duration MIN] [-tz ID]", summary: "schedule a bridge; prints the session key", run: cmdAllocate},
		{name: "lookup", synopsis: "KEY", summary: "print a reservation (meta: length only)", run: cmdLookup},
		{name: "update", synopsis: "KEY -name NAME [-meta STRING]", summary: "rename a reservation, keeping its other fields", run: cmdUpdate},
		{name: "release", synopsis: "KEY", summary: "release a reservation's bridge", run: cmdRelease},
	}
}

// dialFrontEnd connects to the front-end socket; the caller closes the
// client.
func dialFrontEnd(ctx context.Context, g *globals) (*client.Client, error) {
	c, err := client.Dial(ctx, g.socket)
	if err != nil {
		// Say it once: "dial PATH: connect: no such file or directory".
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			return nil, fmt.Errorf("dial %s: %w", g.socket, oe.Err)
		}
		return nil, fmt.Errorf("dial %s: %w", g.socket, err)
	}
	return c, nil
}

func cmdPing(ctx context.Context, g *globals, args []string) (result, error) {
	if _, err := parseArgs(g, flag.NewFlagSet("ping", flag.ContinueOnError), args, 0, ""); err != nil {
		return nil, err
	}
	c, err := dialFrontEnd(ctx, g)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	t0 := time.Now()
	if err := c.Ping(ctx); err != nil {
		return nil, g.opError("ping "+g.socket, err)
	}
	rtt := time.Since(t0)
	return &pingResult{OK: true, RTTus: rtt.Microseconds(), socket: g.socket, rtt: rtt}, nil
}

func cmdAllocate(ctx context.Context, g *globals, args []string) (result, error) {
	fs := flag.NewFlagSet("allocate", flag.ContinueOnError)
	name := fs.String("name", "", "conference `name` (required)")
	token := fs.String("token", "", "idempotency `token`: a retry with the same token returns the first result")
	meta := fs.String("meta", "", "opaque meeting record stored with the reservation")
	duration := fs.Uint("duration", 60, "duration in `minutes`")
	tz := fs.Int("tz", -1, "WebEx timeZoneID 0–61, -1 unset")
	if _, err := parseArgs(g, fs, args, 0, ""); err != nil {
		return nil, err
	}
	req := &wire.AllocateRequest{
		Token: []byte(*token),
		Spec:  wire.Spec{Name: []byte(*name), TimeZone: int16(*tz), Duration: uint32(*duration)},
		Meta:  []byte(*meta),
	}
	switch {
	case *name == "":
		return nil, usageErrorf("allocate: -name is required")
	case len(req.Token) > wire.MaxToken:
		return nil, usageErrorf("allocate: -token is %d bytes, at most %d", len(req.Token), wire.MaxToken)
	case len(req.Meta) > wire.MaxMeta:
		return nil, usageErrorf("allocate: -meta is %d bytes, at most %d", len(req.Meta), wire.MaxMeta)
	case *duration > math.MaxUint32:
		return nil, usageErrorf("allocate: -duration %d is out of range", *duration)
	case *tz < -1 || *tz > 61:
		return nil, usageErrorf("allocate: -tz %d is not a WebEx timeZoneID (0–61, or -1)", *tz)
	}
	if err := req.Spec.Validate(); err != nil {
		return nil, usageErrorf("allocate: %v", err)
	}
	c, err := dialFrontEnd(ctx, g)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	a, err := c.Allocate(ctx, req)
	if err != nil {
		return nil, g.opError("allocate", err)
	}
	return &allocateResult{
		SessionKey: keyString(a.Key),
		Tier:       a.Tier,
		Replayed:   a.Replayed,
		Bridge:     bridgeOf(a.Bridge),
	}, nil
}

// keyCommand parses "CMD KEY" with fs's flags.
func keyCommand(g *globals, fs *flag.FlagSet, args []string) (uint64, error) {
	pos, err := parseArgs(g, fs, args, 1, "KEY")
	if err != nil {
		return 0, err
	}
	return parseKey(fs.Name(), pos[0])
}

func cmdLookup(ctx context.Context, g *globals, args []string) (result, error) {
	key, err := keyCommand(g, flag.NewFlagSet("lookup", flag.ContinueOnError), args)
	if err != nil {
		return nil, err
	}
	c, err := dialFrontEnd(ctx, g)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	r, err := c.Lookup(ctx, key)
	if err != nil {
		return nil, g.opError("lookup "+keyString(key), err)
	}
	return reservationOf(&r), nil
}

// cmdUpdate renames a reservation. UPDATE replaces the whole spec and meta,
// so the current ones are looked up first and only the name (and meta,
// with -meta) change. Two operators updating the same key at once race;
// the last one wins.
func cmdUpdate(ctx context.Context, g *globals, args []string) (result, error) {
	fs := flag.NewFlagSet("update", flag.ContinueOnError)
	name := fs.String("name", "", "new conference `name` (required)")
	meta := fs.String("meta", "", "replace the meeting record (default: keep it)")
	key, err := keyCommand(g, fs, args)
	if err != nil {
		return nil, err
	}
	metaSet := false
	fs.Visit(func(f *flag.Flag) { metaSet = metaSet || f.Name == "meta" })
	switch {
	case *name == "":
		return nil, usageErrorf("update: -name is required")
	case len(*name) > wire.MaxName:
		return nil, usageErrorf("update: -name is %d bytes, at most %d", len(*name), wire.MaxName)
	case len(*meta) > wire.MaxMeta:
		return nil, usageErrorf("update: -meta is %d bytes, at most %d", len(*meta), wire.MaxMeta)
	}
	c, err := dialFrontEnd(ctx, g)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	what := "update " + keyString(key)
	cur, err := c.Lookup(ctx, key)
	if err != nil {
		return nil, g.opError(what, err)
	}
	spec := cur.Spec.Wire()
	spec.Name = []byte(*name)
	m := cur.Meta
	if metaSet {
		m = []byte(*meta)
	}
	r, err := c.Update(ctx, key, &spec, m)
	if err != nil {
		return nil, g.opError(what, err)
	}
	return reservationOf(&r), nil
}

func cmdRelease(ctx context.Context, g *globals, args []string) (result, error) {
	key, err := keyCommand(g, flag.NewFlagSet("release", flag.ContinueOnError), args)
	if err != nil {
		return nil, err
	}
	c, err := dialFrontEnd(ctx, g)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Release(ctx, key); err != nil {
		return nil, g.opError("release "+keyString(key), err)
	}
	return &releaseResult{Released: keyString(key)}, nil
}

func bridgeOf(b client.Bridge) bridgeJSON {
	return bridgeJSON{ID: b.ID, Toll: b.Toll, TollFree: b.TollFree, HostCode: b.HostCode, AttendeeCode: b.AttendeeCode}
}

func reservationOf(r *client.Reservation) *reservationResult {
	s := &r.Spec
	return &reservationResult{
		SessionKey:       keyString(r.Key),
		Tier:             r.Tier,
		Bridge:           bridgeOf(r.Bridge),
		Name:             s.Name,
		StartDate:        unixDate(s.Start),
		TimeZoneID:       int(s.TimeZone),
		Duration:         s.Duration,
		EntryExitTone:    toneName(s.Tone),
		Repeat:           repeatOf(s.Repeat),
		FullAttendees:    s.FullAttendees,
		LimitedAttendees: s.LimitedAttendees,
		MetaBytes:        len(r.Meta),
	}
}
