package daemon

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"switchboard/breaker"
	"switchboard/configs"
	"switchboard/frontend"
	"switchboard/internal/defaults"
	"switchboard/internal/strictyaml"
	"switchboard/keygen"
	"switchboard/keygen/etcdstore"
	"switchboard/pool"
	"switchboard/route"
	"switchboard/wire"
)

// Default locations, used when neither the config file nor a flag says
// otherwise.
const (
	DefaultSocket  = "/run/switchboard/switchboard.sock"
	DefaultDataDir = "/var/lib/switchboard"
)

// Errors of the daemon's operations, matched with errors.Is.
var (
	// ErrConfig wraps every configuration error.
	ErrConfig = errors.New("invalid configuration")
	// ErrRequiresRestart refuses a reload that changes a field that cannot
	// change while running (socket, data_dir, keys…): nothing changed.
	ErrRequiresRestart = errors.New("requires restart")
	// ErrNotWarm refuses a reload whose new pools did not get warm within
	// server.ready_timeout: nothing changed.
	ErrNotWarm = errors.New("new pools not warm")
	// ErrNotRunning is returned by operations that need Run in progress.
	ErrNotRunning = errors.New("daemon not running")
	// ErrNoSource is returned by ReloadFromSource without WithConfigSource.
	ErrNoSource = errors.New("no configuration source to reload from")
	// ErrUnknownTier names a tier the configuration in force does not have.
	ErrUnknownTier = errors.New("unknown tier")
)

// Config is the daemon's whole configuration: what the YAML file holds. A
// zero field takes the default documented beside it (applyDefaults); the
// embedded default file is configs/default.yaml. Each field's reload tag
// says whether a reload can change it (see RestartFields).
type Config struct {
	// Instance names this daemon in HELLO to telephony servers and in logs.
	// Default: the host name.
	Instance string `yaml:"instance" reload:"restart"`
	// Socket is the front-end Unix socket's path. Default DefaultSocket; the
	// -socket flag overrides it. Cannot change on reload.
	Socket string `yaml:"socket" reload:"restart"`
	// DataDir holds the key lease file, the key secret and the orphan
	// journal (reservations to release, kept across restarts). Default
	// DefaultDataDir; the -data-dir flag overrides it. Cannot change on
	// reload.
	DataDir string `yaml:"data_dir" reload:"restart"`

	Log     LogConfig     `yaml:"log"`
	Admin   AdminConfig   `yaml:"admin"`
	Metrics MetricsConfig `yaml:"metrics"`
	Server  ServerConfig  `yaml:"server"`
	Keys    KeysConfig    `yaml:"keys"`
	Cache   CacheConfig   `yaml:"cache"`
	Pool    PoolConfig    `yaml:"pool" reload:"live"`
	Breaker BreakerConfig `yaml:"breaker" reload:"live"`
	// Tiers in failover order: the first tier that can serve a request
	// takes it. At least one.
	Tiers []TierConfig `yaml:"tiers" reload:"live"`
	// Simulators configures in-process telephony simulators named by
	// sim://NAME servers. A sim:// name not listed gets the defaults.
	Simulators []SimConfig `yaml:"simulators" reload:"live"`
}

// LogConfig sets up logging.
type LogConfig struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level" reload:"live"`
	// Format is auto (console on a terminal, JSON otherwise), json or
	// console. Default auto.
	Format string `yaml:"format" reload:"restart"`
}

// AdminConfig configures the operator's control socket (sbctl status,
// reload, drain, breaker; /debug/pprof; /log/level). Cannot change on
// reload.
type AdminConfig struct {
	// Socket is the admin Unix socket's path, created with mode 0600.
	// Default empty: no admin socket. The -admin-socket flag overrides it.
	Socket string `yaml:"socket" reload:"restart"`
}

// MetricsConfig configures the Prometheus endpoint. Cannot change on reload.
type MetricsConfig struct {
	// Addr is the loopback host:port serving GET /metrics (Prometheus
	// text), or unix:/path for a Unix socket created with mode 0660 (only
	// its owner and group can scrape; a loopback port is open to every
	// local user). Default empty: no metrics endpoint. The -metrics-addr
	// flag overrides it. Only loopback addresses (127.0.0.0/8, ::1,
	// localhost) are accepted: scrape through a local agent or a reverse
	// proxy.
	Addr string `yaml:"addr" reload:"restart"`
}

// ServerConfig tunes the front-end socket server. Transport, MaxFrame,
// ReadTimeout and WriteTimeout cannot change on reload; the others can.
type ServerConfig struct {
	// Transport serves the socket with "netpoll" (cloudwego/netpoll: no
	// goroutine per idle connection, the choice for thousands of mostly idle
	// front-end connections) or "net" (the standard library: one goroutine
	// per connection, the lowest latency for a few busy connections, which
	// is how front ends use the daemon). Default net; see
	// bench/results for the measurements behind it.
	Transport string `yaml:"transport" reload:"restart"`
	// MaxFrame is the largest front-end frame accepted, in bytes. Default
	// 65536 (wire.DefaultMaxFrame); at least 16384.
	MaxFrame int `yaml:"max_frame" reload:"restart"`
	// MaxConns bounds the front-end connections open at once; one beyond
	// it is closed as soon as it is accepted (the client sees EOF) and
	// counted in switchboard_connections_refused_total. Front ends keep a
	// few persistent connections: the bound is against leaks and floods
	// (each connection costs a 64 KiB read buffer on the net transport).
	// Lowering it on reload closes no open connection. Default 1024.
	MaxConns int `yaml:"max_conns" reload:"live"`
	// MaxInFlight bounds requests in progress across the daemon; a request
	// beyond it is answered OVERLOADED at once. Default 4096.
	MaxInFlight int `yaml:"max_in_flight" reload:"live"`
	// MaxConnInFlight bounds requests in progress on one connection.
	// Default 1024.
	MaxConnInFlight int `yaml:"max_conn_in_flight" reload:"live"`
	// RequestTimeout bounds one request, every tier attempt included.
	// Default 2s.
	RequestTimeout time.Duration `yaml:"request_timeout" reload:"live"`
	// ReadTimeout bounds how long a started frame may take to arrive
	// completely (a slow or stuck writer is disconnected). Default 5s.
	ReadTimeout time.Duration `yaml:"read_timeout" reload:"restart"`
	// WriteTimeout bounds writing a response to a client that does not
	// read. Default 5s.
	WriteTimeout time.Duration `yaml:"write_timeout" reload:"restart"`
	// ReadyTimeout bounds the wait for warm pools at start. Default 5s.
	ReadyTimeout time.Duration `yaml:"ready_timeout" reload:"live"`
	// ShutdownTimeout bounds the drain of in-flight requests on SIGTERM.
	// Default 10s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" reload:"live"`
	// MaxConnUnanswered bounds the requests read on one connection whose
	// response has not been written to it yet (running, or answered and
	// queued behind a client that does not read). At the bound the daemon
	// stops reading that connection until responses drain, so the kernel's
	// socket buffers push back on the client. Default 256.
	MaxConnUnanswered int `yaml:"max_conn_unanswered" reload:"live"`
	// MaxConnQueuedBytes bounds the response bytes queued but not yet
	// written on one connection; at the bound the daemon stops reading that
	// connection, as for MaxConnUnanswered. Default 1 MiB; at least
	// MaxFrame.
	MaxConnQueuedBytes int `yaml:"max_conn_queued_bytes" reload:"live"`
	// IdleTimeout cuts a connection that, for this long, has sent no
	// request or has left written responses unread (a client that trickles
	// PINGs without reading their PONGs is cut). Checked every
	// IdleTimeout/8. Default 5m.
	IdleTimeout time.Duration `yaml:"idle_timeout" reload:"live"`
	// MaxConnsPerUID bounds the front-end connections open at once from
	// one peer uid (SO_PEERCRED, Linux); one beyond it is closed at accept
	// and counted in switchboard_connections_refused_total. It keeps
	// another account allowed on the socket from taking the slots (and
	// evicting the front end's idle connections). Default 0: no bound.
	MaxConnsPerUID int `yaml:"max_conns_per_uid" reload:"live"`
	// AllowUIDs and AllowGIDs restrict the front-end socket, beyond its
	// file mode, to peers (SO_PEERCRED, Linux) whose uid is in AllowUIDs
	// or whose gid (the connecting process's effective group when it
	// connected; supplementary groups do not count) is in AllowGIDs. A
	// connection from any other peer is closed at accept, logged with its
	// uid and gid, and counted in switchboard_connections_not_allowed_total.
	// Root is not special: list uid 0 to let it in. Default: both empty,
	// anyone the socket's mode lets in. Reloadable (open connections stay).
	AllowUIDs []uint32 `yaml:"allow_uids" reload:"live"`
	AllowGIDs []uint32 `yaml:"allow_gids" reload:"live"`
}

// KeysConfig configures session keys. No field can change on reload
// (Digits and Secret would reissue keys; the store is opened once).
type KeysConfig struct {
	// Store is where the high-water mark lives: "file" (keygen.lease in
	// data_dir, one daemon) or "etcd" (one key space shared by a fleet of
	// daemons, see Etcd). Default "file".
	Store string `yaml:"store" reload:"restart"`
	// Digits is the number of decimal digits of a session key, 6–18.
	// Default 9.
	Digits int `yaml:"digits" reload:"restart"`
	// BlockSize is how many counters are leased (persisted with fsync) at
	// once: the most keys a crash can waste. Default 4096.
	BlockSize uint64 `yaml:"block_size" reload:"restart"`
	// Secret is the permutation key, hex-encoded (at least 16 bytes). Empty:
	// <data_dir>/keygen.secret, provisioned, or generated by InitKeys
	// (switchboard -init-keys) on a single node; never at start.
	Secret string `yaml:"secret" reload:"restart"`
	// Node partitions the key space among daemons sharing it (file store
	// only: with etcd every daemon leases from the whole space).
	Node NodeConfig `yaml:"node" reload:"restart"`
	// Etcd configures the etcd store (used when Store is "etcd").
	Etcd EtcdConfig `yaml:"etcd" reload:"restart"`
}

// EtcdConfig says where the etcd key store is and how to reach it.
type EtcdConfig struct {
	// Endpoints are the etcd members' client URLs, http:// or https://.
	// Required with store etcd.
	Endpoints []string `yaml:"endpoints"`
	// Prefix is the key space's etcd key prefix, starting and ending in
	// "/". Default "/switchboard/keys/".
	Prefix string `yaml:"prefix"`
	// DialTimeout bounds connection set-up (authentication, the fleet
	// lease's keepalive). Default 5s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// RequestTimeout bounds each etcd request (a lease, the binding check).
	// Default 2s.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// MaxBlock bounds the block leased from etcd at once, which grows from
	// keys.block_size while blocks last less than BlockPeriod: the most
	// counters a crash wastes. Default 1048576 (at least keys.block_size).
	MaxBlock uint64 `yaml:"max_block"`
	// BlockPeriod is how long a block should last: one used up faster
	// doubles the next, one that lasts twice as long halves it. Default 10s.
	BlockPeriod time.Duration `yaml:"block_period"`
	// CAFile verifies the members' certificates; CertFile and KeyFile are
	// this daemon's client certificate (both or neither). https endpoints
	// only. Default none.
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Username and PasswordFile (a file holding the password, mode 0600)
	// authenticate with etcd's auth; both or neither. Default none.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
}

// NodeConfig is this daemon's share of the key space.
type NodeConfig struct {
	// ID is this daemon's index, 0 ≤ ID < Count. Default 0.
	ID int `yaml:"id"`
	// Count is how many daemons share the key space. Default 1.
	Count int `yaml:"count"`
}

// CacheConfig sizes the session index and the idempotency cache.
type CacheConfig struct {
	// SizeMB is the fastcache size in MiB (rounded up to 32 MiB steps).
	// Default 64.
	SizeMB int `yaml:"size_mb" reload:"restart"`
	// TokenTTL is how long an idempotency token is remembered. Default 24h.
	TokenTTL time.Duration `yaml:"token_ttl" reload:"restart"`
}

// PoolConfig tunes telephony connection pools. At the top level it gives the
// defaults for every tier; in a tier it overrides them field by field (a zero
// field inherits).
type PoolConfig struct {
	// MinConns is how many warm connections are kept per server. Default 2.
	MinConns int `yaml:"min_conns"`
	// MaxInFlight bounds requests in flight per connection. Default 1024.
	MaxInFlight int `yaml:"max_in_flight"`
	// DialTimeout bounds a dial and its HELLO. Default 1s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// HeartbeatInterval is the PING period per connection. Default 1s.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// HeartbeatTimeout is how long a PONG may take before the connection is
	// declared dead. Default 1s.
	HeartbeatTimeout time.Duration `yaml:"heartbeat_timeout"`
	// BackoffBase and BackoffMax bound reconnect backoff (exponential, full
	// jitter). Defaults 50ms and 5s.
	BackoffBase time.Duration `yaml:"backoff_base"`
	BackoffMax  time.Duration `yaml:"backoff_max"`
	// MaxAge recycles connections older than this (jittered by MaxAge/10);
	// 0 never. Default 0.
	MaxAge time.Duration `yaml:"max_age"`
}

// BreakerConfig tunes per-tier circuit breakers; in a tier it overrides the
// top level field by field.
type BreakerConfig struct {
	// Failures is how many consecutive failed attempts open a breaker.
	// Default 5.
	Failures uint32 `yaml:"failures"`
	// OpenFor is how long an open breaker refuses before probing. Default 2s.
	OpenFor time.Duration `yaml:"open_for"`
	// Probes is how many attempts a half-open breaker admits. Default 1.
	Probes uint32 `yaml:"probes"`
	// Window is how long a closed breaker remembers failures. Default 10s.
	Window time.Duration `yaml:"window"`
}

// TierConfig is one telephony tier.
type TierConfig struct {
	// Name identifies the tier (primary-large, nextgen, backup2-large, …);
	// unique, [a-z0-9-], at most 64 bytes.
	Name string `yaml:"name"`
	// Servers are tcp://host:port or sim://NAME URLs. At least one.
	Servers []string `yaml:"servers"`
	// AttemptTimeout bounds one RESERVE on this tier before the request
	// moves on to the next tier. Default 250ms.
	AttemptTimeout time.Duration `yaml:"attempt_timeout"`
	// Pool overrides the top-level pool settings for this tier.
	Pool PoolConfig `yaml:"pool"`
	// Breaker overrides the top-level breaker settings for this tier.
	Breaker BreakerConfig `yaml:"breaker"`
}

// SimConfig configures one in-process telephony simulator.
type SimConfig struct {
	// Name is the NAME of sim://NAME.
	Name string `yaml:"name"`
	// Capacity is the number of bridges it holds. Default (0): the
	// simulator's own (telsim.DefaultCapacity, 100000), which the daemon
	// leaves to its simulator host.
	Capacity int `yaml:"capacity"`
	// Latency is added to every reply. Default 0.
	Latency time.Duration `yaml:"latency"`
}

// DefaultConfig returns the embedded default configuration
// (configs/default.yaml) with every default applied.
func DefaultConfig() (*Config, error) {
	return ParseConfig(configs.Default, "embedded default")
}

// LoadConfig reads, strictly decodes, defaults and validates a config file
// (see ParseConfig).
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return ParseConfig(b, path)
}

// ParseConfig strictly decodes YAML, applies defaults and validates. name
// labels errors. Every problem is reported in one pass, each with its line
// in the file when the file sets the value (see strictyaml): first every
// decoding problem (unknown field, wrong type, duplicate key), then every
// validation problem of the values that did decode, across all sections
// (strictyaml.DecodePartial). A value that did not decode is validated at
// its default, and problems at or around its field are left out
// (strictyaml.Errors.Except): they would only mislead. Only a document
// that is not YAML at all, or whose problems cannot be cut out, reports its
// decoding problems alone. strictyaml.List takes the error apart, one
// problem each.
func ParseConfig(b []byte, name string) (*Config, error) {
	var c Config
	lines, rest, err := strictyaml.DecodePartial(b, name, &c)
	if err != nil && !rest {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	var all strictyaml.Errors
	if err != nil && !errors.As(err, &all) {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	c.applyDefaults()
	if verr := c.Validate(); verr != nil {
		var es strictyaml.Errors
		if !errors.As(verr, &es) {
			return nil, fmt.Errorf("%w: %w", ErrConfig, verr)
		}
		es.Locate(name, lines)
		all = append(all, es.Except(all)...)
	}
	if err := all.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return &c, nil
}

// Defaults of the daemon's own fields. The defaults of the fields that
// configure a lower package (keys, keys.etcd, pool, breaker) are that
// package's own, read from it (applyDefaults); simulators[].capacity stays
// 0 unless set, which the simulator host reads as the simulator's default
// (the daemon does not link the simulator).
const DefaultAttemptTimeout = 250 * time.Millisecond

// applyDefaults fills every zero field with its documented default.
func (c *Config) applyDefaults() {
	if c.Instance == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "switchboard"
		}
		c.Instance = h
	}
	if c.Socket == "" {
		c.Socket = DefaultSocket
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "auto"
	}
	c.Server.applyDefaults()
	c.Keys.applyDefaults()
	defaults.Or(&c.Cache.SizeMB, 64)
	defaults.Or(&c.Cache.TokenTTL, 24*time.Hour)
	c.Pool.inherit(poolDefaults())
	c.Breaker.inherit(breakerDefaults())
	for i := range c.Tiers {
		t := &c.Tiers[i]
		defaults.Or(&t.AttemptTimeout, DefaultAttemptTimeout)
		t.Pool.inherit(c.Pool)
		t.Breaker.inherit(c.Breaker)
	}
}

// applyDefaults fills the server section from the front-end server's
// defaults (frontend.DefaultConfig); the two lifecycle bounds are the
// daemon's own.
func (s *ServerConfig) applyDefaults() {
	fd := frontend.DefaultConfig()
	defaults.Or(&s.Transport, fd.Transport)
	defaults.Or(&s.MaxFrame, fd.MaxFrame)
	defaults.Or(&s.MaxConns, fd.MaxConns)
	defaults.Or(&s.MaxInFlight, fd.MaxInFlight)
	defaults.Or(&s.MaxConnInFlight, fd.MaxConnInFlight)
	defaults.Or(&s.MaxConnUnanswered, fd.MaxConnUnanswered)
	defaults.Or(&s.MaxConnQueuedBytes, fd.MaxConnQueuedBytes)
	defaults.Or(&s.IdleTimeout, fd.IdleTimeout)
	defaults.Or(&s.RequestTimeout, fd.RequestTimeout)
	defaults.Or(&s.ReadTimeout, fd.ReadTimeout)
	defaults.Or(&s.WriteTimeout, fd.WriteTimeout)
	defaults.Or(&s.ReadyTimeout, 5*time.Second)
	defaults.Or(&s.ShutdownTimeout, 10*time.Second)
}

// applyDefaults fills keys and keys.etcd from keygen's and etcdstore's
// defaults.
func (k *KeysConfig) applyDefaults() {
	kd := keygen.DefaultConfig()
	defaults.Or(&k.Digits, kd.Digits)
	if k.BlockSize == 0 {
		k.BlockSize = kd.BlockSize
	}
	defaults.Or(&k.Node.Count, kd.Node.Count)
	if k.Store == "" {
		k.Store = KeyStoreFile
	}
	e := &k.Etcd
	if e.Prefix == "" {
		e.Prefix = etcdstore.DefaultPrefix
	}
	defaults.Or(&e.DialTimeout, etcdstore.DefaultDialTimeout)
	defaults.Or(&e.RequestTimeout, etcdstore.DefaultRequestTimeout)
	if e.MaxBlock == 0 {
		e.MaxBlock = max(etcdstore.DefaultMaxBlock, k.BlockSize)
	}
	defaults.Or(&e.BlockPeriod, etcdstore.DefaultPeriod)
}

// poolDefaults returns package pool's defaults of the fields pool sets.
func poolDefaults() PoolConfig {
	d := pool.DefaultConfig()
	return PoolConfig{
		MinConns: d.MinConns, MaxInFlight: d.MaxInFlight, DialTimeout: d.DialTimeout,
		HeartbeatInterval: d.HeartbeatInterval, HeartbeatTimeout: d.HeartbeatTimeout,
		BackoffBase: d.BackoffBase, BackoffMax: d.BackoffMax, MaxAge: d.MaxAge,
	}
}

// breakerDefaults returns package breaker's defaults.
func breakerDefaults() BreakerConfig {
	d := breaker.DefaultSettings()
	return BreakerConfig{Failures: d.Failures, OpenFor: d.OpenFor, Probes: d.Probes, Window: d.Window}
}

func (p *PoolConfig) inherit(d PoolConfig) {
	defaults.Or(&p.MinConns, d.MinConns)
	defaults.Or(&p.MaxInFlight, d.MaxInFlight)
	defaults.Or(&p.DialTimeout, d.DialTimeout)
	defaults.Or(&p.HeartbeatInterval, d.HeartbeatInterval)
	defaults.Or(&p.HeartbeatTimeout, d.HeartbeatTimeout)
	defaults.Or(&p.BackoffBase, d.BackoffBase)
	defaults.Or(&p.BackoffMax, d.BackoffMax)
	defaults.Or(&p.MaxAge, d.MaxAge)
}

func (b *BreakerConfig) inherit(d BreakerConfig) {
	if b.Failures == 0 {
		b.Failures = d.Failures
	}
	defaults.Or(&b.OpenFor, d.OpenFor)
	if b.Probes == 0 {
		b.Probes = d.Probes
	}
	defaults.Or(&b.Window, d.Window)
}

// settings converts to the breaker package's plain value.
func (b BreakerConfig) settings() breaker.Settings {
	return breaker.Settings{Failures: b.Failures, OpenFor: b.OpenFor, Probes: b.Probes, Window: b.Window}
}

// problems collects the validation problems of a config (Validate).
type problems struct{ errs strictyaml.Errors }

// badAt records a problem of field (as printed) whose value the file may
// set at paths (own path first, inherited ones after).
func (p *problems) badAt(field string, paths []string, format string, args ...any) {
	p.errs = append(p.errs, &strictyaml.FieldError{Field: field, Msg: fmt.Sprintf(format, args...), Paths: paths})
}

// bad records a problem of field, which the file sets at its own path.
func (p *problems) bad(field, format string, args ...any) { p.badAt(field, nil, format, args...) }

func (p *problems) positive(field string, v int) {
	if v <= 0 {
		p.bad(field, "%d must be positive", v)
	}
}

func (p *problems) positiveDur(field string, v time.Duration) {
	if v <= 0 {
		p.bad(field, "%v must be positive", v)
	}
}

// lower reports err, a lower package's Validate error about the settings
// at field, unless the daemon's own checks already found a problem there
// (since mark: len(p.errs) then), which says it better.
func (p *problems) lower(field string, mark int, err error, paths ...string) {
	if err == nil || p.found(mark, field) {
		return
	}
	p.badAt(field, paths, "%v", err)
}

// found reports whether a problem was recorded, since mark, at a field
// under one of prefixes. A lower package's settings are also built from
// fields outside its section (a tier's name and servers and the instance
// for pool; keys.block_size for etcdstore): a problem there is reported
// once, by the daemon's check, not again in the lower package's words.
func (p *problems) found(mark int, prefixes ...string) bool {
	for _, fe := range p.errs[mark:] {
		for _, pre := range prefixes {
			if strings.HasPrefix(fe.Field, pre) {
				return true
			}
		}
	}
	return false
}

// Validate checks a defaulted config and returns every problem found, as
// strictyaml.Errors: each names its field and what would be valid, and
// carries the paths where a file sets the value, so that ParseConfig can
// add the line. A config built in code (a reload source, a test) gets the
// same errors without lines. A tier's pool and breaker fields inherit from
// the top-level sections; their errors name the tier's field and, when the
// value came from the top level, point at its line there. The settings of a
// lower package (keys, keys.etcd, a tier's pool and breaker) are also
// checked by that package's own Validate, whose problems are reported under
// the section's path when the daemon's field checks found none there.
func (c *Config) Validate() error {
	var p problems
	c.validateTop(&p)
	c.Server.validate(&p)
	c.validateKeys(&p)
	mark := len(p.errs)
	c.validateKeyStore(p.bad)
	if c.Keys.Store == KeyStoreEtcd && !p.found(0, "keys.block_size") {
		p.lower("keys.etcd", mark, c.etcdStoreConfig().Validate())
	}
	if c.Cache.SizeMB < 32 || c.Cache.SizeMB > 64<<10 {
		p.bad("cache.size_mb", "%d not in 32..65536", c.Cache.SizeMB)
	}
	p.positiveDur("cache.token_ttl", c.Cache.TokenTTL)
	c.validateTiers(&p)
	c.validateSims(&p)
	return p.errs.Err()
}

// validateTop checks instance, log and metrics.
func (c *Config) validateTop(p *problems) {
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		p.bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "auto", "json", "console":
	default:
		p.bad("log.format", "%q is not one of auto, json, console", c.Log.Format)
	}
	if path, ok := strings.CutPrefix(c.Metrics.Addr, "unix:"); ok {
		if !filepath.IsAbs(path) {
			p.bad("metrics.addr", "%q: want unix:/absolute/path", c.Metrics.Addr)
		}
	} else if c.Metrics.Addr != "" {
		if err := loopbackAddr(c.Metrics.Addr); err != nil {
			p.bad("metrics.addr", "%v", err)
		}
	}
	if len(c.Instance) > wire.MaxShort {
		p.bad("instance", "%d bytes, at most %d", len(c.Instance), wire.MaxShort)
	}
}

// validate checks the server section.
func (s ServerConfig) validate(p *problems) {
	if s.Transport != "net" && s.Transport != "netpoll" {
		p.bad("server.transport", "%q is not one of net, netpoll", s.Transport)
	}
	if s.MaxFrame < wire.MinMaxFrame || s.MaxFrame > 16<<20 {
		p.bad("server.max_frame", "%d not in %d..%d", s.MaxFrame, wire.MinMaxFrame, 16<<20)
	}
	p.positive("server.max_conns", s.MaxConns)
	p.positive("server.max_in_flight", s.MaxInFlight)
	p.positive("server.max_conn_in_flight", s.MaxConnInFlight)
	p.positive("server.max_conn_unanswered", s.MaxConnUnanswered)
	if s.MaxConnQueuedBytes < s.MaxFrame {
		p.bad("server.max_conn_queued_bytes", "%d is below server.max_frame %d: one response must fit", s.MaxConnQueuedBytes, s.MaxFrame)
	}
	if s.MaxConnsPerUID < 0 {
		p.bad("server.max_conns_per_uid", "%d must not be negative (0: no bound)", s.MaxConnsPerUID)
	}
	for _, l := range []struct {
		field string
		ids   []uint32
	}{{"server.allow_uids", s.AllowUIDs}, {"server.allow_gids", s.AllowGIDs}} {
		for i, id := range l.ids {
			if id == math.MaxUint32 {
				p.bad(l.field, "%d is not an id (it is (uid_t)-1)", id)
			}
			if slices.Contains(l.ids[:i], id) {
				p.bad(l.field, "%d is listed twice", id)
			}
		}
	}
	if (len(s.AllowUIDs) > 0 || len(s.AllowGIDs) > 0) && runtime.GOOS != "linux" {
		p.bad("server.allow_uids", "needs the peer's credentials (SO_PEERCRED), which only Linux gives: leave server.allow_uids and server.allow_gids empty on %s", runtime.GOOS)
	}
	if s.IdleTimeout < time.Second {
		p.bad("server.idle_timeout", "%v: at least 1s", s.IdleTimeout)
	}
	p.positiveDur("server.request_timeout", s.RequestTimeout)
	p.positiveDur("server.read_timeout", s.ReadTimeout)
	p.positiveDur("server.write_timeout", s.WriteTimeout)
	p.positiveDur("server.ready_timeout", s.ReadyTimeout)
	p.positiveDur("server.shutdown_timeout", s.ShutdownTimeout)
}

// validateKeys checks keys' own fields, then the generator's configuration
// with keygen's rules (the whole key space's, such as a node count the
// digits cannot give each node a key of).
func (c *Config) validateKeys(p *problems) {
	mark := len(p.errs)
	k := c.Keys
	if k.Digits < keygen.MinDigits || k.Digits > keygen.MaxDigits {
		p.bad("keys.digits", "%d not in %d..%d", k.Digits, keygen.MinDigits, keygen.MaxDigits)
	}
	if k.BlockSize > keygen.MaxBlockSize {
		p.bad("keys.block_size", "%d: at most %d", k.BlockSize, keygen.MaxBlockSize)
	}
	if k.Secret != "" {
		if b, err := hex.DecodeString(k.Secret); err != nil || len(b) < keygen.MinSecretLen {
			p.bad("keys.secret", "must be at least %d hex digits (%d bytes)", 2*keygen.MinSecretLen, keygen.MinSecretLen)
		}
	}
	if n := k.Node; n.Count < 1 || n.ID < 0 || n.ID >= n.Count {
		p.bad("keys.node", "id %d, count %d: want 0 <= id < count", n.ID, n.Count)
	}
	p.lower("keys", mark, keygenConfig(c).Validate())
}

// etcdStoreConfig is the etcd store's configuration of keys.etcd, as far as
// Validate can know it.
func (c *Config) etcdStoreConfig() etcdstore.Config {
	e := c.Keys.Etcd
	return etcdstore.Config{Prefix: e.Prefix, RequestTimeout: e.RequestTimeout,
		MinBlock: c.Keys.BlockSize, MaxBlock: e.MaxBlock, Period: e.BlockPeriod}
}

// validateTiers checks every tier, its pool and breaker settings included.
func (c *Config) validateTiers(p *problems) {
	if len(c.Tiers) == 0 {
		p.bad("tiers", "at least one tier is required")
	}
	names := map[string]int{}
	for i, t := range c.Tiers {
		tierMark := len(p.errs)
		// key is the tier's path in the file; f adds its name for the
		// reader: tiers[1] (nextgen).pool.min_conns.
		key := "tiers[" + strconv.Itoa(i) + "]"
		f := key
		if route.ValidName(t.Name) {
			f += " (" + t.Name + ")"
		}
		own := func(sub, format string, args ...any) {
			p.badAt(f+"."+sub, []string{key + "." + sub}, format, args...)
		}
		// inherited is for pool.* and breaker.*, which the top level
		// sets for every tier under the same names.
		inherited := func(sub, format string, args ...any) {
			p.badAt(f+"."+sub, []string{key + "." + sub, sub}, format, args...)
		}
		if !route.ValidName(t.Name) {
			own("name", "%q: want 1-64 characters of a-z, 0-9 and -", t.Name)
		}
		if j, dup := names[t.Name]; dup {
			own("name", "%q appears twice (also tiers[%d]): tier names are unique", t.Name, j)
		} else {
			names[t.Name] = i
		}
		if len(t.Servers) == 0 {
			own("servers", "at least one server is required")
		}
		seen := map[string]bool{}
		for j, u := range t.Servers {
			sf := "servers[" + strconv.Itoa(j) + "]"
			if _, err := ParseServer(u); err != nil {
				own(sf, "%v", err)
			}
			if seen[u] {
				own(sf, "%q appears twice", u)
			}
			seen[u] = true
		}
		if t.AttemptTimeout <= 0 {
			own("attempt_timeout", "%v must be positive", t.AttemptTimeout)
		}
		mark := len(p.errs)
		t.Pool.validate(inherited)
		if !p.found(tierMark, f+".name", f+".servers") && !p.found(0, "instance") {
			p.lower(f+".pool", mark, c.tierPoolConfig(t).Validate(), key+".pool", "pool")
		}
		t.Breaker.validate(inherited)
	}
}

// tierPoolConfig is the pool configuration of tier t as Validate can know
// it: a sim:// server stands for its simulator, whose address is known once
// it runs.
func (c *Config) tierPoolConfig(t TierConfig) pool.Config {
	var addrs []string
	for _, u := range t.Servers {
		if s, err := ParseServer(u); err == nil {
			if s.Sim != "" {
				s.Addr = "sim-" + s.Sim + ":0"
			}
			addrs = append(addrs, s.Addr)
		}
	}
	if len(addrs) == 0 {
		addrs = []string{"unset:0"} // tiers[].servers reports it
	}
	return poolConfig(t.Name, c.Instance, addrs, t.Pool)
}

// validateSims checks the simulators section.
func (c *Config) validateSims(p *problems) {
	sims := map[string]bool{}
	for i, s := range c.Simulators {
		f := "simulators[" + strconv.Itoa(i) + "]"
		if !route.ValidName(s.Name) {
			p.bad(f+".name", "%q: want 1-64 characters of a-z, 0-9 and -", s.Name)
		}
		if sims[s.Name] {
			p.bad(f+".name", "%q appears twice", s.Name)
		}
		sims[s.Name] = true
		if s.Capacity < 0 {
			p.bad(f+".capacity", "%d must not be negative (0: the simulator's default)", s.Capacity)
		}
		if s.Latency < 0 {
			p.bad(f+".latency", "%v must not be negative", s.Latency)
		}
	}
}

// validate reports the problems of a tier's pool settings to bad, naming
// each field pool.NAME.
func (p PoolConfig) validate(bad func(field, format string, args ...any)) {
	if p.MinConns < 1 || p.MinConns > pool.MaxMinConns {
		bad("pool.min_conns", "%d not in 1..%d", p.MinConns, pool.MaxMinConns)
	}
	if p.MaxInFlight < 1 {
		bad("pool.max_in_flight", "%d must be positive", p.MaxInFlight)
	}
	for _, d := range []struct {
		n string
		v time.Duration
	}{{"dial_timeout", p.DialTimeout}, {"heartbeat_interval", p.HeartbeatInterval},
		{"heartbeat_timeout", p.HeartbeatTimeout}, {"backoff_base", p.BackoffBase}, {"backoff_max", p.BackoffMax}} {
		if d.v <= 0 {
			bad("pool."+d.n, "%v must be positive", d.v)
		}
	}
	if p.BackoffMax < p.BackoffBase {
		bad("pool.backoff_max", "%v is below backoff_base %v", p.BackoffMax, p.BackoffBase)
	}
	if p.MaxAge < 0 {
		bad("pool.max_age", "%v must not be negative", p.MaxAge)
	}
}

// validate reports the problems of a tier's breaker settings to bad,
// naming each field breaker.NAME. The rules are breaker.Settings.Validate's
// own: each field is checked alone (a zero field is always valid there) to
// know which one is wrong, then all together for rules across fields.
func (b BreakerConfig) validate(bad func(field, format string, args ...any)) {
	found := false
	for _, f := range []struct {
		name string
		s    breaker.Settings
	}{
		{"failures", breaker.Settings{Failures: b.Failures}}, {"open_for", breaker.Settings{OpenFor: b.OpenFor}},
		{"probes", breaker.Settings{Probes: b.Probes}}, {"window", breaker.Settings{Window: b.Window}},
	} {
		if err := f.s.Validate(); err != nil {
			bad("breaker."+f.name, "%s", strings.TrimPrefix(err.Error(), f.name+" "))
			found = true
		}
	}
	if err := b.settings().Validate(); err != nil && !found {
		bad("breaker", "%v", err)
	}
}

// loopbackAddr checks that addr is host:port with a loopback host.
func loopbackAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want host:port, e.g. 127.0.0.1:9464", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%q: port %q not in 0..65535", addr, port)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q: host must be a loopback address (127.0.0.1, ::1 or localhost)", addr)
	}
	return nil
}

// SimulatedTiers returns the names of the tiers with a sim:// server: tiers
// served by an in-process simulator, which reserve no real bridge. The
// daemon warns at start when there is one (the embedded default has three).
func (c *Config) SimulatedTiers() []string {
	var out []string
	for _, t := range c.Tiers {
		for _, u := range t.Servers {
			if s, err := ParseServer(u); err == nil && s.Sim != "" {
				out = append(out, t.Name)
				break
			}
		}
	}
	return out
}

// Server is a parsed tier server URL.
type Server struct {
	// Sim is the NAME of sim://NAME, empty for tcp://.
	Sim string
	// Addr is host:port for tcp://.
	Addr string
}

// ParseServer parses tcp://host:port or sim://NAME.
func ParseServer(u string) (Server, error) {
	switch {
	case strings.HasPrefix(u, "sim://"):
		n := strings.TrimPrefix(u, "sim://")
		if !route.ValidName(n) {
			return Server{}, fmt.Errorf("%q: sim://NAME wants a name of a-z, 0-9 and -", u)
		}
		return Server{Sim: n}, nil
	case strings.HasPrefix(u, "tcp://"):
		a := strings.TrimPrefix(u, "tcp://")
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			return Server{}, fmt.Errorf("%q: want tcp://host:port", u)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return Server{}, fmt.Errorf("%q: port %q not in 1..65535", u, port)
		}
		return Server{Addr: a}, nil
	}
	return Server{}, fmt.Errorf("%q: want tcp://host:port or sim://NAME", u)
}

// Values of keys.store.
const (
	KeyStoreFile = "file"
	KeyStoreEtcd = "etcd"
)

// validateKeyStore checks keys.store and keys.etcd (files named there are
// read when the store is opened, not here).
func (c *Config) validateKeyStore(bad func(field, format string, args ...any)) {
	k, e := c.Keys, c.Keys.Etcd
	switch k.Store {
	case KeyStoreFile:
		if len(e.Endpoints) > 0 {
			bad("keys.etcd.endpoints", "set, but keys.store is %q: set keys.store: etcd to use them, or remove them", k.Store)
		}
		return
	case KeyStoreEtcd:
	default:
		bad("keys.store", "%q is not one of file, etcd", k.Store)
		return
	}
	if n := k.Node; n.Count != 1 || n.ID != 0 {
		bad("keys.node", "id %d, count %d: the etcd store has no node partitions (every daemon leases from the whole key space); remove keys.node", n.ID, n.Count)
	}
	if len(e.Endpoints) == 0 {
		bad("keys.etcd.endpoints", "required with keys.store etcd: the etcd members' client URLs")
	}
	tls := e.CAFile != "" || e.CertFile != "" || e.KeyFile != ""
	for _, ep := range e.Endpoints {
		if err := etcdstore.CheckEndpoint(ep); err != nil { // never repeats a password the URL holds
			bad("keys.etcd.endpoints", "%q: %v", etcdstore.RedactEndpoint(ep), err)
			continue
		}
		if u, _ := url.Parse(ep); u.Scheme == "http" && tls {
			bad("keys.etcd.endpoints", "%q is plain http but TLS files are set: use https://", ep)
		}
	}
	if !strings.HasPrefix(e.Prefix, "/") || !strings.HasSuffix(e.Prefix, "/") || strings.ContainsAny(e.Prefix, " \t\n") {
		bad("keys.etcd.prefix", "%q must start and end with / and hold no spaces", e.Prefix)
	}
	if e.DialTimeout <= 0 {
		bad("keys.etcd.dial_timeout", "%v must be positive", e.DialTimeout)
	}
	if e.RequestTimeout <= 0 || e.RequestTimeout > time.Minute {
		bad("keys.etcd.request_timeout", "%v: want more than 0 and at most 1m", e.RequestTimeout)
	}
	if e.MaxBlock < k.BlockSize || e.MaxBlock > 1<<24 {
		bad("keys.etcd.max_block", "%d: want keys.block_size (%d) to %d", e.MaxBlock, k.BlockSize, 1<<24)
	}
	if e.BlockPeriod < time.Second {
		bad("keys.etcd.block_period", "%v: at least 1s", e.BlockPeriod)
	}
	if (e.CertFile == "") != (e.KeyFile == "") {
		bad("keys.etcd.cert_file", "cert_file and key_file go together: set both or neither")
	}
	for _, f := range []struct{ field, path string }{{"keys.etcd.ca_file", e.CAFile}, {"keys.etcd.cert_file", e.CertFile}, {"keys.etcd.key_file", e.KeyFile}, {"keys.etcd.password_file", e.PasswordFile}} {
		if f.path != "" && !filepath.IsAbs(f.path) {
			bad(f.field, "%q: want an absolute path", f.path)
		}
	}
	if (e.Username == "") != (e.PasswordFile == "") {
		bad("keys.etcd.username", "username and password_file go together: set both or neither (the password itself never goes in this file)")
	}
}
