package etcdstore

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"switchboard/keygen"
)

// DefaultDialTimeout is ClientConfig.DialTimeout's default.
const DefaultDialTimeout = 5 * time.Second

// ClientConfig says how to reach the etcd cluster. Zero fields mean the
// documented defaults.
type ClientConfig struct {
	// Endpoints are the cluster members' client URLs (http:// or
	// https://host:port). Required.
	Endpoints []string
	// DialTimeout bounds connection set-up steps (authentication, keepalive
	// of the fleet lease). Default 5s. The client never blocks its creation
	// on it: a daemon starts while etcd is down.
	DialTimeout time.Duration
	// CAFile verifies the members' certificates (https endpoints); CertFile
	// and KeyFile are this daemon's client certificate, both or neither.
	CAFile, CertFile, KeyFile string
	// Username authenticates with etcd's auth; PasswordFile holds its
	// password (one line, mode 0600 or stricter). Both or neither.
	Username, PasswordFile string
}

// CheckEndpoint reports why ep is not an etcd client URL of the form
// http://host:port or https://host:port (a port from 1 to 65535, no path
// beyond "/", no query, no fragment, no user name or password: credentials
// belong in ClientConfig.Username and PasswordFile, never in a URL that is
// shown in status and command output). Its message never repeats ep.
func CheckEndpoint(ep string) error {
	u, err := url.Parse(ep)
	if err != nil {
		return errors.New("not a URL: want http://host:port or https://host:port")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("want http://host:port or https://host:port")
	case u.User != nil:
		return errors.New("holds a user name or password: put the user in username and the password in password_file, never in the URL")
	case u.Opaque != "" || (u.Path != "" && u.Path != "/"):
		return errors.New("has a path: want http://host:port or https://host:port")
	case u.RawQuery != "" || u.ForceQuery:
		return errors.New("has a query (?...): want http://host:port or https://host:port")
	case u.Fragment != "" || strings.Contains(ep, "#"):
		return errors.New("has a fragment (#...): want http://host:port or https://host:port")
	case u.Hostname() == "":
		return errors.New("has no host: want http://host:port or https://host:port")
	case u.Port() == "":
		return errors.New("has no port: want http://host:port or https://host:port (etcd's client port is usually 2379)")
	}
	if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("port %s: want 1 to 65535", u.Port())
	}
	return nil
}

// RedactEndpoint returns ep with any user name and password replaced by
// "REDACTED", for error messages about an endpoint that holds them; it
// works on strings that do not parse as URLs too.
func RedactEndpoint(ep string) string {
	scheme, rest := "", ep
	if i := strings.Index(ep, "://"); i >= 0 {
		scheme, rest = ep[:i+3], ep[i+3:]
	}
	auth := rest
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		auth = rest[:j]
	}
	if k := strings.LastIndex(auth, "@"); k >= 0 {
		return scheme + "REDACTED@" + rest[k+1:]
	}
	return ep
}

// Validate reports the first problem of c without reading any file,
// wrapping keygen.ErrInvalidConfig.
func (c ClientConfig) Validate() error {
	if len(c.Endpoints) == 0 {
		return fmt.Errorf("%w: no etcd endpoints", keygen.ErrInvalidConfig)
	}
	tlsWanted := c.CAFile != "" || c.CertFile != ""
	for _, e := range c.Endpoints {
		if err := CheckEndpoint(e); err != nil {
			return fmt.Errorf("%w: etcd endpoint %q: %w", keygen.ErrInvalidConfig, RedactEndpoint(e), err)
		}
		if u, _ := url.Parse(e); u.Scheme == "http" && tlsWanted {
			return fmt.Errorf("%w: etcd endpoint %q is plain http but TLS files are set: use https://", keygen.ErrInvalidConfig, e)
		}
	}
	switch {
	case c.DialTimeout < 0:
		return fmt.Errorf("%w: etcd dial timeout %v is negative", keygen.ErrInvalidConfig, c.DialTimeout)
	case (c.CertFile == "") != (c.KeyFile == ""):
		return fmt.Errorf("%w: etcd client certificate and key go together: set both cert_file and key_file, or neither", keygen.ErrInvalidConfig)
	case (c.Username == "") != (c.PasswordFile == ""):
		return fmt.Errorf("%w: etcd username and password_file go together: set both, or neither", keygen.ErrInvalidConfig)
	}
	return nil
}

// Dial returns a client of the cluster c describes. It reads the TLS files
// and the password file (refusing a password file others may read) but does
// not wait for the cluster: requests fail until it answers. log receives
// the client's own warnings (nil: none).
func Dial(c ClientConfig, log *zap.Logger) (*clientv3.Client, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	cfg := clientv3.Config{
		Endpoints:            c.Endpoints,
		DialTimeout:          c.DialTimeout,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		Logger:               log,
		// Redial a member that went away within about two seconds of its
		// return (gRPC's default backoff grows to two minutes), so a
		// daemon whose keys ran out while etcd was down recovers promptly.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 2 * time.Second,
		})},
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	tlsCfg, err := c.tls()
	if err != nil {
		return nil, err
	}
	cfg.TLS = tlsCfg
	if c.Username != "" {
		pw, err := readPassword(c.PasswordFile)
		if err != nil {
			return nil, err
		}
		cfg.Username, cfg.Password = c.Username, pw
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	return cli, nil
}

func (c ClientConfig) tls() (*tls.Config, error) {
	https := false
	for _, e := range c.Endpoints {
		https = https || strings.HasPrefix(e, "https://")
	}
	if !https {
		return nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: etcd CA file: %w", keygen.ErrInvalidConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: etcd CA file %s holds no PEM certificate", keygen.ErrInvalidConfig, c.CAFile)
		}
		t.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: etcd client certificate: %w", keygen.ErrInvalidConfig, err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// readPassword reads the first line of path, refusing a file that others
// may read or write.
func readPassword(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("%w: etcd password file: %w", keygen.ErrInvalidConfig, err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%w: etcd password file %s has mode %#o; it must be 0600 (owner only): chmod 600 %s", keygen.ErrInvalidConfig, path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%w: etcd password file: %w", keygen.ErrInvalidConfig, err)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if pw == "" {
		return "", fmt.Errorf("%w: etcd password file %s is empty", keygen.ErrInvalidConfig, path)
	}
	return pw, nil
}
