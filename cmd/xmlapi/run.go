package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"switchboard/client"
	"switchboard/internal/buildinfo"
	"switchboard/internal/logging"
	"switchboard/internal/strictyaml"
	"switchboard/xmlapi"
)

// defaultSocket is the daemon's default socket (daemon.DefaultSocket).
const defaultSocket = "/run/switchboard/switchboard.sock"

const usageText = `usage: xmlapi [-listen 127.0.0.1:8080] [-socket PATH] [-config FILE]
       xmlapi -check-config FILE
       xmlapi -hash-password [-hash-alg bcrypt|argon2id] < password
       xmlapi -print-default-config
       xmlapi -version

switchboard's WebEx XML API front end: it serves POST /WBXService/XMLService
over HTTP and calls the switchboard daemon over its Unix socket. Without
-config it runs the embedded default (xmlapi -print-default-config), whose
one account is the sample host: for development only.

Exit status: 0 clean stop, 1 runtime failure, 2 bad flags or configuration.

Flags:
`

// run is the whole program; ready, when set, learns the listening address.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, ready func(net.Addr)) int {
	fs := flag.NewFlagSet("xmlapi", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	listen := fs.String("listen", "127.0.0.1:8080", "HTTP listen `address`")
	socket := fs.String("socket", defaultSocket, "the switchboard daemon's Unix socket `path`")
	configPath := fs.String("config", "", "config `file` (default: the embedded xmlapi/default.yaml)")
	check := fs.String("check-config", "", "validate config `file`, print ok or every error, and exit")
	hash := fs.Bool("hash-password", false, "read a password from standard input, print its hash for accounts[].password_hash, and exit")
	hashAlg := fs.String("hash-alg", "bcrypt", "hash `algorithm` for -hash-password: bcrypt or argon2id")
	printDefault := fs.Bool("print-default-config", false, "print the embedded default config and exit")
	version := fs.Bool("version", false, "print the build (version, revision, Go version) and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usageText)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "xmlapi: %v (see xmlapi -h)\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "xmlapi: unexpected arguments %q (see xmlapi -h)\n", fs.Args())
		return 2
	}
	switch {
	case *version:
		buildinfo.Print(stdout, "xmlapi")
		return 0
	case *printDefault:
		stdout.Write(xmlapi.DefaultYAML)
		return 0
	case *hash:
		return hashPassword(stdin, stdout, stderr, *hashAlg)
	case *check != "":
		// Every problem on its own line, the files the config names
		// included, then a count (strictyaml.Report).
		if _, err := xmlapi.LoadConfigChecked(*check); err != nil {
			strictyaml.Report(stderr, *check, err)
			return 2
		}
		fmt.Fprintln(stdout, "ok")
		return 0
	}

	var cfg *xmlapi.Config
	var err error
	if *configPath != "" {
		cfg, err = xmlapi.LoadConfigChecked(*configPath)
	} else {
		cfg, err = xmlapi.DefaultConfig() // names no file
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if err := checkListen(*listen); err != nil {
		fmt.Fprintf(stderr, "xmlapi: -listen %s (see xmlapi -h)\n", err)
		return 2
	}
	if err := cfg.CheckListen(*listen); err != nil { // the public sample password off this host
		fmt.Fprintln(stderr, err)
		return 2
	}
	log, _, err := logging.New(logging.Config{Service: "xmlapi", Level: cfg.Log.Level, Format: cfg.Log.Format}, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "xmlapi: logger:", err)
		return 2
	}
	defer logging.Sync(log)
	if err := serve(ctx, cfg, *listen, *socket, log, ready); err != nil {
		log.Error("xmlapi stopped", zap.Error(err))
		if configError(err) {
			return 2 // restarting cannot help (RestartPreventExitStatus=2)
		}
		return 1
	}
	return 0
}

// checkListen checks the -listen flag before the daemon is waited for: a
// host:port whose port is a number in 0..65535.
func checkListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want host:port, e.g. 127.0.0.1:8080", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%q: port %q not in 0..65535", addr, port)
	}
	return nil
}

// configError reports whether err, from serve, is one a restart cannot
// fix: a configuration error (xmlapi.ErrConfig), or a listen address that
// cannot be an address (a port out of range, no port, a host name that
// does not exist). An address in use or a daemon not answering may pass,
// so they stay runtime failures.
func configError(err error) bool {
	var ae *net.AddrError
	var pe *net.ParseError
	var de *net.DNSError
	return errors.Is(err, xmlapi.ErrConfig) || errors.As(err, &ae) || errors.As(err, &pe) ||
		errors.As(err, &de) && de.IsNotFound
}

// serve connects to the daemon, then serves HTTP (and metrics.addr, when
// set) until ctx ends.
func serve(ctx context.Context, cfg *xmlapi.Config, listen, socket string, log *zap.Logger, ready func(net.Addr)) error {
	c, err := dialDaemon(ctx, cfg.Backend, socket, log)
	if err != nil {
		return err
	}
	defer c.Close()
	m := xmlapi.NewMetrics()
	h, err := xmlapi.NewHandler(cfg, c, xmlapi.WithLogger(log.Named("xml")), xmlapi.WithMetrics(m))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("-listen: %w", err)
	}
	var mln net.Listener
	if cfg.Metrics.Addr != "" {
		if mln, err = xmlapi.ListenMetrics(cfg.Metrics.Addr); err != nil {
			ln.Close()
			return fmt.Errorf("metrics listener: %w", err)
		}
		mctx, stop := context.WithCancel(context.Background())
		mdone := make(chan error, 1)
		go func() { mdone <- xmlapi.ServeMetrics(mctx, xmlapi.NewMetricsServer(m, h, log), mln, 2*time.Second) }()
		defer func() { // after the XML server's drain: scrapes see it
			stop()
			if err := <-mdone; err != nil {
				log.Warn("metrics server", zap.Error(err))
			}
		}()
	}
	fields := []zap.Field{zap.String("listen", ln.Addr().String()), zap.String("path", xmlapi.Path),
		zap.String("socket", socket), zap.Int("accounts", len(cfg.Accounts))}
	if mln != nil {
		fields = append(fields, zap.String("metrics", mln.Addr().String()))
	}
	log.Info("xmlapi ready", fields...)
	if ready != nil {
		ready(ln.Addr())
	}
	err = xmlapi.Serve(ctx, cfg, xmlapi.NewServer(cfg, h, log), ln)
	log.Info("xmlapi stopped gracefully")
	return err
}

// dialDaemon connects to the daemon, retrying until
// backend.connect_timeout: at boot the daemon may not be listening yet.
func dialDaemon(ctx context.Context, b xmlapi.BackendConfig, socket string, log *zap.Logger) (*client.Client, error) {
	deadline := time.Now().Add(b.ConnectTimeout)
	for attempt := 0; ; attempt++ {
		dctx, cancel := context.WithTimeout(ctx, b.DialTimeout)
		c, err := client.Dial(dctx, socket, client.WithConns(b.Conns), client.WithLogger(log.Named("client")))
		cancel()
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("daemon socket %s not reachable within %v: %w", socket, b.ConnectTimeout, err)
		}
		if attempt == 0 {
			log.Info("waiting for the daemon socket", zap.String("socket", socket), zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// hashPassword prints the hash of the first line of stdin.
func hashPassword(stdin io.Reader, stdout, stderr io.Writer, alg string) int {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(stderr, "xmlapi: reading the password:", err)
		return 1
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		fmt.Fprintln(stderr, "xmlapi: empty password on standard input")
		return 2
	}
	h, err := xmlapi.HashPassword(xmlapi.Algorithm(alg), []byte(pw))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	fmt.Fprintln(stdout, h)
	return 0
}
