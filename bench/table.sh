#!/usr/bin/env bash
# table.sh — measure every performance budget of the design and rewrite the
# budget table of bench/README.md (between its budget-table markers), with
# the current value of each, the command that produced it, the date and the
# machine. `make bench-table` runs it after `make build`.
#
#   bench/table.sh            # COUNT=6 DURATION=5s ROUNDS=3 CONNS=1,64,1024,10000 CONNS_PAIRS=3
#   ONLY=conns bench/table.sh # the front-end connection rows alone (issue 14 point 3)
#
# It runs, in turn (nothing in parallel: each would disturb the others):
#   go test -bench           BenchmarkAllocate/net (./bench), BenchmarkTierSkip
#                            and BenchmarkReadyAfterStart (./daemon),
#                            BenchmarkDetectPeerClose (./pool), BenchmarkNext
#                            and BenchmarkNextParallel (./keygen), -count COUNT,
#                            the median of each metric
#   bin/sbbench scenario     throughput (-rounds ROUNDS), conns (net and
#                            netpoll alternated, CONNS_PAIRS pairs), overload,
#                            failover, failover -fault blackhole, reload, each
#                            on real processes, -duration DURATION
# The scenarios' reports, pictures and .hgrm files go to bench/results/scenarios/
# (the README embeds failover.svg); the raw go test output to
# bench/results/scenarios/benchmarks.txt.
#
# The numbers are only worth committing from an idle machine: the script
# records the load average at the start and the end in the table. Loopback
# and temporary directories only; every process a scenario starts is stopped
# by sbbench itself.
set -euo pipefail

cd "$(dirname "$0")/.."

COUNT=${COUNT:-6}
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-1,64,1024,10000}
CONNS_PAIRS=${CONNS_PAIRS:-3}
OUT=bench/results/scenarios
README=bench/README.md

tmp=$(mktemp -d "${TMPDIR:-/tmp}/table.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

make build >/dev/null # incremental: the scenarios run what bin/ holds
mkdir -p "$OUT"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
# The commit measured, and whether the tree differs from it: taken before
# this script writes its own files (results, the README), which would
# otherwise always count as a modification.
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (modified)')"
raw=$OUT/benchmarks.txt

# gobench PKG REGEX: go test -bench REGEX in PKG, COUNT runs, appended to
# $raw; the command in $last.
gobench() {
	last="go test -run '^\$' -bench '$2' -count $COUNT $1"
	echo "== $last" | tee -a "$raw" >&2
	go test -run '^$' -bench "$2" -count "$COUNT" "$1" | tee -a "$raw" >"$tmp/last.txt"
}

# median UNIT NAME-REGEX: the median of metric UNIT over the lines of the
# last gobench whose benchmark name matches NAME-REGEX; n/a if none.
median() {
	awk -v unit="$1" -v re="$2" '$1 ~ re { for (i = 3; i <= NF; i++) if ($i == unit) print $(i - 1) }' "$tmp/last.txt" |
		sort -g | awk '{ v[NR] = $1 } END {
			if (NR == 0) { print "n/a"; exit }
			if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# scenario AS NAME ARGS...: bin/sbbench scenario NAME ARGS, its files
# written into $OUT as AS.json, AS.svg, AS[-PHASE].hgrm; the command in $last.
scenario() {
	local as=$1
	shift
	last="bin/sbbench scenario $* -as $as -out $OUT"
	echo "== $last" >&2
	bin/sbbench scenario "$@" -as "$as" -out "$OUT" >&2
}

# check FILE NAME-SUBSTRING: the value of the first check of report FILE
# whose name contains NAME-SUBSTRING.
check() { jq -r --arg n "$2" '[.checks[] | select(.name | contains($n)) | .value][0] // "n/a"' "$1"; }

# verdict VALUE OP LIMIT: "met" or "**not met**" (OP is <= or >=).
verdict() {
	if [ "$1" = n/a ]; then echo "n/a"; return; fi
	if awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN { exit !((op == "<=") ? v <= l : v >= l) }'; then
		echo met
	else
		echo "**not met**"
	fi
}

# fmt VALUE: 3 significant digits, no exponent (whole numbers from 1,000).
fmt() { [ "$1" = n/a ] && echo n/a || awk -v v="$1" 'BEGIN { if (v >= 1000) printf "%.0f", v; else printf "%.3g", v }'; }

rows=()
row() { rows+=("| $1 | $2 | $3 | $4 | \`$5\` |"); }

# conns_rows: Issue 14 point 3, the conns scenario on both transports,
# alternated (net, netpoll, net, …), CONNS_PAIRS pairs; each row gives
# the median over the runs of each figure, and the ratio row the median of
# the per-pair ratios (two runs of one pair are seconds apart). The last
# pair's reports, pictures and .hgrm files go to $OUT as conns-net and
# conns-netpoll, the others' to $tmp. Its rows' "now" cells end with
# $stamp (set when ONLY=conns measures them alone).
conns_rows() {
	for i in $(seq 1 "$CONNS_PAIRS"); do
		for tr in net netpoll; do
			dir=$tmp as=conns-$tr-$i
			[ "$i" = "$CONNS_PAIRS" ] && dir=$OUT as=conns-$tr
			echo "== bin/sbbench scenario conns -conns-list $CONNS -duration $DURATION -transport $tr -as $as -out $dir (pair $i of $CONNS_PAIRS)" >&2
			bin/sbbench scenario conns -conns-list "$CONNS" -duration "$DURATION" -transport "$tr" -as "$as" -out "$dir" >&2
			cp "$dir/$as.json" "$tmp/pair-$i-$tr.json"
		done
	done
	if [ "${ONLY:-}" = conns ]; then
		stamp=" (measured alone $(date -u '+%Y-%m-%d %H:%M UTC') on commit $commit, load average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end)"
	fi
	jqmedian='def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;'
	connscmd="bin/sbbench scenario conns -conns-list $CONNS -duration $DURATION -transport \$T -as conns-\$T -out $OUT  # T = net, netpoll, alternated, $CONNS_PAIRS pairs"
	# Every phase must have had all its connections open at the daemon and none cut.
	bad=$(jq -s '[.[].checks[] | select((.name | contains("open at the daemon") or contains("cut or refused")) and (.met | not))] | length' "$tmp"/pair-*.json)
	for tr in net netpoll; do
		x=$(jq -rs "$jqmedian"' [.[].phases[]] | group_by(.conns) | map(
			"\(.[0].conns): p99 \(map(.summary.p99_us) | median / 1000 * 10 | round / 10) ms, \(map(.summary.rate) | median | round)/s"
			+ (if .[0].rss_per_conn_kb then ", \(map(.rss_per_conn_kb) | median * 10 | round / 10) KiB/conn" else "" end)) | join("; ")' "$tmp"/pair-*-"$tr".json)
		v=measured
		[ "$bad" = 0 ] || v="**invalid**: $bad phase(s) without all their connections open"
		row "front-end connections, $tr transport (64 busy; median of $CONNS_PAIRS runs): p99, allocations/s, daemon RSS per connection beyond the first" "measured at ${CONNS//,/, }" "$x${stamp:-}" "$v" "$connscmd"
	done
	# netpoll ÷ net, pair by pair: allocations/s and p99 at the fewest
	# connections (the issue: netpoll within 5 % of net at one connection),
	# and at the most, with the RSS per connection.
	ratios=$(jq -rs "$jqmedian"' (length / 2) as $n | [range(0; $n) as $k | [.[2 * $k].phases, .[2 * $k + 1].phases]] as $pairs |
		def r(f; i): [$pairs[] | (.[1][i] | f) / (.[0][i] | f)] | median;
		{one: r(.summary.rate; 0), one99: r(.summary.p99_us; 0), most: r(.summary.rate; -1), most99: r(.summary.p99_us; -1), rss: r(.rss_per_conn_kb // 0; -1)}
		| "\(.one) \(.one99) \(.most) \(.most99) \(.rss)"' $(for i in $(seq 1 "$CONNS_PAIRS"); do echo "$tmp/pair-$i-net.json" "$tmp/pair-$i-netpoll.json"; done))
	read -r one one99 most most99 rss <<<"$ratios"
	fewest=${CONNS%%,*} mostc=${CONNS##*,}
	row "front-end connections: netpoll ÷ net, same pair (median of $CONNS_PAIRS pairs): allocations/s at $fewest connection(s) (p99 ratio in brackets); at $mostc: allocations/s, p99, RSS per connection" "≥ 0.95 at $fewest (within 5 %), or a profile that shows why not (docs/architecture.md)" "$(fmt "$one") ($(fmt "$one99")); at $mostc: $(fmt "$most"), $(fmt "$most99"), $(fmt "$rss")${stamp:-}" "$(verdict "$one" '>=' 0.95)" "$connscmd"
}

# ONLY=conns measures the front-end connection rows alone and replaces
# just those rows of the table (their "now" cells then say when, on which
# commit and at what load); every other row stays as it was.
if [ "${ONLY:-}" = conns ]; then
	conns_rows
	printf '%s\n' "${rows[@]}" >"$tmp/rows.md"
	awk -v new="$tmp/rows.md" '
		/<!-- budget-table:begin/ { in_table = 1 }
		/<!-- budget-table:end/ { in_table = 0 }
		in_table && /^\| front-end connections/ { if (!done) { while ((getline l < new) > 0) print l; done = 1 } next }
		{ print }
		END { if (!done) exit 1 }
	' "$README" >"$tmp/README.md" || { echo "table.sh: no front-end connection rows in $README's table" >&2; exit 1; }
	cp "$tmp/README.md" "$README"
	cat "$tmp/rows.md"
	exit 0
fi

: >"$raw"
gobench ./bench '^BenchmarkAllocate$/^net$'
x=$(median x-floor 'BenchmarkAllocate/net')
row "allocation round trip, 1 client, p50 ÷ floor (UDS + TCP echo, same run; in process, default transport)" "≤ 1.25" "$(fmt "$x")" "$(verdict "$x" '<=' 1.25)" "$last"

scenario throughput throughput -rounds "$ROUNDS" -duration "$DURATION"
f=$OUT/throughput.json
x=$(check "$f" "saturation: switchboard cycles/s ÷ http")
row "throughput ÷ net/http + JSON baseline, 64 callers on 2 connections, separate processes, alternated, median of rounds" "≥ 10" "$(fmt "$x")" "$(verdict "$x" '>=' 10)" "$last"
x=$(check "$f" "saturation: switchboard cycles/s ÷ grpc-tuned")
row "throughput ÷ tuned gRPC peer, 64 callers on 2 connections" "≥ 6" "$(fmt "$x")" "$(verdict "$x" '>=' 6)" "$last"
x=$(check "$f" "one-caller: switchboard cycles/s ÷ grpc-tuned")
row "throughput ÷ tuned gRPC peer, one caller" "≥ 3" "$(fmt "$x")" "$(verdict "$x" '>=' 3)" "$last"

conns_rows

scenario overload overload -duration "$DURATION"
f=$OUT/overload.json
u=$(check "$f" "UNAVAILABLE")
o=$(check "$f" "breakers not closed")
shed=$(jq -r '.phases[0].summary | "\(.ok) ok, \(.overloaded) OVERLOADED"' "$f")
v=met
[ "$u" = 0 ] && [ "$o" = 0 ] || v="**not met**"
row "burst far above pool capacity (3,000 callers)" "0 UNAVAILABLE, breakers closed" "$u UNAVAILABLE, $o breakers not closed ($shed)" "$v" "$last"

gobench ./daemon '^BenchmarkTierSkip$'
x=$(median ns/op 'BenchmarkTierSkip')
row "switch cost when a tier is known down (ns per skipped tier)" "≤ 1,000 ns" "$(fmt "$x") ns" "$(verdict "$x" '<=' 1000)" "$last"

gobench ./pool '^BenchmarkDetectPeerClose$'
x=$(median detect-p99-us 'BenchmarkDetectPeerClose')
row "dead-connection detection (peer close to not live), p99" "≤ 1,000 µs" "$(fmt "$x") µs" "$(verdict "$x" '<=' 1000)" "$last"

scenario failover-blackhole failover -fault blackhole -duration "$DURATION"
f=$OUT/failover-blackhole.json
x=$(check "$f" "slowest allocation")
e=$(check "$f" "front-end-visible errors")
v=$(verdict "$x" '<=' 350)
[ "$e" = 0 ] || v="**not met**"
row "silent tier (blackhole on primary-large): slowest allocation; front-end-visible errors, OVERLOADED included" "≤ attempt deadline (250 ms) + 100 ms; 0" "$(fmt "$x") ms; $e" "$v" "$last"

scenario failover failover -duration "$DURATION"
f=$OUT/failover.json
x=$(check "$f" "front-end-visible errors")
row "front-end-visible errors (OVERLOADED included) while any tier can serve (primary-large down, then back)" "0" "$x" "$(verdict "$x" '<=' 0)" "$last"

gobench ./keygen '^BenchmarkNext(Parallel)?$'
x=$(median ns/op 'BenchmarkNext-')
p=$(median ns/op 'BenchmarkNextParallel')
row "key hot path (serial; parallel in brackets)" "≤ 10 ns/op, 0 allocs" "$(fmt "$x") ns/op ($(fmt "$p"))" "$(verdict "$x" '<=' 10)" "$last"

scenario reload reload -duration "$DURATION"
f=$OUT/reload.json
x=$(check "$f" "p99 of rows during a reload")
e=$(check "$f" "failed requests")
v=$(verdict "$x" '<=' 1.5)
[ "$e" = 0 ] || v="**not met**"
row "reload under load: p99 of the rows during a reload ÷ p99 of the others; failed requests" "≤ 1.5, 0 failed" "$(fmt "$x"), $e failed" "$v" "$last"

gobench ./daemon '^BenchmarkReadyAfterStart$'
x=$(median ms-ready-p50 'BenchmarkReadyAfterStart')
m=$(median ms-ready-max 'BenchmarkReadyAfterStart')
row "ready after start, sim:// tiers (median of the runs' p50; of their max in brackets)" "≤ 100 ms" "$(fmt "$x") ms ($(fmt "$m"))" "$(verdict "$x" '<=' 100)" "$last"

load_end=$(cut -d' ' -f1-3 /proc/loadavg)
machine="$(nproc) × $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), Linux $(uname -r), $(go version | awk '{print $3}')"

{
	echo "<!-- budget-table:begin (written by bench/table.sh: do not edit by hand) -->"
	echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') on commit $commit; machine: $machine;"
	echo "load average $load_start at the start, $load_end at the end."
	echo
	echo "| budget (the design's) | limit | now | verdict | command |"
	echo "|---|---|---|---|---|"
	printf '%s\n' "${rows[@]}"
	echo "<!-- budget-table:end -->"
} >"$tmp/table.md"

awk -v table="$tmp/table.md" '
	/<!-- budget-table:begin/ { while ((getline l < table) > 0) print l; skip = 1; next }
	/<!-- budget-table:end/ { skip = 0; next }
	!skip { print }
' "$README" >"$tmp/README.md"
grep -q 'budget-table:begin' "$tmp/README.md" || { echo "table.sh: $README has no budget-table markers" >&2; exit 1; }
cp "$tmp/README.md" "$README"
cat "$tmp/table.md"
