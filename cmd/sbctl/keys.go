package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"
)

// adminKeys is the keys section of the daemon's status.
type adminKeys struct {
	Store          string    `json:"store"`
	DataDir        string    `json:"data_dir"`
	Endpoints      []string  `json:"endpoints"`
	Prefix         string    `json:"prefix"`
	Ready          bool      `json:"ready"`
	Bound          bool      `json:"bound"`
	Failing        bool      `json:"failing"`
	Reason         string    `json:"reason"`
	Buffered       uint64    `json:"buffered"`
	Block          uint64    `json:"block"`
	LastLease      time.Time `json:"last_lease"`
	LastLeaseStart uint64    `json:"last_lease_start"`
	LastLeaseEnd   uint64    `json:"last_lease_end"`
	LostRaces      uint64    `json:"lost_races"`
	Unknown        uint64    `json:"unknown_outcomes"`
	Seen           uint64    `json:"seen_mark"`
	Rollbacks      uint64    `json:"rollbacks_found"`
	Fleet          string    `json:"fleet"`
}

// writeText adds the key store's rows to the status header.
func (k *adminKeys) writeText(tw io.Writer) {
	switch k.Store {
	case "":
		return // a daemon from before the keys section
	case "etcd":
		fmt.Fprintf(tw, "key store\tetcd %s under %s\n", strings.Join(k.Endpoints, ","), k.Prefix)
	default:
		fmt.Fprintf(tw, "key store\t%s %s\n", k.Store, k.DataDir)
	}
	ready := "ready"
	switch {
	case !k.Ready && !k.Bound:
		ready = "NOT READY: the key store was never reached"
	case !k.Ready:
		ready = "NOT READY: the key store is failing and no key is buffered"
	case k.Failing:
		ready = "ready on buffered keys; the key store is failing"
	}
	fmt.Fprintf(tw, "keys ready\t%s (%d buffered)\n", ready, k.Buffered)
	if k.Reason != "" {
		fmt.Fprintf(tw, "key store error\t%s\n", k.Reason)
	}
	if k.Fleet != "" {
		fmt.Fprintf(tw, "fleet entry\t%s\n", k.Fleet)
	}
	if !k.LastLease.IsZero() {
		fmt.Fprintf(tw, "last lease\t%s: counters [%d, %d), next block %d\n", k.LastLease.Format(time.RFC3339), k.LastLeaseStart, k.LastLeaseEnd, k.Block)
	}
	if k.LostRaces+k.Unknown > 0 {
		fmt.Fprintf(tw, "lease txns\t%d lost races (retried), %d unknown outcomes (never used)\n", k.LostRaces, k.Unknown)
	}
	if k.Store == "etcd" && k.Seen > 0 {
		fmt.Fprintf(tw, "highest mark seen\t%d\n", k.Seen)
	}
	if k.Rollbacks > 0 {
		fmt.Fprintf(tw, "rollbacks found\t%d: etcd was restored under this daemon's last lease; see docs/operations.md \"Backups\"\n", k.Rollbacks)
	}
}

// fleetMember is one daemon of `sbctl fleet`.
type fleetMember struct {
	Instance     string    `json:"instance"`
	Version      string    `json:"version"`
	Host         string    `json:"host"`
	Socket       string    `json:"socket"`
	Started      time.Time `json:"started"`
	LastLease    time.Time `json:"last_lease"`
	LastLeaseEnd uint64    `json:"last_lease_end"`
}

type fleetResult struct {
	rawAnswer
	ms []fleetMember
}

func (r *fleetResult) writeText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "INSTANCE\tVERSION\tHOST\tSOCKET\tSTARTED\tLAST LEASE\n")
	for _, m := range r.ms {
		last := "-"
		if !m.LastLease.IsZero() {
			last = fmt.Sprintf("%s (mark %d)", m.LastLease.Format(time.RFC3339), m.LastLeaseEnd)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Instance, m.Version, m.Host, m.Socket, m.Started.Format(time.RFC3339), last)
	}
	return tw.Flush()
}

func cmdFleet(ctx context.Context, g *globals, args []string) (result, error) {
	if _, err := parseArgs(g, flag.NewFlagSet("fleet", flag.ContinueOnError), args, 0, ""); err != nil {
		return nil, err
	}
	r := &fleetResult{}
	var err error
	r.raw, err = adminDo(ctx, g, "fleet", http.MethodGet, "/fleet", nil, &r.ms)
	if err != nil {
		return nil, err
	}
	return r, nil
}
