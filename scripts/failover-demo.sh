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

cleanup() {
	local status=$?
	trap - EXIT INT TERM
	# Stop what we started, by pid, daemon first; SIGKILL what is still up
	# after 5 s.
	local i
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill -TERM "${pids[i]}" 2>/dev/null || true
	done
	for _ in $(seq 50); do
		local alive=0
		for p in "${pids[@]}"; do
			kill -0 "$p" 2>/dev/null && alive=1
		done
		((alive)) || break
		sleep 0.1
	done
	for p in "${pids[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if ((status != 0)); then
		echo "failover-demo: failed (exit $status); logs:" >&2
		for f in "$tmp"/*.log; do
			[ -e "$f" ] || continue
			echo "== $f" >&2
			tail -n 20 "$f" >&2
		done
	fi
	rm -rf "$tmp"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_for DESC CMD...: run CMD every 0.1 s until it succeeds, for up to 10 s.
wait_for() {
	local desc=$1
	shift
	for _ in $(seq 100); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	echo "failover-demo: timed out waiting for $desc" >&2
	return 1
}

for port in 7101 7102 7103 7201 7202 7203; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		echo "failover-demo: 127.0.0.1:$port is already in use; stop what listens there" >&2
		exit 1
	fi
done

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
