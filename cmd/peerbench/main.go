package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"switchboard/internal/buildinfo"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usageText = `usage: peerbench grpc-stub  -listen ADDR -tier NAME [-tuned]
       peerbench grpc-front -socket PATH -tiers NAME=ADDR,... [-tuned] [-conns-per-tier N]
       peerbench http-stub  -listen ADDR
       peerbench http-front -socket PATH -stub URL
       peerbench load       -target switchboard|http|grpc|grpc-tuned -socket PATH
                            [-callers N] [-conns N] [-warmup D] [-duration D]
                            [-pids PID,...] [-label S]
       peerbench summarize  [FILE]
       peerbench -version

Runs switchboard's peers as separate processes and measures any of them,
switchboard included, with one closed-loop load (bench/peers.sh). The
flags of a role: peerbench ROLE -h.

Exit status: 0 success, 1 failure, 2 usage error.
`

// run dispatches to a role; the exit status is 0 on success (and for -h
// and -version), 1 on failure, 2 for a usage error.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return 0
	case "-version", "--version":
		buildinfo.Print(stdout, "peerbench")
		return 0
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
		fmt.Fprintf(stderr, "peerbench: unknown role %q (see peerbench -h)\n", args[0])
		return 2
	}
	fs := flag.NewFlagSet("peerbench "+args[0], flag.ContinueOnError)
	// The flag set writes only while parsing, before a role does anything:
	// its usage goes to stdout for -h (exit 0), to stderr with an error.
	var flagOut bytes.Buffer
	fs.SetOutput(&flagOut)
	err := f(ctx, fs, args[1:], stdout)
	if errors.Is(err, flag.ErrHelp) {
		stdout.Write(flagOut.Bytes())
		return 0
	}
	stderr.Write(flagOut.Bytes())
	if err != nil {
		if errors.Is(err, errUsage) {
			return 2
		}
		fmt.Fprintf(stderr, "peerbench %s: %v\n", args[0], err)
		return 1
	}
	return 0
}
