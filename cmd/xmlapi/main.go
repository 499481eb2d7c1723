// Command xmlapi is switchboard's WebEx XML API front end: it serves
// POST /WBXService/XMLService over HTTP and calls the switchboard daemon
// over its Unix socket.
//
//	xmlapi [-listen 127.0.0.1:8080] [-socket PATH] [-config FILE]
//	xmlapi -check-config FILE
//	xmlapi -hash-password [-hash-alg bcrypt|argon2id] < password
//	xmlapi -print-default-config
//
// -check-config prints "ok" for a valid file (auth.ticket_secret_file
// included: readable, private, long enough); otherwise every problem, one
// per line with its file, line and field and what would be valid, then a
// count ("FILE: 3 errors"), on standard error, and exits 2.
//
// With metrics.addr set it also serves GET /metrics and GET /healthz there
// (a loopback port or unix:/path); GET /healthz is always served on the
// XML port.
//
// Without -config it runs the embedded default (xmlapi/default.yaml), whose
// one account is the documentation's sample host (hostid / hostpassword,
// site 0000). That password is public: with the sample account, a -listen
// address that is not loopback is refused (exit 2) unless the config sets
// http.allow_sample_account: true.
// It waits up to backend.connect_timeout for the daemon's socket at start.
// SIGINT or SIGTERM stop it gracefully. Exit codes: 0 clean stop, 1 runtime
// failure, 2 bad flags or configuration.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, nil)
	stop()
	os.Exit(code)
}
