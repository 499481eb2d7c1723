#!/usr/bin/env bash
# fleet-demo.sh — three switchboard daemons sharing one session key space in etcd.
#
# Builds the binaries (make build) and devetcd (a development etcd from the
# project's pinned etcd module), then starts, in a temporary directory:
#   - devetcd on 127.0.0.1:2379 (peer 127.0.0.1:2380);
#   - three telsim processes (primary-large, nextgen, backup2-large on
#     127.0.0.1:7101-7103, control APIs on 127.0.0.1:7201-7203), shared by
#     every daemon;
#   - three daemons (fleet-1..3) with keys.store: etcd, one key space created
#     once with switchboard -init-keys, each with its own socket, admin socket
#     and data directory.
# It runs sbbench -rate RATE -duration DURATION on each daemon at once,
# kills daemon fleet-2 with SIGKILL in the middle of the run and restarts
# it, then prints each sbbench summary (fleet-2's shows the errors of its
# killed connections), `sbctl fleet` and `sbctl status` of one daemon, the
# telsims' KEY_EXISTS counts (0: no key reached a server twice while live)
# and etcd's mark.
#
# Loopback only. Everything it started is stopped on exit (also on Ctrl-C);
# every wait is bounded. Override with RATE= (per daemon) and DURATION=.
set -euo pipefail

cd "$(dirname "$0")/.."

RATE=${RATE:-500}
DURATION=${DURATION:-10s}
TIERS=(primary-large nextgen backup2-large)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fleet-demo.XXXXXX")
pids=()
DEMO=fleet-demo
# shellcheck source=lib/demo.sh
. scripts/lib/demo.sh

demo_traps

ports_free 2379 2380 7101 7102 7103 7201 7202 7203 || exit 1

echo "== make build, devetcd"
{ make build && go build -o bin/devetcd ./internal/etcdtest/devetcd; } >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log" >&2; exit 1; }

echo "== starting etcd, telsim x3 in $tmp"
bin/devetcd -data "$tmp/etcd" -listen 127.0.0.1:2379 -peer 127.0.0.1:2380 >"$tmp/etcd.out" 2>"$tmp/etcd.log" &
pids+=($!)
for i in 0 1 2; do
	n=$((i + 1))
	bin/telsim -listen "127.0.0.1:710$n" -tier "${TIERS[i]}" -control "127.0.0.1:720$n" -capacity 1000000 -log-level warn \
		>"$tmp/telsim-$n.out" 2>"$tmp/telsim-$n.log" &
	pids+=($!)
done
wait_for "etcd" grep -q '^ready ' "$tmp/etcd.out"
for n in 1 2 3; do
	wait_for "telsim $n" grep -q '^control ' "$tmp/telsim-$n.out"
done

secret=$(od -An -v -tx1 -N32 /dev/urandom | tr -d ' \n')
config() { # config N: the configuration of daemon fleet-N
	cat <<YAML
instance: fleet-$1
socket: $tmp/sb$1.sock
data_dir: $tmp/data$1
admin:
  socket: $tmp/admin$1.sock
log:
  level: warn
keys:
  secret: $secret
  store: etcd
  etcd:
    endpoints: ["http://127.0.0.1:2379"]
    prefix: /fleet-demo/keys/
    block_period: 2s
tiers:
  - name: primary-large
    servers: [tcp://127.0.0.1:7101]
    attempt_timeout: 250ms
  - name: nextgen
    servers: [tcp://127.0.0.1:7102]
    attempt_timeout: 250ms
  - name: backup2-large
    servers: [tcp://127.0.0.1:7103]
    attempt_timeout: 250ms
YAML
}
start_daemon() { # start_daemon N
	bin/switchboard -config "$tmp/sb$1.yaml" >"$tmp/switchboard-$1.log" 2>&1 &
	pids+=($!)
	eval "daemon_pid_$1=$!"
	wait_for "switchboard fleet-$1" bin/sbctl -socket "$tmp/sb$1.sock" ping
}
for n in 1 2 3; do
	config "$n" >"$tmp/sb$n.yaml"
	bin/switchboard -check-config "$tmp/sb$n.yaml" >/dev/null
done
echo "== switchboard -init-keys (once for the fleet)"
bin/switchboard -init-keys -config "$tmp/sb1.yaml"
for n in 1 2 3; do
	start_daemon "$n"
done

echo "== sbbench -rate $RATE -duration $DURATION on each daemon; fleet-2 is killed (SIGKILL) mid-run and restarted"
for n in 1 2 3; do
	timeout 120 bin/sbbench -socket "$tmp/sb$n.sock" -rate "$RATE" -duration "$DURATION" >"$tmp/sbbench-$n.txt" 2>&1 &
	eval "bench_pid_$n=$!"
done
half=$(( ${DURATION%s} / 2 ))
sleep "$half"
# shellcheck disable=SC2154 # set by start_daemon through eval
kill -KILL "$daemon_pid_2"
echo "   killed fleet-2 at ${half}s"
sleep 0.5
start_daemon 2
echo "   fleet-2 serving again"
status=0
for n in 1 2 3; do
	pid_var="bench_pid_$n"
	wait "${!pid_var}" || status=$?
	echo "== sbbench on fleet-$n"
	sed -n '1,12p' "$tmp/sbbench-$n.txt"
done

echo "== sbctl fleet"
bin/sbctl -admin-socket "$tmp/admin1.sock" fleet
echo "== sbctl status (fleet-1), key store rows"
bin/sbctl -admin-socket "$tmp/admin1.sock" status | sed -n '1,12p'
echo "== telsim KEY_EXISTS replies (a key reserved twice while live; 0 expected)"
for n in 1 2 3; do
	stats=$(bin/telsim stats -control "127.0.0.1:720$n")
	exists=$(printf '%s\n' "$stats" | sed -n 's/^    "key_exists": \([0-9]*\),*$/\1/p')
	reserves=$(printf '%s\n' "$stats" | sed -n 's/^  "reserves": \([0-9]*\),$/\1/p')
	echo "${TIERS[n - 1]}  reserves $reserves  key_exists ${exists:-?}"
done
exit "$status"
