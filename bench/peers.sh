#!/usr/bin/env bash
# peers.sh — issue 14's "peers, measured fairly": switchboard, the net/http +
# JSON baseline (bench/httpbaseline) and the gRPC peer (bench/grpcpeer,
# default and tuned grpc-go options), each as its own processes, measured
# by one load client (cmd/peerbench load) with the same request and the same
# concurrency, alternated in rounds, and summarized as medians and ratios.
#
#   bench/peers.sh | tee bench/results/YYYY-MM-DD-peers.txt
#
# It builds bin/{switchboard,telsim,sbctl,peerbench} and starts, in a
# temporary directory, all four services at once (each idle while another
# is measured):
#   switchboard  3 x telsim (primary-large, nextgen, backup2-large) + the
#                daemon on configs/local-telsim.yaml (2 warm connections per
#                server), pointed at them
#   http         http-stub + http-front (one tier: the baseline has one)
#   grpc         3 x grpc-stub + grpc-front (2 connections per tier)
#   grpc-tuned   the same with -tuned
# then, for each load (CALLERS callers on CONNS connections, then one caller
# on one connection), PAIRS rounds of switchboard, http, grpc, grpc-tuned in
# turn, each a WARMUP then a DURATION of closed-loop cycles (an allocation
# with a fresh token, then the release of its key). CPU per cycle counts
# every process of the service measured and the load client.
#
# Loopback and Unix sockets only; every wait is bounded; everything it
# started is stopped on exit (also on Ctrl-C). Override with PAIRS=,
# CALLERS=, CONNS=, WARMUP=, DURATION=.
set -euo pipefail

cd "$(dirname "$0")/.."

PAIRS=${PAIRS:-5}
CALLERS=${CALLERS:-64}
CONNS=${CONNS:-2}
WARMUP=${WARMUP:-2s}
DURATION=${DURATION:-5s}
TIERS=(primary-large nextgen backup2-large)
TARGETS=(switchboard http grpc grpc-tuned)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/peers.XXXXXX")
pids=()
DEMO=peers
# shellcheck source=../scripts/lib/demo.sh
. scripts/lib/demo.sh

cleanup() {
	local status=$?
	trap - EXIT INT TERM
	stop_pids
	((status == 0)) || dump_logs "$status"
	rm -rf "$tmp"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# started NAME: the address a server printed on its "listen ADDR" line.
listen_addr() { sed -n 's/^listen //p' "$tmp/$1.out"; }

# spawn NAME CMD...: start CMD in the background, stdout to NAME.out,
# stderr to NAME.log, its pid appended to pids.
spawn() {
	local name=$1
	shift
	"$@" >"$tmp/$name.out" 2>"$tmp/$name.log" &
	pids+=($!)
}

echo "== go build -o bin/ ./cmd/switchboard ./cmd/telsim ./cmd/sbctl ./cmd/peerbench"
mkdir -p bin
go build -o bin/ ./cmd/switchboard ./cmd/telsim ./cmd/sbctl ./cmd/peerbench

echo "== machine"
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (modified)')"
echo "cpu: $(nproc) x $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
echo "kernel $(uname -r); $(go version); GOMAXPROCS unset (each process: all $(nproc) cores)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== starting the services in a temporary directory"
declare -A svc_pids
# switchboard: three telsim processes and the daemon.
sb_pids=()
for i in 0 1 2; do
	spawn "telsim-$i" bin/telsim -listen 127.0.0.1:0 -tier "${TIERS[i]}" -log-level warn
	sb_pids+=("${pids[-1]}")
done
for i in 0 1 2; do
	wait_for "telsim $i" grep -q '^listen ' "$tmp/telsim-$i.out"
done
sed -e "s|tcp://127.0.0.1:7101|tcp://$(listen_addr telsim-0)|" \
	-e "s|tcp://127.0.0.1:7102|tcp://$(listen_addr telsim-1)|" \
	-e "s|tcp://127.0.0.1:7103|tcp://$(listen_addr telsim-2)|" \
	-e 's|^  level: info |  level: warn |' configs/local-telsim.yaml >"$tmp/switchboard.yaml"
mkdir -p "$tmp/data"
bin/switchboard -init-keys -config "$tmp/switchboard.yaml" -data-dir "$tmp/data" >/dev/null
spawn switchboard bin/switchboard -config "$tmp/switchboard.yaml" -socket "$tmp/sb.sock" -data-dir "$tmp/data"
sb_pids+=("${pids[-1]}")
wait_for "switchboard" bin/sbctl -socket "$tmp/sb.sock" ping
svc_pids[switchboard]=$(IFS=,; echo "${sb_pids[*]}")

# http: the baseline's stub and daemon.
spawn http-stub bin/peerbench http-stub -listen 127.0.0.1:0
http_pids=("${pids[-1]}")
wait_for "http stub" grep -q '^listen ' "$tmp/http-stub.out"
spawn http-front bin/peerbench http-front -socket "$tmp/http.sock" -stub "$(listen_addr http-stub)"
http_pids+=("${pids[-1]}")
wait_for "http front" grep -q '^ready ' "$tmp/http-front.out"
svc_pids[http]=$(IFS=,; echo "${http_pids[*]}")

# grpc and grpc-tuned: a stub per tier and the front.
for t in grpc grpc-tuned; do
	flag=()
	[ "$t" = grpc-tuned ] && flag=(-tuned)
	g_pids=()
	tiers=()
	for i in 0 1 2; do
		spawn "$t-stub-$i" bin/peerbench grpc-stub -listen 127.0.0.1:0 -tier "${TIERS[i]}" "${flag[@]}"
		g_pids+=("${pids[-1]}")
	done
	for i in 0 1 2; do
		wait_for "$t stub $i" grep -q '^listen ' "$tmp/$t-stub-$i.out"
		tiers+=("${TIERS[i]}=$(listen_addr "$t-stub-$i")")
	done
	spawn "$t-front" bin/peerbench grpc-front -socket "$tmp/$t.sock" -tiers "$(IFS=,; echo "${tiers[*]}")" "${flag[@]}"
	g_pids+=("${pids[-1]}")
	wait_for "$t front" grep -q '^ready ' "$tmp/$t-front.out"
	svc_pids[$t]=$(IFS=,; echo "${g_pids[*]}")
done
declare -A sockets=([switchboard]=$tmp/sb.sock [http]=$tmp/http.sock [grpc]=$tmp/grpc.sock [grpc-tuned]=$tmp/grpc-tuned.sock)

results=$tmp/results.jsonl
for load in "saturation:$CALLERS:$CONNS" "one-caller:1:1"; do
	IFS=: read -r label callers conns <<<"$load"
	echo "== $label: $callers callers on $conns connections (http: $callers), $PAIRS rounds of ${TARGETS[*]}, warmup $WARMUP, measured $DURATION each"
	for round in $(seq "$PAIRS"); do
		for t in "${TARGETS[@]}"; do
			timeout 120 bin/peerbench load -label "$label" -target "$t" -socket "${sockets[$t]}" \
				-callers "$callers" -conns "$conns" -warmup "$WARMUP" -duration "$DURATION" \
				-pids "${svc_pids[$t]}" | tee -a "$results"
		done
		echo "   round $round done; load average $(cut -d' ' -f1-3 /proc/loadavg)"
	done
done

echo "== summary (medians over the rounds; ratios: median over the pairs of one round each)"
bin/peerbench summarize "$results"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
