#!/usr/bin/env bash
# burst-demo.sh — a polite client beside a burst far above pool capacity
# (issue 11), on real processes: the daemon on its embedded default (three
# in-process simulated tiers), a burst sbbench and a polite sbbench, all on
# the same machine.
#
#   sbbench -concurrency 1 -duration 4s                       # quiet
#   sbbench -concurrency 3000 -conns 4 -duration 6s &         # burst
#   sbbench -concurrency 1 -duration 4s                       # polite, 1 s into the burst
#
# prints one line per run: ok, overloaded, errors (by code) and p50/p99 in
# µs, then the breakers' state (sbctl status) and the load average.
# NICE=19 runs the burst sbbench under nice (models a load generator on
# someone else's CPU). BIN= picks the binaries (default bin/, built by
# make build when absent). Loopback and a temporary directory only;
# everything it started is stopped on exit.
set -euo pipefail

cd "$(dirname "$0")/.."

BIN=${BIN:-bin}
NICE=${NICE:-0}
DEMO=burst-demo
pids=()
tmp=$(mktemp -d "${TMPDIR:-/tmp}/burst.XXXXXX")
# shellcheck source=lib/demo.sh
source scripts/lib/demo.sh
demo_traps

[ -x "$BIN/switchboard" ] || make build >/dev/null

mkdir -p "$tmp/data"
"$BIN/switchboard" -socket "$tmp/s.sock" -data-dir "$tmp/data" -admin-socket "$tmp/a.sock" >"$tmp/switchboard.log" 2>&1 &
pids+=($!)
wait_for "the daemon" "$BIN/sbctl" -admin-socket "$tmp/a.sock" status

line() { # NAME JSON
	jq -r --arg n "$1" '"\($n) ok \(.ok) overloaded \(.overloaded) errors \(.errors | add // 0) \(.errors | tostring) p50 \(.p50_us) p99 \(.p99_us)"' <<<"$2"
}

q=$("$BIN/sbbench" -socket "$tmp/s.sock" -concurrency 1 -duration 4s -json)
line quiet "$q"
nice -n "$NICE" "$BIN/sbbench" -socket "$tmp/s.sock" -concurrency 3000 -conns 4 -duration 6s -json >"$tmp/burst.json" &
bp=$!
pids+=($bp)
sleep 1
p=$("$BIN/sbbench" -socket "$tmp/s.sock" -concurrency 1 -duration 4s -json)
line polite "$p"
wait "$bp"
line burst "$(cat "$tmp/burst.json")"
echo "breakers: $("$BIN/sbctl" -admin-socket "$tmp/a.sock" status | awk '$2 ~ /^(closed|open|half-open)$/ {printf "%s %s  ", $1, $2}')"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
