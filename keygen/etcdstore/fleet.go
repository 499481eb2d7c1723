package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Member is one daemon's entry in the fleet: the value of
// <prefix>fleet/<instance>, attached to an etcd lease that the daemon keeps
// alive, so the entry disappears within the lease's TTL of the daemon's
// death while etcd is up and led. etcd renews every lease's TTL when it
// elects a leader: a daemon that died before an etcd restart (or a leader
// change) stays listed up to a TTL after it.
type Member struct {
	Instance string    `json:"instance"`
	Version  string    `json:"version"`
	Host     string    `json:"host"`   // the host name
	Socket   string    `json:"socket"` // the front-end socket's path on Host
	Started  time.Time `json:"started"`
	// LastLease is when the daemon last leased a block from etcd, and
	// LastLeaseEnd the mark it moved etcd to then (zero before the first).
	LastLease    time.Time `json:"last_lease,omitzero"`
	LastLeaseEnd uint64    `json:"last_lease_end,omitempty"`
}

// DefaultMemberTTL is the etcd lease TTL of a fleet entry.
const DefaultMemberTTL = 10 * time.Second

// ErrInstanceTaken means another live daemon holds the fleet entry of this
// daemon's instance name: two daemons with one name would share one entry,
// and the first to stop would remove the other from the fleet. A daemon's
// earlier run on the same host and socket (killed, its entry not yet
// expired) is not another daemon: its entry is taken over.
var ErrInstanceTaken = errors.New("instance name taken by another running daemon")

// sameDaemon reports whether entry other is m's own (an earlier run of the
// same daemon): the same host and socket path, which one running daemon
// at a time can hold (a second one fails to listen on the socket).
func sameDaemon(m, other Member) bool {
	return other.Host == m.Host && other.Socket == m.Socket
}

// takenError describes the holder of m's instance.
func takenError(m, holder Member) error {
	return fmt.Errorf("%w: instance %q is registered by the daemon on host %q (socket %s, started %s): give every daemon of the fleet its own instance (the config's `instance`)",
		ErrInstanceTaken, m.Instance, holder.Host, holder.Socket, holder.Started.Format(time.RFC3339))
}

// CheckInstance returns an error wrapping ErrInstanceTaken when another
// live daemon (another host or socket) is registered under m.Instance in
// prefix, nil when nobody or m's own earlier run is, and etcd's error when
// it does not answer (the caller decides: a daemon starts anyway, and its
// Registration still never overwrites another daemon's entry).
func CheckInstance(ctx context.Context, cli *clientv3.Client, prefix string, m Member) error {
	resp, err := cli.Get(ctx, prefix+FleetDir+m.Instance)
	if err != nil {
		return fmt.Errorf("etcd fleet: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	var holder Member
	_ = json.Unmarshal(resp.Kvs[0].Value, &holder) // unreadable: not ours
	if sameDaemon(m, holder) {
		return nil
	}
	return takenError(m, holder)
}

// Registration keeps a daemon's fleet entry in etcd. Its goroutine (owned,
// stopped by Close) grants a lease, writes the entry, keeps the lease alive,
// rewrites the entry when the store's last lease changed, and starts over
// when etcd lost the lease (etcd was down longer than the TTL).
type Registration struct {
	cli     *clientv3.Client
	key     string
	m       Member
	ttl     time.Duration
	timeout time.Duration
	status  func() Status
	leased  <-chan struct{} // the store's: a lease committed (nil: no store)
	log     *zap.Logger

	err atomic.Pointer[error] // why the entry is not held now (nil: held)

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Register starts keeping m under prefix+"fleet/"+m.Instance with a lease
// of ttl (0: DefaultMemberTTL); store (may be nil) supplies the last lease.
// It returns at once: etcd being down only delays the entry. It never
// overwrites the live entry of another daemon (ErrInstanceTaken, see Err):
// it retries every ttl, and takes the entry once that daemon is gone.
func Register(cli *clientv3.Client, prefix string, m Member, ttl, requestTimeout time.Duration, store *Store, log *zap.Logger) *Registration {
	if ttl <= 0 {
		ttl = DefaultMemberTTL
	}
	if requestTimeout <= 0 {
		requestTimeout = DefaultRequestTimeout
	}
	if log == nil {
		log = zap.NewNop()
	}
	r := &Registration{cli: cli, key: prefix + FleetDir + m.Instance, m: m, ttl: ttl, timeout: requestTimeout, log: log, done: make(chan struct{})}
	if store != nil {
		r.status, r.leased = store.Status, store.leased
	}
	r.setErr(errors.New("not registered yet"))
	r.ctx, r.cancel = context.WithCancel(context.Background())
	go r.run()
	return r
}

// Close removes the entry (best effort, bounded by the request timeout) and
// stops the goroutine. Idempotent.
func (r *Registration) Close() {
	r.once.Do(func() {
		r.cancel()
		<-r.done
	})
}

// Err returns nil while the entry is held, else why not (before the first
// write: "not registered yet"; another daemon's name: wraps
// ErrInstanceTaken; etcd down: its error).
func (r *Registration) Err() error {
	if p := r.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (r *Registration) setErr(err error) { r.err.Store(&err) }

func (r *Registration) run() {
	defer close(r.done)
	retry := 100 * time.Millisecond
	for {
		lease, err := r.keep()
		r.setErr(err)
		taken := errors.Is(err, ErrInstanceTaken)
		if lease != 0 && (r.ctx.Err() != nil || taken) {
			ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
			_, _ = r.cli.Revoke(ctx, lease) // removes our entry, if we held it
			cancel()
		}
		if r.ctx.Err() != nil {
			return
		}
		wait := retry
		if taken {
			r.log.Error("fleet registration refused: this daemon is not listed in the fleet until the other daemon stops; set a distinct instance", zap.Error(err), zap.Duration("retry_in", r.ttl))
			wait = r.ttl
		} else {
			r.log.Warn("fleet registration lost; retrying", zap.Error(err), zap.Duration("in", retry))
			retry = min(2*retry, r.ttl/2)
		}
		select {
		case <-r.ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// claim writes the entry under lease id: over its own entry (same lease),
// where there is none, or over an earlier run of the same daemon; never
// over another live daemon's (ErrInstanceTaken). Each write is a
// transaction, so two daemons racing for one name cannot both win.
func (r *Registration) claim(id clientv3.LeaseID) error {
	m := r.m
	if r.status != nil {
		st := r.status()
		m.LastLease, m.LastLeaseEnd = st.LastLeaseAt, st.LastEnd
	}
	v, _ := json.Marshal(m)
	put := clientv3.OpPut(r.key, string(v), clientv3.WithLease(id))
	ctx, cancel := context.WithTimeout(r.ctx, r.timeout)
	defer cancel()
	for range 3 {
		resp, err := r.cli.Txn(ctx).If(clientv3.Compare(clientv3.LeaseValue(r.key), "=", id)).Then(put).Else(clientv3.OpGet(r.key)).Commit()
		if err != nil {
			return err
		}
		if resp.Succeeded {
			return nil
		}
		cmp := clientv3.Compare(clientv3.CreateRevision(r.key), "=", 0)
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			var holder Member
			_ = json.Unmarshal(kvs[0].Value, &holder)
			if !sameDaemon(r.m, holder) {
				return takenError(r.m, holder)
			}
			cmp = clientv3.Compare(clientv3.ModRevision(r.key), "=", kvs[0].ModRevision)
		}
		resp, err = r.cli.Txn(ctx).If(cmp).Then(put).Commit()
		if err != nil {
			return err
		}
		if resp.Succeeded {
			return nil
		}
		// The entry changed in between: look again.
	}
	return errors.New("the fleet entry kept changing under three claims")
}

// keep grants a lease, writes the entry and keeps both until the lease is
// lost or the registration closes; it returns the lease (0 if none was
// granted) and why it stopped.
func (r *Registration) keep() (clientv3.LeaseID, error) {
	ctx, cancel := context.WithTimeout(r.ctx, r.timeout)
	g, err := r.cli.Grant(ctx, int64((r.ttl+time.Second-1)/time.Second))
	cancel()
	if err != nil {
		return 0, fmt.Errorf("grant: %w", err)
	}
	if err := r.claim(g.ID); err != nil {
		return g.ID, fmt.Errorf("put: %w", err)
	}
	r.setErr(nil)
	ka, err := r.cli.KeepAlive(r.ctx, g.ID)
	if err != nil {
		return g.ID, fmt.Errorf("keepalive: %w", err)
	}
	tick := time.NewTicker(r.ttl / 3)
	defer tick.Stop()
	var last time.Time
	for {
		select {
		case _, ok := <-ka:
			if !ok {
				return g.ID, fmt.Errorf("keepalive ended (etcd unreachable or the lease expired)")
			}
		case <-r.leased:
			// Every lease is in the entry within a round trip: a daemon
			// whose watch missed it while cut off checks the fleet's
			// last leases against the mark (Store.checkFleet).
			at := r.status().LastLeaseAt
			if err := r.claim(g.ID); err != nil {
				return g.ID, fmt.Errorf("put: %w", err)
			}
			last = at
		case <-tick.C:
			// Rewrite the entry when the last lease changed, or when it
			// is no longer ours (deleted by hand, or overwritten by a
			// daemon that took this daemon's host and socket for its own
			// earlier run).
			var at time.Time
			if r.status != nil {
				at = r.status().LastLeaseAt
			}
			if at.Equal(last) {
				ctx, cancel := context.WithTimeout(r.ctx, r.timeout)
				resp, err := r.cli.Get(ctx, r.key, clientv3.WithKeysOnly())
				cancel()
				if err != nil {
					return g.ID, fmt.Errorf("get: %w", err)
				}
				if len(resp.Kvs) == 1 && clientv3.LeaseID(resp.Kvs[0].Lease) == g.ID {
					continue
				}
			}
			if err := r.claim(g.ID); err != nil {
				return g.ID, fmt.Errorf("put: %w", err)
			}
			last = at
		}
	}
}

// Fleet lists the daemons registered under prefix, by instance.
func Fleet(ctx context.Context, cli *clientv3.Client, prefix string) ([]Member, error) {
	resp, err := cli.Get(ctx, prefix+FleetDir, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd fleet: %w", err)
	}
	var ms []Member
	for _, kv := range resp.Kvs {
		var m Member
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			m = Member{Instance: strings.TrimPrefix(string(kv.Key), prefix+FleetDir) + " (unreadable entry)"}
		}
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.Instance, b.Instance) })
	return ms, nil
}
