# shellcheck shell=bash
# demo.sh — shared by the demo scripts (failover, reload, burst and fleet demos):
# stopping what a demo started, showing its logs when it failed, bounded
# waits and a free-port check. Source it after setting:
#   DEMO   the script's name, for messages
#   tmp    its temporary directory (logs are $tmp/*.log)
#   pids   an array the script appends every background pid to

# stop_pids: SIGTERM every pid in pids, last started first (the daemon
# before the servers it uses), then SIGKILL whatever is still up after 5 s.
stop_pids() {
	local i p
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
}

# dump_logs STATUS: the last lines of every log, after a failure.
dump_logs() {
	echo "$DEMO: failed (exit $1); logs:" >&2
	local f
	for f in "$tmp"/*.log; do
		[ -e "$f" ] || continue
		echo "== $f" >&2
		tail -n 20 "$f" >&2
	done
}

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
	echo "$DEMO: timed out waiting for $desc" >&2
	return 1
}

# ports_free PORT...: fail if anything listens on 127.0.0.1:PORT.
ports_free() {
	local port
	for port in "$@"; do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$DEMO: 127.0.0.1:$port is already in use; stop what listens there" >&2
			return 1
		fi
	done
}

# demo_cleanup: the EXIT trap of a demo — stop what it started, show the
# logs when it failed, remove $tmp, and exit with the demo's status.
demo_cleanup() {
	local status=$?
	trap - EXIT INT TERM
	stop_pids
	((status == 0)) || dump_logs "$status"
	rm -rf "$tmp"
	exit "$status"
}

# demo_traps: install demo_cleanup on exit, Ctrl-C and SIGTERM (their
# conventional exit statuses, 130 and 143).
demo_traps() {
	trap demo_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}
