package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to a role; the exit status is 0 on success, 1 on failure,
// 2 for a usage error.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: peerbench grpc-stub|grpc-front|http-stub|http-front|load|summarize [flags]")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	roles := map[string]func(context.Context, *flag.FlagSet, []string, io.Writer) error{
		"grpc-stub":  grpcStub,
		"grpc-front": grpcFront,
		"http-stub":  httpStub,
		"http-front": httpFront,
		"load":       loadRole,
		"summarize":  summarizeRole,
	}
	f, ok := roles[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "peerbench: unknown role %q\n", args[0])
		return 2
	}
	fs := flag.NewFlagSet("peerbench "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := f(ctx, fs, args[1:], stdout); err != nil {
		if err == flag.ErrHelp || err == errUsage {
			return 2
		}
		fmt.Fprintf(stderr, "peerbench %s: %v\n", args[0], err)
		return 1
	}
	return 0
}
