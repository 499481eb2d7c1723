package etcdstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Member is one daemon's entry in the fleet: the value of
// <prefix>fleet/<instance>, attached to an etcd lease that the daemon keeps
// alive, so the entry disappears within the lease's TTL of the daemon's
// death.
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
	log     *zap.Logger

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Register starts keeping m under prefix+"fleet/"+m.Instance with a lease
// of ttl (0: DefaultMemberTTL); store (may be nil) supplies the last lease.
// It returns at once: etcd being down only delays the entry.
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
		r.status = store.Status
	}
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

func (r *Registration) run() {
	defer close(r.done)
	retry := 100 * time.Millisecond
	for {
		lease, err := r.keep()
		if r.ctx.Err() != nil {
			if lease != 0 {
				ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
				_, _ = r.cli.Revoke(ctx, lease) // removes the entry
				cancel()
			}
			return
		}
		r.log.Warn("fleet registration lost; retrying", zap.Error(err), zap.Duration("in", retry))
		select {
		case <-r.ctx.Done():
			return
		case <-time.After(retry):
		}
		retry = min(2*retry, r.ttl/2)
	}
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
	put := func() error {
		m := r.m
		if r.status != nil {
			st := r.status()
			m.LastLease, m.LastLeaseEnd = st.LastLeaseAt, st.LastEnd
		}
		v, _ := json.Marshal(m)
		ctx, cancel := context.WithTimeout(r.ctx, r.timeout)
		defer cancel()
		_, err := r.cli.Put(ctx, r.key, string(v), clientv3.WithLease(g.ID))
		return err
	}
	if err := put(); err != nil {
		return g.ID, fmt.Errorf("put: %w", err)
	}
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
		case <-tick.C:
			if r.status == nil {
				continue
			}
			if at := r.status().LastLeaseAt; !at.Equal(last) {
				if err := put(); err != nil {
					return g.ID, fmt.Errorf("put: %w", err)
				}
				last = at
			}
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
