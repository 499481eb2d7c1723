package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"switchboard/bench/grpcpeer"
	"switchboard/bench/httpbaseline"
)

// errUsage is a flag problem already reported by the flag set.
var errUsage = errors.New("usage")

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %q\n", fs.Args())
		return errUsage
	}
	return nil
}

func grpcStub(ctx context.Context, fs *flag.FlagSet, args []string, out io.Writer) error {
	listen := fs.String("listen", "127.0.0.1:0", "TCP `address` to serve on (port 0: any; the bound address is printed)")
	tier := fs.String("tier", "stub", "tier `name`, in bridge ids")
	tuned := fs.Bool("tuned", false, "tuned grpc-go options instead of the defaults")
	if err := parse(fs, args); err != nil {
		return err
	}
	st := grpcpeer.NewStub(grpcpeer.StubConfig{Tier: *tier, Options: grpcpeer.Options{Tuned: *tuned}})
	addr, err := st.Start(*listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "listen %s\n", addr)
	<-ctx.Done()
	return st.Close()
}

func grpcFront(ctx context.Context, fs *flag.FlagSet, args []string, out io.Writer) error {
	socket := fs.String("socket", "", "Unix socket `path` to serve on")
	tiers := fs.String("tiers", "", "the tiers in failover order, `NAME=ADDR,...`")
	tuned := fs.Bool("tuned", false, "tuned grpc-go options instead of the defaults")
	conns := fs.Int("conns-per-tier", grpcpeer.DefaultConnsPerTier, "gRPC connections to each tier's stub")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg := grpcpeer.Config{Socket: *socket, ConnsPerTier: *conns, Options: grpcpeer.Options{Tuned: *tuned}}
	for _, t := range strings.Split(*tiers, ",") {
		name, addr, ok := strings.Cut(t, "=")
		if !ok || name == "" || addr == "" {
			return fmt.Errorf("-tiers: %q is not NAME=ADDR", t)
		}
		cfg.Tiers = append(cfg.Tiers, grpcpeer.TierConfig{Name: name, Addr: addr})
	}
	f, err := grpcpeer.NewFront(cfg)
	if err != nil {
		return err
	}
	if err := f.Start(); err != nil {
		_ = f.Close()
		return err
	}
	fmt.Fprintf(out, "ready %s\n", *socket)
	<-ctx.Done()
	return f.Close()
}

func httpStub(ctx context.Context, fs *flag.FlagSet, args []string, out io.Writer) error {
	listen := fs.String("listen", "127.0.0.1:0", "TCP `address` to serve on (port 0: any; the base URL is printed)")
	if err := parse(fs, args); err != nil {
		return err
	}
	st := httpbaseline.NewStub(httpbaseline.StubConfig{})
	url, err := st.Start(*listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "listen %s\n", url)
	<-ctx.Done()
	return st.Close()
}

func httpFront(ctx context.Context, fs *flag.FlagSet, args []string, out io.Writer) error {
	socket := fs.String("socket", "", "Unix socket `path` to serve on")
	stub := fs.String("stub", "", "the HTTP stub's base `URL`")
	if err := parse(fs, args); err != nil {
		return err
	}
	d, err := httpbaseline.NewDaemon(httpbaseline.Config{Socket: *socket, StubURL: *stub})
	if err != nil {
		return err
	}
	if err := d.Start(); err != nil {
		_ = d.Close()
		return err
	}
	fmt.Fprintf(out, "ready %s\n", *socket)
	<-ctx.Done()
	return d.Close()
}
