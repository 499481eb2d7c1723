package daemon

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"switchboard/internal/strictyaml"
	"switchboard/keygen"
	"switchboard/keygen/etcdstore"
)

// InitKeys creates the key space cfg describes in its store (keys.store:
// the keygen file store in cfg.DataDir, or etcd under keys.etcd.prefix),
// with its high-water mark skip counters past the start of this node's
// partition, and returns the partition created. It is the only
// way a daemon's key space comes into being: New and Run attach to an
// existing one and fail with an error wrapping keygen.ErrStateMissing where
// there is none. cmd/switchboard calls it for -init-keys (and for the
// embedded developer default only); test harnesses call it explicitly before
// starting a daemon on a new data directory. It refuses an existing key space
// (keygen.ErrKeySpaceExists). The daemon must not be running on cfg.DataDir
// (keygen.ErrLocked).
func InitKeys(cfg *Config, skip uint64, opts ...Option) (keygen.Partition, error) {
	kc, log, err := keysFor(cfg, opts)
	if err != nil {
		return keygen.Partition{}, err
	}
	ks, err := openKeyStore(cfg, log, false)
	if err != nil {
		return keygen.Partition{}, err
	}
	defer ks.Close()
	return keygen.Init(kc, ks.store(), skip, keygen.WithLogger(log))
}

// SkipKeys durably moves the high-water mark of the existing key space in
// cfg.DataDir forward by n counters, so that no key issued before (for
// instance since the backup the directory was restored from) is issued
// again, and returns the partition with the new mark. The daemon must not be
// running on cfg.DataDir. With the etcd store the mark is the fleet's: the
// daemons may keep running (their next leases start above it).
func SkipKeys(cfg *Config, n uint64, opts ...Option) (keygen.Partition, error) {
	kc, log, err := keysFor(cfg, opts)
	if err != nil {
		return keygen.Partition{}, err
	}
	ks, err := openKeyStore(cfg, log, false)
	if err != nil {
		return keygen.Partition{}, err
	}
	defer ks.Close()
	return keygen.Skip(kc, ks.store(), n, keygen.WithLogger(log))
}

// keysFor validates cfg and returns its keygen configuration and the
// logger opts set.
func keysFor(cfg *Config, opts []Option) (keygen.Config, *zap.Logger, error) {
	if cfg == nil {
		return keygen.Config{}, nil, fmt.Errorf("%w: nil config", ErrConfig)
	}
	if err := cfg.Validate(); err != nil {
		return keygen.Config{}, nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	d := &Daemon{log: zap.NewNop()}
	for _, o := range opts {
		o(d)
	}
	return keygenConfig(cfg), d.log.Named("keygen"), nil
}

// keygenConfig maps the keys section and data directory of a validated cfg
// onto keygen's configuration.
func keygenConfig(cfg *Config) keygen.Config {
	kc := keygen.DefaultConfig()
	kc.Digits = cfg.Keys.Digits
	kc.BlockSize = cfg.Keys.BlockSize
	kc.Dir = cfg.DataDir
	kc.Node = keygen.NodeConfig{ID: cfg.Keys.Node.ID, Count: cfg.Keys.Node.Count}
	if cfg.Keys.Secret != "" {
		kc.Secret, _ = hex.DecodeString(cfg.Keys.Secret) // validated
	}
	return kc
}

// keyStore is the open lease store keys.store names: the file store, or
// the etcd store with its client and the data directory's lock (with etcd
// the lock still keeps a second daemon off the data directory, whose
// orphan journal and in-flight table are one daemon's).
type keyStore struct {
	file *keygen.FileStore
	etcd *etcdstore.Store
	cli  *clientv3.Client
	lock io.Closer
	reg  *etcdstore.Registration // the daemon's fleet entry (etcd, daemon only)
	// listed is reg, set once and never cleared (Close clears reg): the
	// status reads its Err.
	listed *etcdstore.Registration
	cfg    EtcdConfig // as opened (etcd)
}

// EtcdMarkFile is the file in the data directory where a daemon on the
// etcd store records the highest mark it leased or saw (its watch sees
// every daemon's lease), so that a start on an etcd restored from an older
// backup is refused (keygen.ErrStateStale) instead of reissuing keys.
const EtcdMarkFile = "keygen.etcdmark"

// MigrateKeys carries the single-node file-store key space in fromDir into
// the etcd store cfg configures (keys.store: etcd): the binding and at least
// its high-water mark. It refuses an etcd prefix holding another key space,
// and a fromDir in use by a daemon; on success fromDir's lease state is
// renamed (keygen.MigratedSuffix) so no daemon can issue keys from it again.
// The secret is keys.secret, else fromDir's keygen.secret (copy that file to
// every daemon of the fleet).
func MigrateKeys(cfg *Config, fromDir string, opts ...Option) (keygen.Partition, error) {
	kc, log, err := keysFor(cfg, opts)
	if err != nil {
		return keygen.Partition{}, err
	}
	if cfg.Keys.Store != KeyStoreEtcd {
		return keygen.Partition{}, fmt.Errorf("%w: migrating keys needs a config with keys.store: etcd (the target), not %q", keygen.ErrInvalidConfig, cfg.Keys.Store)
	}
	ks, err := openKeyStore(cfg, log, false)
	if err != nil {
		return keygen.Partition{}, err
	}
	defer ks.Close()
	return keygen.Migrate(kc, fromDir, ks.store(), keygen.WithLogger(log))
}

// openKeyStore opens the store of cfg (validated). With etcd it reads the
// TLS and password files but does not wait for the cluster; record (the
// daemon's run, not the operator's commands) keeps EtcdMarkFile.
func openKeyStore(cfg *Config, log *zap.Logger, record bool) (*keyStore, error) {
	if cfg.Keys.Store != KeyStoreEtcd {
		fs, err := keygen.NewFileStore(cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("key lease store: %w", err)
		}
		return &keyStore{file: fs}, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	lock, err := keygen.OSFS{}.Lock(filepath.Join(cfg.DataDir, keygen.LockFile))
	if err != nil {
		if errors.Is(err, keygen.ErrLocked) {
			return nil, fmt.Errorf("%w: %s (another switchboard runs on the same data directory)", keygen.ErrLocked, cfg.DataDir)
		}
		return nil, fmt.Errorf("data directory lock: %w", err)
	}
	e := cfg.Keys.Etcd
	recordFile := ""
	if record {
		recordFile = filepath.Join(cfg.DataDir, EtcdMarkFile)
	}
	cli, err := etcdstore.Dial(etcdstore.ClientConfig{
		Endpoints: e.Endpoints, DialTimeout: e.DialTimeout,
		CAFile: e.CAFile, CertFile: e.CertFile, KeyFile: e.KeyFile,
		Username: e.Username, PasswordFile: e.PasswordFile,
	}, log.Named("etcd").WithOptions(zap.IncreaseLevel(zap.WarnLevel)))
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("key lease store: %w", err)
	}
	st, err := etcdstore.New(cli, etcdstore.Config{
		Prefix: e.Prefix, RequestTimeout: e.RequestTimeout,
		MinBlock: cfg.Keys.BlockSize, MaxBlock: e.MaxBlock, Period: e.BlockPeriod, RecordFile: recordFile,
		Retire: !record, // the operator's commands only retire counters: they may move a mark put back below the fence
		Log:    log.Named("etcd"),
	}, nil)
	if err != nil {
		cli.Close()
		lock.Close()
		return nil, fmt.Errorf("key lease store: %w", err)
	}
	return &keyStore{etcd: st, cli: cli, lock: lock, cfg: e}, nil
}

// store returns the keygen store.
func (k *keyStore) store() keygen.LeaseStore {
	if k.etcd != nil {
		return k.etcd
	}
	return k.file
}

// Close closes the store, the etcd client and the lock. Idempotent.
func (k *keyStore) Close() error {
	if k.file != nil {
		return k.file.Close()
	}
	if k.reg != nil {
		k.reg.Close()
		k.reg = nil
	}
	err := k.etcd.Close()
	if k.cli != nil {
		k.cli.Close()
		k.cli = nil
	}
	if k.lock != nil {
		k.lock.Close()
		k.lock = nil
	}
	return err
}

// openKeys opens the configured store and a generator on it. With etcd the
// generator starts even while etcd does not answer (keys are unavailable
// until it does); a store that answers with another key space, or none, is
// refused at once.
func openKeys(cfg *Config, log *zap.Logger) (*keygen.Generator, *keyStore, error) {
	ks, err := openKeyStore(cfg, log, true)
	if err != nil {
		return nil, nil, err
	}
	opts := []keygen.Option{keygen.WithLogger(log)}
	if ks.etcd != nil {
		opts = append(opts, keygen.WithLateBind())
	}
	g, err := keygen.New(keygenConfig(cfg), ks.store(), opts...)
	if err != nil {
		ks.Close()
		return nil, nil, fmt.Errorf("session keys: %w", err)
	}
	if ks.etcd != nil {
		host, _ := os.Hostname()
		m := etcdstore.Member{Instance: cfg.Instance, Version: buildVersion(), Host: host, Socket: cfg.Socket, Started: time.Now()}
		// Another running daemon with this instance name: refuse to
		// start (a configuration error). etcd not answering (within
		// at most 2 s, not to delay a start while it is down) is no
		// refusal: the registration still never takes a live entry.
		ctx, cancel := context.WithTimeout(context.Background(), min(cfg.Keys.Etcd.RequestTimeout, 2*time.Second))
		err := etcdstore.CheckInstance(ctx, ks.cli, cfg.Keys.Etcd.Prefix, m)
		cancel()
		if errors.Is(err, etcdstore.ErrInstanceTaken) {
			g.Close()
			ks.Close()
			return nil, nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		ks.reg = etcdstore.Register(ks.cli, cfg.Keys.Etcd.Prefix, m, 0, cfg.Keys.Etcd.RequestTimeout, ks.etcd, log.Named("fleet"))
		ks.listed = ks.reg
	}
	return g, ks, nil
}

// buildVersion is the main module's version as built (or "devel").
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// ErrNoFleet is Fleet's error on a daemon that does not use the etcd store.
var ErrNoFleet = errors.New("no fleet: keys.store is not etcd")

// Fleet lists the daemons registered in the etcd key space this daemon
// uses (each keeps its entry alive with an etcd lease; a dead one drops out
// within 10 s).
func (d *Daemon) Fleet(ctx context.Context) ([]etcdstore.Member, error) {
	if !d.up.Load() {
		return nil, ErrNotRunning
	}
	if d.store == nil || d.store.etcd == nil {
		return nil, ErrNoFleet
	}
	ctx, cancel := context.WithTimeout(ctx, d.store.cfg.RequestTimeout)
	defer cancel()
	return etcdstore.Fleet(ctx, d.store.cli, d.store.cfg.Prefix)
}

// KeysStatus is the session keys' part of Status: which store, whether keys
// can be issued now and, when not, why.
type KeysStatus struct {
	Store     string   `json:"store"`               // file or etcd
	DataDir   string   `json:"data_dir,omitempty"`  // file store
	Endpoints []string `json:"endpoints,omitempty"` // etcd store
	Prefix    string   `json:"prefix,omitempty"`    // etcd store
	// Ready is true when a key can be issued now: keys are buffered, or
	// the store answers.
	Ready bool `json:"ready"`
	// Bound is false until the store was reached and its binding checked
	// (a daemon started while etcd was down).
	Bound    bool   `json:"bound"`
	Failing  bool   `json:"failing"`          // the last lease failed
	Reason   string `json:"reason,omitempty"` // why, while Failing
	Buffered uint64 `json:"buffered"`         // keys leased, not yet issued
	// Block is the size of the next block leased from etcd (it grows with
	// load up to keys.etcd.max_block).
	Block uint64 `json:"block,omitempty"`
	// The last block leased from the store: when, and its counters
	// [LastLeaseStart, LastLeaseEnd).
	LastLease      time.Time `json:"last_lease,omitzero"`
	LastLeaseStart uint64    `json:"last_lease_start,omitempty"`
	LastLeaseEnd   uint64    `json:"last_lease_end,omitempty"`
	// LostRaces counts etcd lease transactions another daemon won (retried);
	// Unknown those whose outcome was lost (their counters never used).
	LostRaces uint64 `json:"lost_races,omitempty"`
	Unknown   uint64 `json:"unknown_outcomes,omitempty"`
	// Seen is the highest mark this daemon leased or saw in etcd (its own
	// leases, its reads, every other daemon's through the watch): a mark
	// found below it was put back by a restore, and is refused.
	Seen uint64 `json:"seen_mark,omitempty"`
	// Rollbacks counts the restores of etcd this daemon found after the
	// fact (its own last lease undone); see docs/operations.md "Backups".
	Rollbacks uint64 `json:"rollbacks_found,omitempty"`
	// Fleet is this daemon's fleet entry (etcd store): "registered", or
	// why it is not listed (etcd down, or another running daemon holds
	// this instance name).
	Fleet string `json:"fleet,omitempty"`
}

// keysStatus fills KeysStatus from the generator's stats and the store.
func (d *Daemon) keysStatus(gs keygen.Stats) KeysStatus {
	ks := KeysStatus{Store: KeyStoreFile, Bound: gs.Bound, Failing: gs.Failing, Buffered: gs.Buffered,
		Ready: gs.Buffered > 0 || (gs.Bound && !gs.Failing && !gs.Exhausted)}
	if gs.Failing && gs.LastLeaseError != nil {
		ks.Reason = gs.LastLeaseError.Error()
	}
	if d.store == nil || d.store.etcd == nil {
		ks.DataDir = d.cfg.Load().DataDir
		return ks
	}
	es := d.store.etcd.Status()
	ks.Store, ks.Endpoints, ks.Prefix = KeyStoreEtcd, d.store.cfg.Endpoints, es.Prefix
	ks.Block, ks.LastLease, ks.LastLeaseStart, ks.LastLeaseEnd = es.Step, es.LastLeaseAt, es.LastStart, es.LastEnd
	ks.LostRaces, ks.Unknown, ks.Seen, ks.Rollbacks = es.LostRaces, es.Unknown, es.Seen, es.Rollbacks
	ks.Buffered += es.SegmentLeft
	if r := d.store.listed; r != nil {
		ks.Fleet = "registered"
		if err := r.Err(); err != nil {
			ks.Fleet = "not listed: " + err.Error()
		}
	}
	return ks
}

func describeKeys(ch chan<- *prometheus.Desc) {
	ch <- descKeysReady
	ch <- descLeaseErrors
	ch <- descStoreTxns
	ch <- descRollbacks
}

// collectKeys sends the key store's metrics; gs is the generator's stats.
func (d *Daemon) collectKeys(ch chan<- prometheus.Metric, gs keygen.Stats) {
	ks := d.keysStatus(gs)
	ch <- prometheus.MustNewConstMetric(descKeysReady, prometheus.GaugeValue, b2f(ks.Ready))
	ch <- prometheus.MustNewConstMetric(descLeaseErrors, prometheus.CounterValue, float64(gs.LeaseErrors))
	if d.store == nil || d.store.etcd == nil {
		return
	}
	es := d.store.etcd.Status()
	committed := es.Txns - es.LostRaces - es.Unknown
	ch <- prometheus.MustNewConstMetric(descStoreTxns, prometheus.CounterValue, float64(committed), "committed")
	ch <- prometheus.MustNewConstMetric(descStoreTxns, prometheus.CounterValue, float64(es.LostRaces), "lost_race")
	ch <- prometheus.MustNewConstMetric(descStoreTxns, prometheus.CounterValue, float64(es.Unknown), "unknown")
	ch <- prometheus.MustNewConstMetric(descRollbacks, prometheus.CounterValue, float64(es.Rollbacks))
}

// CheckFiles reports, as strictyaml.Errors wrapped in ErrConfig, every file
// the key store's configuration names that the daemon could not use at
// start: missing, not a regular file, unreadable, or (keys.etcd.
// password_file) readable by others. -check-config runs it after the file
// validates, so a unit's pre-start check fails where the start would
// (exit 2), instead of passing a configuration the daemon then refuses.
func (c *Config) CheckFiles() error {
	var errs strictyaml.Errors
	if c.Keys.Store != KeyStoreEtcd {
		return nil
	}
	e := c.Keys.Etcd
	for _, f := range []struct{ field, path string }{
		{"keys.etcd.ca_file", e.CAFile}, {"keys.etcd.cert_file", e.CertFile},
		{"keys.etcd.key_file", e.KeyFile}, {"keys.etcd.password_file", e.PasswordFile},
	} {
		if f.path == "" {
			continue
		}
		bad := func(format string, args ...any) {
			errs = append(errs, &strictyaml.FieldError{Field: f.field, Msg: fmt.Sprintf(format, args...)})
		}
		fi, err := os.Stat(f.path)
		switch {
		case err != nil:
			bad("%s: %v", f.path, errors.Unwrap(err))
			continue
		case !fi.Mode().IsRegular():
			bad("%s: not a regular file", f.path)
			continue
		case f.field == "keys.etcd.password_file" && fi.Mode().Perm()&0o077 != 0:
			bad("%s has mode %#o; it must be 0600 (owner only): chmod 600 %s", f.path, fi.Mode().Perm(), f.path)
			continue
		}
		if fh, err := os.Open(f.path); err != nil {
			bad("%s: %v", f.path, errors.Unwrap(err))
		} else {
			fh.Close()
		}
	}
	if err := errs.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}
