#!/usr/bin/env bash
# trace.sh OUTDIR — where a polite client's latency goes beside a burst
# (issue 11; bench/results/burst.txt, set 7). The burst demo's scenario
# (scripts/burst-demo.sh: daemon on the embedded default, quiet
# sbbench -concurrency 1 for 4 s, then a burst -concurrency 3000 -conns 4
# for 6 s and, 1 s into it, the polite -concurrency 1 for 4 s), with:
#   - binaries built with ptrace.patch applied: the daemon timestamps each
#     polite ALLOCATE (a connection with at most 2 unanswered) at every
#     stage, its pooled connection and in-process simulator included, and
#     sbbench records when each of its calls was sent and answered
#     (wall clock, so the processes' records join by session key);
#   - /proc/PID/task/*/schedstat of the daemon and both sbbench, every
#     100 ms (CPU time and run-queue wait, summed over threads);
#   - TRACE=1: a 1 s runtime trace of the daemon during the burst
#     (go tool trace -pprof=sched OUTDIR/daemon.trace: scheduling latency).
# Then: python3 bench/polite-trace/breakdown.py OUTDIR [quiet|polite]
#
#   git apply bench/polite-trace/ptrace.patch
#   go build -o DIR/ ./cmd/switchboard ./cmd/sbbench ./cmd/sbctl
#   git apply -R bench/polite-trace/ptrace.patch
#   BIN=DIR bench/polite-trace/trace.sh OUT
#
# DAEMON_ENV (e.g. GOMAXPROCS=4) is put in the daemon's environment.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${BIN:?BIN must name binaries built with ptrace.patch}"
out=$(realpath -m "$1")
mkdir -p "$out"
DEMO=polite-trace
pids=()
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ptrace.XXXXXX")
# shellcheck source=../../scripts/lib/demo.sh
source scripts/lib/demo.sh
demo_traps
mkdir -p "$tmp/data"
# shellcheck disable=SC2086
env SB_PTRACE="$out/daemon.pt" ${DAEMON_ENV:-} "$BIN/switchboard" -socket "$tmp/s.sock" -data-dir "$tmp/data" -admin-socket "$tmp/a.sock" >"$tmp/switchboard.log" 2>&1 &
dp=$!
pids+=($dp)
wait_for "the daemon" "$BIN/sbctl" -admin-socket "$tmp/a.sock" status

schedstat() { # PID: CPU ns, run-queue wait ns, timeslices, summed over its threads
	cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{r+=$1; w+=$2; s+=$3} END {printf "%.0f %.0f %.0f", r, w, s}'
}
sampler() { # PID...: a line every 100 ms: time, then PID and its schedstat for each
	while :; do
		local line
		line=$(date +%s%N)
		for p in "$@"; do line="$line $p $(schedstat "$p")"; done
		echo "$line"
		sleep 0.1
	done
}

SB_PTRACE="$out/quiet.pt" "$BIN/sbbench" -socket "$tmp/s.sock" -concurrency 1 -duration 4s -json >"$out/quiet.json" &
qp=$!
sampler $dp $qp >"$out/quiet.ss" &
sp=$!
wait $qp
kill $sp
wait $sp 2>/dev/null || true
"$BIN/sbbench" -socket "$tmp/s.sock" -concurrency 3000 -conns 4 -duration 6s -json >"$out/burst.json" &
bp=$!
pids+=($bp)
sleep 1
SB_PTRACE="$out/polite.pt" "$BIN/sbbench" -socket "$tmp/s.sock" -concurrency 1 -duration 4s -json >"$out/polite.json" &
pp=$!
sampler $dp $bp $pp >"$out/polite.ss" &
sp=$!
if [ -n "${TRACE:-}" ]; then
	sleep 1.5
	curl -s --unix-socket "$tmp/a.sock" "http://admin/debug/pprof/trace?seconds=1" >"$out/daemon.trace"
fi
wait $pp
kill $sp
wait $sp 2>/dev/null || true
wait $bp
for f in quiet polite burst; do echo "$f $(jq -c '{ok,overloaded,errors,p50_us,p99_us}' "$out/$f.json")"; done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
kill -TERM $dp
wait $dp || true
