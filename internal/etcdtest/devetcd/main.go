// Command devetcd runs a single-member etcd server (the project's pinned
// go.etcd.io/etcd/server/v3, through its embed package) for demos,
// benchmarks and development: scripts/fleet-demo.sh builds and starts it so
// that a fleet of daemons can be tried without installing etcd. It is not
// for production (one member, no TLS): run a real etcd cluster there.
//
//	go build -o devetcd ./internal/etcdtest/devetcd
//	devetcd -data DIR [-listen 127.0.0.1:2379] [-peer 127.0.0.1:2380]
//
// It prints "ready http://ADDR" once it serves and stops on SIGINT or
// SIGTERM.
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

func main() { os.Exit(run()) }

func run() int {
	fs := flag.NewFlagSet("devetcd", flag.ContinueOnError)
	data := fs.String("data", "", "data `directory` (required; kept across runs)")
	listen := fs.String("listen", "127.0.0.1:2379", "client `address` (loopback)")
	peer := fs.String("peer", "127.0.0.1:2380", "peer `address` (loopback)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if *data == "" {
		fmt.Fprintln(os.Stderr, "devetcd: -data is required")
		return 2
	}
	cfg := embed.NewConfig()
	cfg.Name = "devetcd"
	cfg.Dir = *data
	cu, pu := url.URL{Scheme: "http", Host: *listen}, url.URL{Scheme: "http", Host: *peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{filepath.Join(*data, "etcd.log")}
	if err := os.MkdirAll(*data, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "devetcd:", err)
		return 1
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "devetcd:", err)
		return 1
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		fmt.Fprintln(os.Stderr, "devetcd:", err)
		return 1
	case <-time.After(60 * time.Second):
		fmt.Fprintln(os.Stderr, "devetcd: not ready after 60s")
		return 1
	}
	fmt.Println("ready", cu.String())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	select {
	case <-sig:
	case err := <-e.Err():
		fmt.Fprintln(os.Stderr, "devetcd:", err)
		return 1
	}
	return 0
}
