#!/usr/bin/env bash
# failover-demo.sh — watch switchboard fail over from primary-large and back.
#
# Builds the binaries (make build), starts three standalone telsim processes
# (tiers primary-large, nextgen, backup2-large on 127.0.0.1:7101-7103, their
# control APIs on 127.0.0.1:7201-7203) and the daemon on
# configs/local-telsim.yaml, all in a temporary directory, then runs
#
#   sbbench -rate 2000 -duration 10s \
#       -fault 127.0.0.1:7201=down@3 -fault 127.0.0.1:7201=none@6
#
# and prints its summary, fault log and per-second timeline: primary-large's
# column drops to 0 in second 3 and comes back after second 6, with no
# errors. Then each telsim's live reservations (all released: 0 expected).
#
# Loopback only. Everything it started is stopped on exit (also on Ctrl-C);
# every wait is bounded. Override with RATE=, DURATION=, FAULTS= (sbbench
# -fault arguments), SBBENCH_ARGS= (extra sbbench flags).
set -euo pipefail

cd "$(dirname "$0")/.."

RATE=${RATE:-2000}
DURATION=${DURATION:-10s}
FAULTS=${FAULTS:-"-fault 127.0.0.1:7201=down@3 -fault 127.0.0.1:7201=none@6"}
SBBENCH_ARGS=${SBBENCH_ARGS:-}
TIERS=(primary-large nextgen backup2-large)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/failover-demo.XXXXXX")
pids=()
DEMO=failover-demo
# shellcheck source=lib/demo.sh
. scripts/lib/demo.sh

demo_traps

ports_free 7101 7102 7103 7201 7202 7203 || exit 1

echo "== make build"
make build >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log" >&2; exit 1; }

echo "== starting telsim x3 and switchboard in $tmp"
for i in 0 1 2; do
	n=$((i + 1))
	bin/telsim -listen "127.0.0.1:710$n" -tier "${TIERS[i]}" -control "127.0.0.1:720$n" -log-level warn \
		>"$tmp/telsim-$n.out" 2>"$tmp/telsim-$n.log" &
	pids+=($!)
done
for n in 1 2 3; do
	wait_for "telsim $n" grep -q '^control ' "$tmp/telsim-$n.out"
done

mkdir -p "$tmp/data"
# A new data directory: create its session key space once (the daemon never does).
bin/switchboard -init-keys -config configs/local-telsim.yaml -data-dir "$tmp/data" >/dev/null
bin/switchboard -config configs/local-telsim.yaml -socket "$tmp/sb.sock" -data-dir "$tmp/data" \
	>"$tmp/switchboard.log" 2>&1 &
pids+=($!)
wait_for "switchboard" bin/sbctl -socket "$tmp/sb.sock" ping

echo "== sbbench -rate $RATE -duration $DURATION $FAULTS $SBBENCH_ARGS"
# shellcheck disable=SC2086 # FAULTS and SBBENCH_ARGS are word lists
timeout 120 bin/sbbench -socket "$tmp/sb.sock" -rate "$RATE" -duration "$DURATION" $FAULTS $SBBENCH_ARGS

echo "== telsim live reservations after the run (every allocation was released: 0 expected)"
for n in 1 2 3; do
	stats=$(bin/telsim stats -control "127.0.0.1:720$n")
	live=$(printf '%s\n' "$stats" | sed -n 's/^  "reservations": \([0-9]*\),$/\1/p')
	reserves=$(printf '%s\n' "$stats" | sed -n 's/^  "reserves": \([0-9]*\),$/\1/p')
	echo "${TIERS[n - 1]}  reserves $reserves  live $live"
done
