#!/usr/bin/env bash
# scripts/run.sh: `make run`: gortd on a private socket, a task through gortctl submit --wait, gortctl stats, gortd stopped.
#
# Usage: scripts/run.sh [BUILD_DIR]   (default: build)
set -euo pipefail

build=${1:-build}
dir=$(mktemp -d /tmp/gort-run-XXXXXX)
sock=$dir/gortd.sock
pid=

cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		wait "$pid" || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT

ctl() { "$build/bin/gortctl" --socket "$sock" "$@"; }

echo "== gortd --socket $sock"
"$build/bin/gortd" --foreground --socket "$sock" 2>"$dir/gortd.log" &
pid=$!
for _ in $(seq 1 500); do
	ctl stats >/dev/null 2>&1 && break
	kill -0 "$pid" 2>/dev/null || { cat "$dir/gortd.log"; exit 1; }
	sleep 0.02
done

echo
echo "== gortctl submit --wait $build/examples/fanout.so -- 8"
ctl submit --wait "$build/examples/fanout.so" -- 8

echo
echo "== gortctl stats"
ctl stats

echo
echo "== gortd stopped (SIGTERM); its log:"
kill -TERM "$pid"
wait "$pid"
pid=
cat "$dir/gortd.log"
