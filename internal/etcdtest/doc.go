// Package etcdtest runs a real, single-member etcd server in the test
// process (go.etcd.io/etcd/server/v3/embed) on loopback, for tests of the
// etcd lease store and of daemon fleets: never a mock, because what those
// tests check (compare-and-swap under races, outcomes lost to timeouts,
// a cluster that stops and comes back) is etcd's behaviour.
//
// A Server keeps its data directory and ports across Stop and Start, so a
// test can take etcd away for a while and bring the same cluster back;
// Backup and Restore copy a stopped member's data directory out and back,
// a whole restore that takes etcd back in time, revisions included.
package etcdtest
