#!/usr/bin/env bash
# reload-demo.sh — watch switchboard reload its configuration under load.
#
# Builds the binaries (make build), starts four standalone telsim processes
# (primary-large on 127.0.0.1:7101, nextgen on 7102 and a second nextgen
# server on 7104, backup2-large on 7103; control APIs on 7201-7204) and the
# daemon with an admin socket on a config file in a temporary directory.
# Two variants of that file differ in pool sizes (min_conns 2/3), timeouts
# (attempt, request, dial, heartbeat), breaker thresholds (failures,
# open_for) and nextgen's server (7102/7104: a new pool, warmed before it
# takes over, and the old one drained). While
#
#   sbbench -rate 2000 -duration 10s -timeline-step 250ms \
#       -reload-every 1s -admin-socket TMP/admin.sock
#
# runs, the script swaps the file between the variants every second (half
# a second out of phase with the reloads, so every reload applies the other
# variant), and sbbench reloads the daemon through its admin socket. It
# prints sbbench's summary (reloads ok/failed, p99 of the rows during a
# reload against the others, and the ratio) and its timeline, then each
# telsim's open connections and live reservations: every allocation was
# released (0 live expected), and the nextgen server the last reload retired
# has 0 connections.
#
# Loopback only. Everything it started is stopped on exit (also on Ctrl-C);
# every wait is bounded. Override with RATE=, DURATION=, EVERY= (the reload
# period, a Go duration), STEP= (timeline row width), SBBENCH_ARGS= (extra
# sbbench flags).
set -euo pipefail

cd "$(dirname "$0")/.."

RATE=${RATE:-2000}
DURATION=${DURATION:-10s}
EVERY=${EVERY:-1s}
STEP=${STEP:-250ms}
SBBENCH_ARGS=${SBBENCH_ARGS:-}
TIERS=(primary-large nextgen backup2-large nextgen)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/reload-demo.XXXXXX")
pids=()
DEMO=reload-demo
# shellcheck source=lib/demo.sh
. scripts/lib/demo.sh
swapper=

cleanup() {
	local status=$?
	trap - EXIT INT TERM
	if [ -n "$swapper" ]; then
		kill -TERM "$swapper" 2>/dev/null || true
		wait "$swapper" 2>/dev/null || true
	fi
	stop_pids
	((status == 0)) || dump_logs "$status"
	rm -rf "$tmp"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# seconds D: a Go duration (ms or s) as seconds, for sleep.
seconds() {
	case $1 in
	*ms) awk "BEGIN { print ${1%ms} / 1000 }" ;;
	*s) echo "${1%s}" ;;
	*) echo "reload-demo: EVERY=$1: give ms or s" >&2; return 1 ;;
	esac
}

# variant N: the config file of variant N (0 or 1).
variant() {
	local min=2 attempt=250ms req=2s dial=1s hb=1s hbt=1s failures=5 open=2s nextgen=7102
	if [ "$1" = 1 ]; then
		min=3 attempt=300ms req=3s dial=800ms hb=700ms hbt=900ms failures=7 open=3s nextgen=7104
	fi
	cat <<EOF
# reload-demo.sh variant $1
log:
  level: info
server:
  request_timeout: $req
pool:
  min_conns: $min
  dial_timeout: $dial
  heartbeat_interval: $hb
  heartbeat_timeout: $hbt
  backoff_base: 50ms
  backoff_max: 1s
breaker:
  failures: $failures
  open_for: $open
tiers:
  - name: primary-large
    servers: [tcp://127.0.0.1:7101]
    attempt_timeout: $attempt
  - name: nextgen
    servers: [tcp://127.0.0.1:$nextgen]
    attempt_timeout: $attempt
  - name: backup2-large
    servers: [tcp://127.0.0.1:7103]
    attempt_timeout: $attempt
EOF
}

every_s=$(seconds "$EVERY")

ports_free 7101 7102 7103 7104 7201 7202 7203 7204 || exit 1

echo "== make build"
make build >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log" >&2; exit 1; }

echo "== starting telsim x4 and switchboard in $tmp"
for i in 0 1 2 3; do
	n=$((i + 1))
	bin/telsim -listen "127.0.0.1:710$n" -tier "${TIERS[i]}" -id "telsim-710$n" -control "127.0.0.1:720$n" -log-level warn \
		>"$tmp/telsim-$n.out" 2>"$tmp/telsim-$n.log" &
	pids+=($!)
done
for n in 1 2 3 4; do
	wait_for "telsim $n" grep -q '^control ' "$tmp/telsim-$n.out"
done

variant 0 >"$tmp/variant-0.yaml"
variant 1 >"$tmp/variant-1.yaml"
cp "$tmp/variant-0.yaml" "$tmp/switchboard.yaml"
bin/switchboard -check-config "$tmp/variant-1.yaml" >/dev/null
mkdir -p "$tmp/data"
# A new data directory: create its session key space once (the daemon never does).
bin/switchboard -init-keys -config "$tmp/switchboard.yaml" -data-dir "$tmp/data" >/dev/null
bin/switchboard -config "$tmp/switchboard.yaml" -socket "$tmp/sb.sock" -admin-socket "$tmp/admin.sock" \
	-data-dir "$tmp/data" >"$tmp/switchboard.log" 2>&1 &
pids+=($!)
wait_for "switchboard" bin/sbctl -socket "$tmp/sb.sock" ping

# Swap the config file every EVERY, half a period before each reload is
# due (rename: the daemon never reads a half-written file).
(
	trap 'exit 0' TERM
	sleep "$(awk "BEGIN { print $every_s / 2 }")"
	v=1
	while :; do
		cp "$tmp/variant-$v.yaml" "$tmp/next.yaml"
		mv "$tmp/next.yaml" "$tmp/switchboard.yaml"
		v=$((1 - v))
		sleep "$every_s"
	done
) &
swapper=$!

echo "== sbbench -rate $RATE -duration $DURATION -timeline-step $STEP -reload-every $EVERY -admin-socket $tmp/admin.sock $SBBENCH_ARGS"
# shellcheck disable=SC2086 # SBBENCH_ARGS is a word list
timeout 120 bin/sbbench -socket "$tmp/sb.sock" -rate "$RATE" -duration "$DURATION" -timeline-step "$STEP" \
	-reload-every "$EVERY" -admin-socket "$tmp/admin.sock" $SBBENCH_ARGS

kill -TERM "$swapper" 2>/dev/null || true
wait "$swapper" 2>/dev/null || true
swapper=

echo "== daemon: reloads applied"
grep -c '"new configuration in force"' "$tmp/switchboard.log" || true

echo "== telsim connections and live reservations after the run (0 live expected; the retired nextgen server 0 conns)"
sleep 1 # retired pools finish closing
for n in 1 2 3 4; do
	stats=$(bin/telsim stats -control "127.0.0.1:720$n")
	live=$(printf '%s\n' "$stats" | sed -n 's/^  "reservations": \([0-9]*\),$/\1/p')
	conns=$(printf '%s\n' "$stats" | sed -n 's/^  "conns": \([0-9]*\),$/\1/p')
	reserves=$(printf '%s\n' "$stats" | sed -n 's/^  "reserves": \([0-9]*\),$/\1/p')
	echo "127.0.0.1:710$n ${TIERS[n - 1]}  conns $conns  reserves $reserves  live $live"
done
