#!/usr/bin/env bash
# Compare benchmarks of a git ref against the working tree, in one run on one
# machine (the only comparison that means anything on a noisy host):
#   ./bench/compare.sh REF [BENCH-REGEXP] [PACKAGES]
# Runs both sides interleaved COUNT times and prints benchstat's table.
set -euo pipefail
ref=${1:?usage: compare.sh REF [BENCH] [PKGS]}
bench=${2:-.}
pkgs=${3:-./...}
count=${COUNT:-6}
top=$(git rev-parse --show-toplevel)
tmp=$(mktemp -d)
trap 'git -C "$top" worktree remove --force "$tmp/base" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git -C "$top" worktree add --detach "$tmp/base" "$ref" >/dev/null
for i in $(seq "$count"); do
  (cd "$tmp/base" && go test -run '^$' -bench "$bench" -benchmem -count 1 $pkgs) >>"$tmp/old.txt"
  (cd "$top" && go test -run '^$' -bench "$bench" -benchmem -count 1 $pkgs) >>"$tmp/new.txt"
done
# benchstat is pinned in go.mod as a tool of the working tree (go tool).
(cd "$top" && go tool benchstat "$tmp/old.txt" "$tmp/new.txt")
