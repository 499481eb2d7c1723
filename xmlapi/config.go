package xmlapi

import (
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"switchboard/internal/defaults"
	"switchboard/internal/strictyaml"
)

// DefaultYAML is the embedded default configuration (xmlapi/default.yaml):
// the documented defaults and the seed's sample account (webExID hostid,
// password hostpassword, siteID 0000, partnerID 9999, email
// johnsmith@xyz.com), so that the seed request works out of the box.
//
//go:embed default.yaml
var DefaultYAML []byte

// Config is the front end's whole configuration: what the YAML file holds.
// A zero field takes the default documented beside it. A Config is a plain
// value; the Handler copies what it needs at construction.
type Config struct {
	HTTP    HTTPConfig    `yaml:"http"`
	XML     XMLConfig     `yaml:"xml"`
	Backend BackendConfig `yaml:"backend"`
	Auth    AuthConfig    `yaml:"auth"`
	Log     LogConfig     `yaml:"log"`
	Metrics MetricsConfig `yaml:"metrics"`
	// Accounts are the hosts allowed to call the API. At least one.
	Accounts []Account `yaml:"accounts"`
}

// HTTPConfig bounds the HTTP side.
type HTTPConfig struct {
	// MaxBodyBytes caps a request body; a longer one gets a FAILURE 000000
	// and the connection is closed. Default 131072 (128 KiB), 4 KiB–16 MiB.
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// MaxHeaderBytes caps the request line and headers. Default 16384.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// ReadHeaderTimeout bounds reading the request headers. Default 5s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, body included (a slow
	// sender is cut off). Default 10s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds a request from the end of its headers to the end
	// of the response, sign-in and backend calls included; it must exceed
	// backend.request_timeout plus auth.hash_wait. Default 15s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes a keep-alive connection idle this long. Default 60s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// ShutdownTimeout bounds the drain of requests in flight on SIGINT or
	// SIGTERM. Default 10s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// AllowSampleAccount lets the embedded sample account (web_ex_id
	// hostid, password hostpassword: public) serve on a listen address
	// that is not loopback. Default false: cmd/xmlapi refuses to start
	// (CheckListen), as anyone who can reach the port could sign in.
	AllowSampleAccount bool `yaml:"allow_sample_account"`
}

// XMLConfig tunes parsing and rendering.
type XMLConfig struct {
	// MaxDepth caps element nesting; a deeper document gets a FAILURE
	// 000000 before anything else is done. Default 32, 8–1000 (the deepest
	// legitimate path, message/body/bodyContent/fullAccessAttendees/
	// attendee/phones/phone, is 7).
	MaxDepth int `yaml:"max_depth"`
	// GSBStatus is the serv:gsbStatus of every response: PRIMARY, or BACKUP
	// for a front end serving as a Global Site Backup. Default PRIMARY.
	GSBStatus string `yaml:"gsb_status"`
}

// BackendConfig says how the daemon is called.
type BackendConfig struct {
	// RequestTimeout bounds all daemon calls of one XML request (a Set is a
	// LOOKUP then an UPDATE); it starts once the caller is signed in. It should exceed the daemon's own
	// server.request_timeout (default 2s) so that the daemon's TIMEOUT is
	// seen rather than ours. Default 3s.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// Conns is the number of pipelined connections to the daemon. Default 2.
	Conns int `yaml:"conns"`
	// DialTimeout bounds one dial of the daemon's socket. Default 1s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// ConnectTimeout is how long cmd/xmlapi waits at start for the daemon's
	// socket to accept (it may start at the same time). Default 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
}

// AuthConfig tunes password checking.
type AuthConfig struct {
	// CacheTTL is how long a verified (account, password) pair skips the
	// slow hash: WebEx clients send the password with every request, and a
	// bcrypt or argon2id check costs tens of milliseconds. Only a keyed
	// HMAC of the pair is kept, in memory. Default 5m; negative disables.
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// CacheSize caps the verified pairs remembered. Default 4096.
	CacheSize int `yaml:"cache_size"`
	// MaxConcurrentHashes caps slow hash checks running at once, so that a
	// flood of logins cannot take every core from the requests already
	// signed in. Default half of GOMAXPROCS, at least 1.
	MaxConcurrentHashes int `yaml:"max_concurrent_hashes"`
	// HashWait is how long a login waits for a free hash slot; past it the
	// login is answered 069906 (busy, retry) at once. Sign-in is not
	// counted in backend.request_timeout, which starts after it; the two
	// together must stay below http.write_timeout. Default 500ms.
	HashWait time.Duration `yaml:"hash_wait"`
	// ThrottleFreeFailures is how many failed logins a claimed account name,
	// and a client address, may have before each further one is delayed.
	// Default 5.
	ThrottleFreeFailures int `yaml:"throttle_free_failures"`
	// ThrottleBaseDelay is the first delay: logins for a throttled name or
	// from a throttled address are answered 069907 without a password
	// check until it passes. It doubles with every further failure.
	// Default 1s.
	ThrottleBaseDelay time.Duration `yaml:"throttle_base_delay"`
	// ThrottleMaxDelay caps the delay; a name or address without failures
	// for twice this long is forgotten. Default 5m.
	ThrottleMaxDelay time.Duration `yaml:"throttle_max_delay"`
	// ThrottleHold is how long the 069907 answer to a throttled login is
	// held (at most the delay still to run), so that a client ignoring
	// Retry-After cannot post thousands of refused logins a second on one
	// connection. Default 1s; must be below http.write_timeout; a
	// negative value answers at once.
	ThrottleHold time.Duration `yaml:"throttle_hold"`
	// ThrottleEntries bounds the memory of the throttle: the failure
	// counts and trusted (account, address) pairs kept, about 100 bytes
	// each. Default 16384, at least 64.
	ThrottleEntries int `yaml:"throttle_entries"`
	// TrustTTL is how long an address that signed in successfully to an
	// account stays trusted for it (the account's throttle does not apply
	// to it), from its latest successful sign-in. It must outlast the
	// gaps between a host's sign-ins, or an attacker keeping the account
	// throttled locks the host out. Default 720h (30 days); at least
	// auth.throttle_max_delay.
	TrustTTL time.Duration `yaml:"trust_ttl"`
	// TrustedProxies lists the addresses or CIDR prefixes of load
	// balancers in front of the front end. For a request from one of them
	// the client address the throttle counts is the rightmost address of
	// X-Forwarded-For that is not itself listed; for any other peer the
	// header is ignored. Default none.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// TicketSecretFile is a file holding the secret that signs session
	// tickets (AuthenticateUser): at least 64 hex digits (32 bytes, e.g.
	// `openssl rand -hex 32`), mode 0600 or stricter, read at start and
	// never logged. Every front end behind one load balancer needs the
	// same file, so that a ticket one issued works on the others. Default
	// empty: a random secret per process (tickets do not survive a
	// restart and work only on the front end that issued them).
	TicketSecretFile string `yaml:"ticket_secret_file"`
}

// proxies parses TrustedProxies (validated).
func (c *AuthConfig) proxies() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range c.TrustedProxies {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// parsePrefix reads a CIDR prefix or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// MetricsConfig configures the Prometheus and health listener.
type MetricsConfig struct {
	// Addr serves GET /metrics (the xmlapi_* families, Prometheus text or
	// OpenMetrics) and GET /healthz: a loopback host:port (open to every
	// local user) or unix:/absolute/path (a socket of mode 0660: its owner
	// and group only). Default empty: no such listener (/healthz is still
	// served on the XML port).
	Addr string `yaml:"addr"`
}

// LogConfig sets up cmd/xmlapi's logger.
type LogConfig struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is json or console. Default json.
	Format string `yaml:"format"`
}

// Account is a host allowed to call the API. Passwords are stored only as
// hashes; generate one with `xmlapi -hash-password`.
type Account struct {
	// WebExID is the host's user name; unique, case-insensitive, at most 64
	// bytes. Required.
	WebExID string `yaml:"web_ex_id"`
	// Email lets the host sign in with securityContext/email instead of
	// webExID; unique, case-insensitive. Optional.
	Email string `yaml:"email"`
	// SiteID is the numeric site the account belongs to (compared as a
	// number: "0000" equals "0"). SiteID or SiteName is required.
	SiteID string `yaml:"site_id"`
	// SiteName is the site's name (the subdomain), case-insensitive.
	SiteName string `yaml:"site_name"`
	// PartnerID, when set, must match a securityContext/partnerID the
	// client sends (a client that sends none is not refused).
	PartnerID string `yaml:"partner_id"`
	// PasswordHash is a bcrypt ($2a$/$2b$/$2y$) or argon2id (PHC string
	// $argon2id$v=19$m=…,t=…,p=…$salt$hash) hash. Required.
	PasswordHash string `yaml:"password_hash"`
	// TimeZoneID is the host's time zone, used when a request gives a
	// startDate without a timeZoneID. Default 4 (GMT-08:00 San Jose).
	TimeZoneID *int `yaml:"time_zone_id"`
}

// DefaultConfig returns the embedded default configuration with every
// default applied.
func DefaultConfig() (*Config, error) { return ParseConfig(DefaultYAML, "embedded default") }

// LoadConfig reads, strictly decodes, defaults and validates a config file
// (see ParseConfig).
func LoadConfig(path string) (*Config, error) { return loadConfig(path, false) }

// LoadConfigChecked is LoadConfig that also reads the files the config
// names, as CheckFiles does, and reports their problems in the same pass as
// the file's own (xmlapi -check-config): an operator fixing a file sees
// every error at once, not the YAML's first and the files' after.
func LoadConfigChecked(path string) (*Config, error) { return loadConfig(path, true) }

func loadConfig(path string, files bool) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return parseConfig(b, path, files)
}

// ParseConfig strictly decodes YAML, applies the defaults and validates.
// name labels errors. Every problem is reported in one pass, each with its
// line in the file when the file sets the value (see strictyaml): what does
// not decode (unknown field, wrong type, duplicate key) is cut out and the
// rest decoded and validated, leaving out problems at the fields that did
// not decode (they are reported once, as decoding problems). The error
// wraps ErrConfig; strictyaml.List takes it apart, one problem each.
func ParseConfig(b []byte, name string) (*Config, error) { return parseConfig(b, name, false) }

// parseConfig is ParseConfig; with files it also checks the files the
// config names (CheckFiles) and adds their problems to the same report.
func parseConfig(b []byte, name string, files bool) (*Config, error) {
	var c Config
	lines, rest, err := strictyaml.DecodePartial(b, name, &c)
	if err != nil && !rest {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	var all strictyaml.Errors
	if err != nil && !errors.As(err, &all) {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	c.ApplyDefaults()
	checks := []func() error{c.Validate}
	if files {
		checks = append(checks, c.CheckFiles)
	}
	for _, check := range checks {
		if cerr := check(); cerr != nil {
			var es strictyaml.Errors
			if !errors.As(cerr, &es) {
				return nil, cerr
			}
			es.Locate(name, lines)
			all = append(all, es.Except(all)...)
		}
	}
	if err := all.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return &c, nil
}

// ApplyDefaults fills every zero field with its documented default.
func (c *Config) ApplyDefaults() {
	defaults.Or(&c.HTTP.MaxBodyBytes, 128<<10)
	defaults.Or(&c.HTTP.MaxHeaderBytes, 16<<10)
	defaults.Or(&c.HTTP.ReadHeaderTimeout, 5*time.Second)
	defaults.Or(&c.HTTP.ReadTimeout, 10*time.Second)
	defaults.Or(&c.HTTP.WriteTimeout, 15*time.Second)
	defaults.Or(&c.HTTP.IdleTimeout, 60*time.Second)
	defaults.Or(&c.HTTP.ShutdownTimeout, 10*time.Second)
	defaults.Or(&c.XML.MaxDepth, 32)
	defaults.Or(&c.XML.GSBStatus, "PRIMARY")
	defaults.Or(&c.Backend.RequestTimeout, 3*time.Second)
	defaults.Or(&c.Backend.Conns, 2)
	defaults.Or(&c.Backend.DialTimeout, time.Second)
	defaults.Or(&c.Backend.ConnectTimeout, 10*time.Second)
	defaults.Or(&c.Auth.CacheTTL, 5*time.Minute)
	defaults.Or(&c.Auth.CacheSize, 4096)
	defaults.Or(&c.Auth.MaxConcurrentHashes, max(1, runtime.GOMAXPROCS(0)/2))
	defaults.Or(&c.Auth.HashWait, 500*time.Millisecond)
	defaults.Or(&c.Auth.ThrottleFreeFailures, 5)
	defaults.Or(&c.Auth.ThrottleBaseDelay, time.Second)
	defaults.Or(&c.Auth.ThrottleMaxDelay, 5*time.Minute)
	defaults.Or(&c.Auth.TrustTTL, 720*time.Hour)
	defaults.Or(&c.Auth.ThrottleEntries, 16384)
	defaults.Or(&c.Auth.ThrottleHold, time.Second)
	defaults.Or(&c.Log.Level, "info")
	defaults.Or(&c.Log.Format, "json")
	for i := range c.Accounts {
		if c.Accounts[i].TimeZoneID == nil {
			tz := DefaultTimeZoneID
			c.Accounts[i].TimeZoneID = &tz
		}
	}
}

// Validate reports every invalid field, as strictyaml.Errors wrapped in
// ErrConfig: each names its field, so that ParseConfig can add its line.
// Call ApplyDefaults first (ParseConfig does).
func (c *Config) Validate() error {
	var errs strictyaml.Errors
	bad := func(field, format string, args ...any) {
		errs = append(errs, &strictyaml.FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if n := c.HTTP.MaxBodyBytes; n < 4<<10 || n > 16<<20 {
		bad("http.max_body_bytes", "%d not in 4096..16777216", n)
	}
	if n := c.HTTP.MaxHeaderBytes; n < 1<<10 || n > 1<<20 {
		bad("http.max_header_bytes", "%d not in 1024..1048576", n)
	}
	for _, d := range []struct {
		f string
		v time.Duration
	}{
		{"http.read_header_timeout", c.HTTP.ReadHeaderTimeout}, {"http.read_timeout", c.HTTP.ReadTimeout},
		{"http.write_timeout", c.HTTP.WriteTimeout}, {"http.idle_timeout", c.HTTP.IdleTimeout},
		{"http.shutdown_timeout", c.HTTP.ShutdownTimeout}, {"backend.request_timeout", c.Backend.RequestTimeout},
		{"backend.dial_timeout", c.Backend.DialTimeout}, {"backend.connect_timeout", c.Backend.ConnectTimeout},
	} {
		if d.v < 0 {
			bad(d.f, "must not be negative")
		}
	}
	if c.HTTP.WriteTimeout <= c.Backend.RequestTimeout {
		bad("http.write_timeout", "%v must exceed backend.request_timeout %v", c.HTTP.WriteTimeout, c.Backend.RequestTimeout)
	}
	if n := c.XML.MaxDepth; n < 8 || n > 1000 {
		bad("xml.max_depth", "%d not in 8..1000", n)
	}
	if s := c.XML.GSBStatus; s != "PRIMARY" && s != "BACKUP" {
		bad("xml.gsb_status", "%q is not PRIMARY or BACKUP", s)
	}
	if n := c.Backend.Conns; n < 1 || n > 64 {
		bad("backend.conns", "%d not in 1..64", n)
	}
	if n := c.Auth.CacheSize; n < 1 {
		bad("auth.cache_size", "%d must be positive", n)
	}
	if n := c.Auth.MaxConcurrentHashes; n < 1 {
		bad("auth.max_concurrent_hashes", "%d must be positive", n)
	}
	if d := c.Auth.HashWait; d <= 0 || d+c.Backend.RequestTimeout >= c.HTTP.WriteTimeout {
		bad("auth.hash_wait", "%v must be positive, and with backend.request_timeout %v below http.write_timeout %v", d, c.Backend.RequestTimeout, c.HTTP.WriteTimeout)
	}
	if n := c.Auth.ThrottleFreeFailures; n < 1 || n > 1000 {
		bad("auth.throttle_free_failures", "%d not in 1..1000", n)
	}
	if d := c.Auth.ThrottleBaseDelay; d < time.Millisecond {
		bad("auth.throttle_base_delay", "%v must be at least 1ms", d)
	}
	if d := c.Auth.ThrottleMaxDelay; d < c.Auth.ThrottleBaseDelay || d > 24*time.Hour {
		bad("auth.throttle_max_delay", "%v must be at least auth.throttle_base_delay %v and at most 24h", d, c.Auth.ThrottleBaseDelay)
	}
	if d := c.Auth.TrustTTL; d < c.Auth.ThrottleMaxDelay || d > 8760*time.Hour {
		bad("auth.trust_ttl", "%v must be at least auth.throttle_max_delay %v and at most 8760h (a year)", d, c.Auth.ThrottleMaxDelay)
	}
	if d := c.Auth.ThrottleHold; d >= c.HTTP.WriteTimeout {
		bad("auth.throttle_hold", "%v must be below http.write_timeout %v", d, c.HTTP.WriteTimeout)
	}
	if n := c.Auth.ThrottleEntries; n < 64 || n > 1<<24 {
		bad("auth.throttle_entries", "%d not in 64..16777216", n)
	}
	for i, p := range c.Auth.TrustedProxies {
		if _, err := parsePrefix(p); err != nil {
			bad(fmt.Sprintf("auth.trusted_proxies[%d]", i), "%q is not an IP address or CIDR prefix", p)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	if f := c.Log.Format; f != "json" && f != "console" {
		bad("log.format", "%q is not json or console", f)
	}
	if err := validMetricsAddr(c.Metrics.Addr); err != nil {
		bad("metrics.addr", "%v", err)
	}
	if len(c.Accounts) == 0 {
		bad("accounts", "at least one account is required")
	}
	ids := map[string]int{}
	emails := map[string]int{}
	for i, a := range c.Accounts {
		f := fmt.Sprintf("accounts[%d]", i)
		switch {
		case a.WebExID == "":
			bad(f+".web_ex_id", "required")
		case len(a.WebExID) > 64:
			bad(f+".web_ex_id", "longer than 64 bytes")
		default:
			k := foldName(a.WebExID)
			if j, dup := ids[k]; dup {
				bad(f+".web_ex_id", "%q already used by accounts[%d]", a.WebExID, j)
			}
			ids[k] = i
		}
		if a.Email != "" {
			k := foldName(a.Email)
			if j, dup := emails[k]; dup {
				bad(f+".email", "%q already used by accounts[%d]", a.Email, j)
			}
			emails[k] = i
		}
		if a.SiteID == "" && a.SiteName == "" {
			bad(f, "site_id or site_name is required")
		}
		if a.SiteID != "" {
			if _, err := strconv.ParseInt(a.SiteID, 10, 64); err != nil {
				bad(f+".site_id", "%q is not a number", a.SiteID)
			}
		}
		if _, err := parseHash(a.PasswordHash); err != nil {
			bad(f+".password_hash", "%v", err)
		}
		if a.TimeZoneID != nil && (*a.TimeZoneID < 0 || *a.TimeZoneID > MaxTimeZoneID) {
			bad(f+".time_zone_id", "%d not in 0..%d", *a.TimeZoneID, MaxTimeZoneID)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrConfig, errs)
}

// The embedded sample account (default.yaml, from the WebEx documentation's
// sample request): its password is in every copy of this program.
const (
	sampleWebExID       = "hostid"
	samplePassword      = "hostpassword"
	samplePasswordHash  = "$2a$10$0zQJr6Pu6lsaEqtJRipz.OoBgtU6uGhQvtdVM2oV03OgkBIJeqgg6"
	allowSampleAccField = "http.allow_sample_account"
)

// ErrSampleAccount: the sample account would serve on an address that is
// not loopback (CheckListen).
var ErrSampleAccount = errors.New("xmlapi: the sample account would serve beyond this host")

// sampleAccounts returns the indexes of the accounts that are the sample
// account: its password hash, or web_ex_id hostid with password
// hostpassword under another hash (one slow check, for that name only).
func (c *Config) sampleAccounts() []int {
	var out []int
	for i, a := range c.Accounts {
		if a.PasswordHash == samplePasswordHash {
			out = append(out, i)
			continue
		}
		if !strings.EqualFold(a.WebExID, sampleWebExID) {
			continue
		}
		if h, err := parseHash(a.PasswordHash); err == nil && h.verify([]byte(samplePassword)) {
			out = append(out, i)
		}
	}
	return out
}

// IsLoopbackListen reports whether a host:port listens on loopback only:
// localhost, 127.0.0.0/8 or ::1. An empty host (every interface), an
// unspecified address or any other name is not.
func IsLoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// CheckListen refuses to serve the sample account on listen, a TCP
// host:port that is not loopback, unless http.allow_sample_account is set:
// its password is public. The error wraps ErrSampleAccount and names the
// account and the field.
func (c *Config) CheckListen(listen string) error {
	if c.HTTP.AllowSampleAccount || IsLoopbackListen(listen) {
		return nil
	}
	idx := c.sampleAccounts()
	if len(idx) == 0 {
		return nil
	}
	return fmt.Errorf("%w: listen address %s is not loopback, and accounts[%d] (%s) is the embedded sample account, whose password %q is public: "+
		"remove it from accounts, listen on 127.0.0.1, or set %s: true", ErrSampleAccount, listen, idx[0], c.Accounts[idx[0]].WebExID,
		samplePassword, allowSampleAccField)
}
