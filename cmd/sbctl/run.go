package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"switchboard/internal/buildinfo"
	"switchboard/wire"
)

// Socket defaults.
const (
	// DefaultSocket is the daemon's default front-end socket.
	DefaultSocket = "/run/switchboard/switchboard.sock"
	// SocketEnv, when set, replaces DefaultSocket.
	SocketEnv = "SWITCHBOARD_SOCKET"
	// DefaultTimeout bounds one command, dial included.
	DefaultTimeout = 5 * time.Second
)

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// errUsage marks a command-line mistake: exit status 2.
var errUsage = errors.New("usage")

// usageErrorf returns an error wrapping errUsage.
func usageErrorf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

// globals are the flags that apply to every command, given before or after
// the command name ("sbctl -json ping" and "sbctl ping -json").
type globals struct {
	socket      string        // front-end socket
	adminSocket string        // admin socket; "" when neither flag nor environment gives one
	json        bool          // one JSON object on stdout
	timeout     time.Duration // bound on the whole command, dial included
	timeoutSet  bool          // -timeout was given, before or after the command
	// parseOnly makes parseArgs stop the command once its arguments are
	// parsed (errParsed): run's first pass, which learns the global flags
	// given after the command before the command's -timeout starts.
	parseOnly bool
}

// errParsed ends a command's parse-only pass (globals.parseOnly).
var errParsed = errors.New("arguments parsed")

// define adds the global flags to fs, bound to g's fields with their
// current values as defaults.
func (g *globals) define(fs *flag.FlagSet) {
	fs.StringVar(&g.socket, "socket", g.socket, "daemon front-end socket `path`")
	fs.StringVar(&g.adminSocket, "admin-socket", g.adminSocket, "daemon admin socket `path` (status, reload, drain, undrain, breaker, log-level)")
	fs.BoolVar(&g.json, "json", g.json, "print exactly one JSON object")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, fmt.Sprintf("bound on the whole command, dial included; reload without -timeout: %v", DefaultReloadTimeout))
}

// noteTimeout records whether fs, once parsed, was given -timeout.
func (g *globals) noteTimeout(fs *flag.FlagSet) {
	fs.Visit(func(f *flag.Flag) { g.timeoutSet = g.timeoutSet || f.Name == "timeout" })
}

// result is what a successful command prints: its fields, with JSON tags,
// are the -json object; writeText is the readable form.
type result interface {
	writeText(w io.Writer) error
}

// command is one entry of the command table. Front-end commands are in
// frontend.go, admin commands (on the admin socket) in admin.go.
type command struct {
	name     string
	synopsis string // arguments, for the usage text
	summary  string // one line
	run      func(ctx context.Context, g *globals, args []string) (result, error)
	admin    bool // spoken over the admin socket
	// timeout replaces DefaultTimeout as the command's bound when -timeout
	// is not given (reload, which waits for pools to warm); zero: none.
	timeout time.Duration
}

// commandTable lists every command in the order the usage text shows them.
func commandTable() []command {
	return append(frontEndCommands(), adminCommands()...)
}

func findCommand(name string) (command, bool) {
	for _, c := range commandTable() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func defaultSocket() string {
	if s := os.Getenv(SocketEnv); s != "" {
		return s
	}
	return DefaultSocket
}

func writeUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: sbctl [-socket PATH] [-admin-socket PATH] [-json] [-timeout D] COMMAND [ARGS]\n       sbctl -version\n\n")
	fmt.Fprintf(w, "The global flags may also follow the command: sbctl ping -json.\n")
	fmt.Fprintf(w, "Operates a running switchboard daemon. The front-end socket is -socket,\nelse $%s, else %s.\nThe admin socket is -admin-socket, else $%s; it has no default.\n", SocketEnv, DefaultSocket, AdminSocketEnv)
	for _, admin := range []bool{false, true} {
		if admin {
			fmt.Fprintf(w, "\nCommands (admin socket, -admin-socket):\n")
		} else {
			fmt.Fprintf(w, "\nCommands (front-end socket):\n")
		}
		for _, c := range commandTable() {
			if c.admin == admin {
				fmt.Fprintf(w, "  %s\n        %s\n", strings.TrimSpace(c.name+" "+c.synopsis), c.summary)
			}
		}
	}
	fmt.Fprintf(w, "\nFlags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprintf(w, "\nExit status: 0 success, 1 operation failed, 2 usage error.\n")
}

// run is the whole command, minus the process: main gives it a context
// that ends on SIGINT/SIGTERM and exits with what it returns. A failure
// is exactly one line on stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := globals{socket: defaultSocket(), adminSocket: defaultAdminSocket(), timeout: DefaultTimeout}
	fs := flag.NewFlagSet("sbctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.define(fs)
	version := fs.Bool("version", false, "print the build (version, revision, Go version) and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeUsage(stdout, fs)
			return exitOK
		}
		return fail(stderr, usageErrorf("%v", err))
	}
	if *version {
		buildinfo.Print(stdout, "sbctl")
		return exitOK
	}
	g.noteTimeout(fs)
	rest := fs.Args()
	if len(rest) == 0 {
		return fail(stderr, usageErrorf("no command"))
	}
	if rest[0] == "help" {
		writeUsage(stdout, fs)
		return exitOK
	}
	cmd, ok := findCommand(rest[0])
	if !ok {
		return fail(stderr, usageErrorf("unknown command %q", rest[0]))
	}
	// First pass: parse the command's arguments only, for the global
	// flags among them, so that a -timeout after the command bounds it too.
	g.parseOnly = true
	_, err := cmd.run(ctx, &g, rest[1:])
	g.parseOnly = false
	if err == nil || errors.Is(err, errParsed) {
		err = nil
		if g.timeout <= 0 {
			return fail(stderr, usageErrorf("-timeout must be positive"))
		}
		if !g.timeoutSet && cmd.timeout > 0 {
			g.timeout = cmd.timeout
		}
		tctx, cancel := context.WithTimeout(ctx, g.timeout)
		defer cancel()
		var res result
		res, err = cmd.run(tctx, &g, rest[1:])
		if err == nil {
			if g.json {
				err = json.NewEncoder(stdout).Encode(res)
			} else {
				err = res.writeText(stdout)
			}
			if err != nil {
				return fail(stderr, fmt.Errorf("write output: %w", err))
			}
			return exitOK
		}
	}
	var help *helpRequest
	if errors.As(err, &help) {
		fmt.Fprintf(stdout, "usage: sbctl [global flags] %s %s\n  %s\n", cmd.name, cmd.synopsis, cmd.summary)
		help.fs.SetOutput(stdout)
		help.fs.PrintDefaults()
		return exitOK
	}
	return fail(stderr, err)
}

// fail prints err as one line on w and returns its exit status.
func fail(w io.Writer, err error) int {
	msg := err.Error()
	code := exitFail
	if errors.Is(err, errUsage) {
		msg = strings.TrimPrefix(msg, errUsage.Error()+": ") + " (see sbctl -h)"
		code = exitUsage
	}
	fmt.Fprintln(w, "sbctl: "+strings.Join(strings.Fields(msg), " "))
	return code
}

// opError wraps the failure of an operation as "what: cause". An error
// answer from the daemon is shown as the daemon said it (its status and
// message), without the client's wrapping around it; running out of
// -timeout says so, and that the outcome is unknown (an allocate or
// release may have happened).
func (g *globals) opError(what string, err error) error {
	var re *wire.RemoteError
	switch {
	case errors.As(err, &re):
		return fmt.Errorf("%s: %w", what, re)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: no answer within -timeout %v, outcome unknown: %w", what, g.timeout, context.DeadlineExceeded)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// helpRequest is returned by parseArgs for -h: run prints the command's
// usage and flags.
type helpRequest struct{ fs *flag.FlagSet }

func (h *helpRequest) Error() string { return flag.ErrHelp.Error() }
func (h *helpRequest) Unwrap() error { return flag.ErrHelp }

// parseArgs parses a command's flags and the global ones (g.define), which
// may come before, after or around its positional arguments ("update KEY
// -name N" and "update -name N KEY" both work), and returns exactly want
// positionals. With g.parseOnly it returns errParsed instead.
func parseArgs(g *globals, fs *flag.FlagSet, args []string, want int, names string) ([]string, error) {
	return parseArgsUpTo(g, fs, args, want, want, names)
}

// parseArgsUpTo is parseArgs for a command taking least to most positionals
// ("log-level [LEVEL]"): what is a flag is known only once parsed, so the
// count is judged after the flags are taken out ("log-level -json" is the
// print form, not LEVEL "-json").
func parseArgsUpTo(g *globals, fs *flag.FlagSet, args []string, least, most int, names string) ([]string, error) {
	fs.SetOutput(io.Discard)
	g.define(fs)
	defer g.noteTimeout(fs)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, &helpRequest{fs: fs}
			}
			return nil, usageErrorf("%s: %v", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) < least || len(pos) > most {
		if most == 0 {
			return nil, usageErrorf("%s: unexpected argument %q", fs.Name(), pos[0])
		}
		return nil, usageErrorf("%s: want %s, got %d argument(s)", fs.Name(), names, len(pos))
	}
	if g.parseOnly {
		return nil, errParsed
	}
	return pos, nil
}

// parseKey parses a session key: decimal digits only.
func parseKey(cmd, s string) (uint64, error) {
	k, err := strconv.ParseUint(s, 10, 64)
	if err != nil || k == 0 {
		return 0, usageErrorf("%s: %q is not a session key (a positive decimal number)", cmd, s)
	}
	return k, nil
}
