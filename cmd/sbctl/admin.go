package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Admin socket defaults.
const (
	// AdminSocketEnv, when set, is the admin socket used without
	// -admin-socket. There is no default path: the daemon serves no admin
	// socket unless configured to (admin.socket or its -admin-socket).
	AdminSocketEnv = "SWITCHBOARD_ADMIN_SOCKET"
	// DefaultReloadTimeout bounds reload when -timeout is not given. The
	// daemon answers a reload within a minute (it waits for new pools to
	// be warm and for retired ones to drain); sbctl waits a little longer
	// so that it reports the daemon's answer rather than its own timeout.
	DefaultReloadTimeout = 75 * time.Second
	// maxAdminBody bounds what sbctl reads of one admin answer.
	maxAdminBody = 16 << 20
)

// adminCommands are the commands spoken over the admin socket (HTTP on a
// Unix socket, mode 0600).
func adminCommands() []command {
	return []command{
		{name: "status", summary: "tiers, breakers, drain switches, pool connections, keys, last reload", run: cmdStatus, admin: true},
		{name: "reload", summary: "re-read the daemon's configuration; a refused reload changes nothing", run: cmdReload, admin: true, timeout: DefaultReloadTimeout},
		{name: "drain", synopsis: "TIER", summary: "stop new allocations on a tier (kept across reloads)", run: cmdDrain(true), admin: true},
		{name: "undrain", synopsis: "TIER", summary: "let a drained tier take new allocations again", run: cmdDrain(false), admin: true},
		{name: "breaker", synopsis: "TIER open|closed|auto", summary: "force a tier's breaker open or closed, or give it back to the breaker (auto)", run: cmdBreaker, admin: true},
		{name: "fleet", summary: "the daemons sharing this daemon's etcd key space (keys.store: etcd)", run: cmdFleet, admin: true},
		{name: "log-level", synopsis: "[LEVEL]", summary: "print the daemon's log level, or set it (debug, info, warn, error)", run: cmdLogLevel, admin: true},
	}
}

func defaultAdminSocket() string { return os.Getenv(AdminSocketEnv) }

// adminClient is an HTTP client of the admin socket. Each command makes one
// and closes it, so no connection or transport goroutine outlives it.
type adminClient struct {
	g  *globals
	tr *http.Transport
	hc *http.Client
}

func newAdminClient(g *globals) (*adminClient, error) {
	if g.adminSocket == "" {
		return nil, usageErrorf("admin commands need the daemon's admin socket: give -admin-socket PATH (or set $%s)", AdminSocketEnv)
	}
	path := g.adminSocket
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}
	// The bound is the command's context (-timeout), not a client timeout.
	return &adminClient{g: g, tr: tr, hc: &http.Client{Transport: tr}}, nil
}

func (c *adminClient) close() { c.tr.CloseIdleConnections() }

// adminDo makes one admin request on a connection of its own, closed after.
func adminDo(ctx context.Context, g *globals, what, method, path string, body, out any) (json.RawMessage, error) {
	c, err := newAdminClient(g)
	if err != nil {
		return nil, err
	}
	defer c.close()
	return c.do(ctx, what, method, path, body, out)
}

// remoteError is an error answer of the admin API: the daemon's own
// message, shown as it said it.
type remoteError struct {
	code int
	msg  string
}

func (e *remoteError) Error() string { return e.msg }

// do sends one request and decodes a 2xx JSON answer into out (and returns
// its raw bytes). what names the operation in errors.
func (c *adminClient) do(ctx context.Context, what, method, path string, body any, out any) (json.RawMessage, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://admin"+path, rd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(what, method, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminBody))
	if err != nil {
		return nil, c.transportError(what, method, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s: %w", what, &remoteError{code: resp.StatusCode, msg: errorMessage(resp.StatusCode, b)})
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return nil, fmt.Errorf("%s: unexpected answer from the daemon: %w", what, err)
		}
	}
	return json.RawMessage(bytes.TrimSpace(b)), nil
}

// errorMessage is the daemon's message in an error answer: the "error" of
// its JSON body, else the body's text, else the HTTP status.
func errorMessage(code int, b []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return e.Error
	}
	if s := strings.TrimSpace(string(b)); s != "" {
		return s
	}
	return http.StatusText(code)
}

// transportError says why the daemon gave no answer: it cannot be reached
// (said once, as "dial admin socket PATH: connect: ..."), or -timeout ran
// out (after which a change, but for a GET, may or may not have been made).
func (c *adminClient) transportError(what, method string, err error) error {
	var oe *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		unknown := ", outcome unknown"
		if method == http.MethodGet {
			unknown = ""
		}
		return fmt.Errorf("%s: no answer within -timeout %v%s: %w", what, c.g.timeout, unknown, context.DeadlineExceeded)
	case errors.As(err, &oe) && oe.Op == "dial" && oe.Err != nil:
		hint := ""
		if errors.Is(oe.Err, os.ErrPermission) {
			hint = " (the admin socket has mode 0600: run sbctl as the daemon's user)"
		}
		return fmt.Errorf("dial admin socket %s: %w%s", c.g.adminSocket, oe.Err, hint)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // drop "Get \"http://admin/status\"": the host is not real
	}
	return fmt.Errorf("%s: %w", what, err)
}

// tierArg parses "CMD TIER".
func tierArg(g *globals, name string, args []string) (string, error) {
	pos, err := parseArgs(g, flag.NewFlagSet(name, flag.ContinueOnError), args, 1, "TIER")
	if err != nil {
		return "", err
	}
	if pos[0] == "" {
		return "", usageErrorf("%s: empty tier name", name)
	}
	return pos[0], nil
}

func cmdStatus(ctx context.Context, g *globals, args []string) (result, error) {
	if _, err := parseArgs(g, flag.NewFlagSet("status", flag.ContinueOnError), args, 0, ""); err != nil {
		return nil, err
	}
	r := &statusResult{}
	var err error
	r.raw, err = adminDo(ctx, g, "status", http.MethodGet, "/status", nil, &r.st)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func cmdReload(ctx context.Context, g *globals, args []string) (result, error) {
	if _, err := parseArgs(g, flag.NewFlagSet("reload", flag.ContinueOnError), args, 0, ""); err != nil {
		return nil, err
	}
	r := &reloadResult{}
	var err error
	r.raw, err = adminDo(ctx, g, "reload", http.MethodPost, "/reload", nil, &r.ans)
	var re *remoteError
	if errors.As(err, &re) && re.code != http.StatusInternalServerError {
		// Refused (invalid, requires restart, not warm, no source, not
		// running): the daemon changed nothing. A 500 may be the daemon's
		// own bound running out while the reload goes on, so it gets no
		// such promise.
		return nil, fmt.Errorf("%w (the configuration in force is unchanged)", err)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

func cmdDrain(on bool) func(ctx context.Context, g *globals, args []string) (result, error) {
	name := "undrain"
	if on {
		name = "drain"
	}
	return func(ctx context.Context, g *globals, args []string) (result, error) {
		tier, err := tierArg(g, name, args)
		if err != nil {
			return nil, err
		}
		r := &drainResult{}
		r.raw, err = adminDo(ctx, g, name+" "+tier, http.MethodPost, "/"+name+"/"+url.PathEscape(tier), nil, &r.ans)
		if err != nil {
			return nil, err
		}
		return r, nil
	}
}

func cmdBreaker(ctx context.Context, g *globals, args []string) (result, error) {
	pos, err := parseArgs(g, flag.NewFlagSet("breaker", flag.ContinueOnError), args, 2, "TIER open|closed|auto")
	if err != nil {
		return nil, err
	}
	tier, mode := pos[0], pos[1]
	switch {
	case tier == "":
		return nil, usageErrorf("breaker: empty tier name")
	case mode != "open" && mode != "closed" && mode != "auto":
		return nil, usageErrorf("breaker: mode %q is not one of open, closed, auto", mode)
	}
	r := &breakerResult{}
	r.raw, err = adminDo(ctx, g, "breaker "+tier, http.MethodPost, "/breaker/"+url.PathEscape(tier)+"/"+mode, nil, &r.ans)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// cmdLogLevel gets or sets the level through zap's AtomicLevel handler,
// which the daemon serves at /log/level. The daemon judges the level name.
// A reload sets the level from log.level again.
func cmdLogLevel(ctx context.Context, g *globals, args []string) (result, error) {
	// No LEVEL prints it, one sets it; flags may come anywhere.
	pos, err := parseArgsUpTo(g, flag.NewFlagSet("log-level", flag.ContinueOnError), args, 0, 1, "[LEVEL]")
	if err != nil {
		return nil, err
	}
	r := &logLevelResult{}
	if len(pos) == 0 {
		r.raw, err = adminDo(ctx, g, "log-level", http.MethodGet, "/log/level", nil, &r.ans)
	} else {
		r.set = true
		r.raw, err = adminDo(ctx, g, "log-level "+pos[0], http.MethodPut, "/log/level", map[string]string{"level": pos[0]}, &r.ans)
	}
	var re *remoteError
	if errors.As(err, &re) && re.code == http.StatusNotFound {
		return nil, fmt.Errorf("log-level: the daemon does not serve its log level on the admin socket")
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}
