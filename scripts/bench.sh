#!/usr/bin/env bash
# scripts/bench.sh: run gort's benchmarks (build/bin/bench-*) and their Go twins (bench/go/*.go), print a comparison table.
#
# usage: scripts/bench.sh BUILD_BIN_DIR [workload...]
#
# Each binary prints "METRIC <name> <value> <unit>" lines (httpd is driven by wrk
# instead); each is run BENCH_RUNS times and the table shows the median of every
# metric. A workload whose gort binary is missing or fails is reported as skipped.
#
# Environment:
#   BENCH_RUNS           runs per binary (default 5)
#   BENCH_TIMEOUT        seconds one run may take before it counts as failed (default 300;
#                        preempt: 60, as without asynchronous preemption it never ends)
#   BENCH_HTTP_DURATION  wrk duration in seconds for httpd (default 5)
#   BENCH_PORT           first port tried for httpd (default 18080)
#
# The gort binary and its Go twin take turns, one run of each per round (the
# machine's speed drifts over minutes); httpd also runs bench/ref/httpd-epoll
# (plain C, for what wrk can drive on this machine) in the same turns and adds
# a row for it.
#   GORT_NO_URING=1      inherited by the gort binaries (their io falls back from io_uring)
set -uo pipefail

all_workloads=(spawn yield pingpong ring sleep park preempt httpd fileread daemon)

usage() {
	echo "usage: $0 BUILD_BIN_DIR [workload...]" >&2
	echo "workloads: ${all_workloads[*]}" >&2
	exit 2
}

[ $# -ge 1 ] || usage
[ -d "$1" ] || { echo "$0: $1: not a directory" >&2; exit 2; }
bin=$(cd "$1" && pwd)
shift
workloads=("$@")
[ ${#workloads[@]} -gt 0 ] || workloads=("${all_workloads[@]}")
for w in "${workloads[@]}"; do
	[[ " ${all_workloads[*]} " == *" $w "* ]] || { echo "$0: unknown workload: $w" >&2; usage; }
done

runs=${BENCH_RUNS:-5}
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "$0: BENCH_RUNS must be a positive integer" >&2; exit 2; }
timeout_s=${BENCH_TIMEOUT:-300}
http_duration=${BENCH_HTTP_DURATION:-5}
next_port=${BENCH_PORT:-18080}

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(dirname "$bin")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gort-bench.XXXXXX") || exit 1
server_pid=
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
	if [ -n "$server_pid" ]; then
		kill "$server_pid" 2>/dev/null
		wait "$server_pid" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "bench: $*" >&2; }

# median of numbers on stdin, one a line
median() {
	sort -g | awk '{ a[NR] = $1 } END {
		if (NR == 0) exit 1
		printf "%.2f\n", NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
	}'
}

# ---- Go twins ----

have_go=false
if command -v go >/dev/null 2>&1; then
	have_go=true
	export GOFLAGS=-mod=mod GOCACHE="$build/go-cache" GOPATH="$build/go-path" \
		GOPROXY=off GOTOOLCHAIN=local GO111MODULE=on CGO_ENABLED=0 GOTELEMETRY=off
else
	log "go not found: Go twins skipped"
fi

# build_go W: builds bench/go/W.go with the shared bench/go/benchlib.go into
# $bin/go-bench-W; nonzero on failure. Both carry //go:build ignore, which Go
# does not apply to .go files named on its command line.
build_go() {
	$have_go || return 1
	(cd "$root/bench/go" && go build -o "$bin/go-bench-$1" benchlib.go "$1.go") >"$tmp/go-build-$1.log" 2>&1 || {
		log "go build benchlib.go $1.go failed:"
		sed 's/^/    /' "$tmp/go-build-$1.log" >&2
		return 1
	}
}

# ---- running ----

fail_reason=

# binary_once OUT NAME RUN CMD...: runs CMD once, appending its METRIC lines to
# OUT as "name value unit"; on failure sets fail_reason and returns 1.
binary_once() {
	local out=$1 name=$2 i=$3 rc
	shift 3
	timeout -k 5 "$timeout_s" "$@" >"$tmp/stdout" 2>"$tmp/stderr"
	rc=$?
	if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
		fail_reason="$name timed out after ${timeout_s}s (run $i/$runs)"
		return 1
	fi
	if [ $rc -ne 0 ]; then
		fail_reason="$name exited with status $rc (run $i/$runs)"
		[ -s "$tmp/stderr" ] && fail_reason+=": $(tail -n 1 "$tmp/stderr")"
		return 1
	fi
	if ! grep -q '^METRIC ' "$tmp/stdout"; then
		fail_reason="$name printed no METRIC line (run $i/$runs)"
		return 1
	fi
	awk '$1 == "METRIC" && NF >= 4 { print $2, $3, $4 }' "$tmp/stdout" >>"$out"
	log "$name run $i/$runs: $(awk '$1 == "METRIC" { printf "%s=%s%s ", $2, $3, $4 }' "$tmp/stdout")"
}

# port_free P: true when nothing accepts on 127.0.0.1:P
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# httpd_once OUT NAME SERVER RUN: starts SERVER PORT, drives it with wrk once,
# appends its requests/s to OUT; on failure sets fail_reason and returns 1.
httpd_once() {
	local out=$1 name=$2 server=$3 i=$4 port ok rps
	port=$next_port
	while ! port_free "$port"; do port=$((port + 1)); done
	next_port=$((port + 1))

	"$server" "$port" >"$tmp/server.log" 2>&1 &
	server_pid=$!
	ok=false
	for _ in $(seq 100); do
		kill -0 "$server_pid" 2>/dev/null || break
		if ! port_free "$port"; then ok=true; break; fi
		sleep 0.05
	done
	if ! $ok; then
		fail_reason="$name did not accept on 127.0.0.1:$port (run $i/$runs)"
		[ -s "$tmp/server.log" ] && fail_reason+=": $(tail -n 1 "$tmp/server.log")"
		kill "$server_pid" 2>/dev/null
		wait "$server_pid" 2>/dev/null
		server_pid=
		return 1
	fi

	wrk -t1 -c64 -d1s "http://127.0.0.1:$port/" >/dev/null 2>&1 # warm-up
	wrk -t1 -c64 -d"${http_duration}s" "http://127.0.0.1:$port/" >"$tmp/wrk.out" 2>&1
	if ! kill -0 "$server_pid" 2>/dev/null; then
		wait "$server_pid" 2>/dev/null
		fail_reason="$name died under load (run $i/$runs)"
		[ -s "$tmp/server.log" ] && fail_reason+=": $(tail -n 1 "$tmp/server.log")"
		server_pid=
		return 1
	fi
	kill "$server_pid" 2>/dev/null
	wait "$server_pid" 2>/dev/null
	server_pid=

	rps=$(awk '/^Requests\/sec:/ { print $2 }' "$tmp/wrk.out")
	if [ -z "$rps" ]; then
		fail_reason="wrk gave no Requests/sec for $name (run $i/$runs)"
		return 1
	fi
	if grep -q -e '^ *Socket errors' -e '^ *Non-2xx' "$tmp/wrk.out"; then
		log "$name run $i/$runs: wrk reported: $(grep -e 'Socket errors' -e 'Non-2xx' "$tmp/wrk.out" | tr -s ' ' | tr '\n' ';')"
	fi
	echo "httpd_requests_per_sec $rps req/s" >>"$out"
	log "$name run $i/$runs: httpd_requests_per_sec=${rps}req/s"
}

# fileread's input: 256 MiB, created once, read once with cat so it is page-cached
data_file=
make_data_file() {
	[ -n "$data_file" ] && return 0
	data_file="$tmp/fileread.dat"
	log "creating a 256 MiB file in $tmp"
	head -c $((256 << 20)) /dev/urandom >"$data_file" || return 1
	cat "$data_file" >/dev/null
}

# impl_once OUT NAME BINARY W RUN: one run of one implementation of workload W
impl_once() {
	local out=$1 name=$2 binary=$3 w=$4 i=$5
	case $w in
	httpd) httpd_once "$out" "$name" "$binary" "$i" ;;
	fileread) binary_once "$out" "$name" "$i" "$binary" "$data_file" ;;
	preempt) timeout_s=${BENCH_TIMEOUT:-60} binary_once "$out" "$name" "$i" "$binary" ;;
	daemon) binary_once "$out" "$name" "$i" "$binary" "$build" ;;
	*) binary_once "$out" "$name" "$i" "$binary" ;;
	esac
}

# run_turns W OUT NAME BINARY [OUT NAME BINARY...]: $runs rounds of workload W,
# each implementation once a round, in turn: the machine's speed drifts over
# minutes (on a shared VM, by a third), and taking turns keeps that drift out
# of the ratios. One that fails drops out of the later rounds; turn_failed[k]
# is the reason for the k-th (0: the first). Returns 1 if the first failed.
turn_failed=()
run_turns() {
	local w=$1 i k
	shift
	local n=$(($# / 3)) args=("$@")
	turn_failed=()
	for ((i = 1; i <= runs; i++)); do
		for ((k = 0; k < n; k++)); do
			[ -n "${turn_failed[k]:-}" ] && continue
			impl_once "${args[3 * k]}" "${args[3 * k + 1]}" "${args[3 * k + 2]}" "$w" "$i" ||
				turn_failed[k]=$fail_reason
		done
	done
	fail_reason=${turn_failed[0]:-}
	[ -z "$fail_reason" ]
}

# ---- table ----

rows=()

# compare VALUE_GORT VALUE_GO UNIT: "ratio<TAB>verdict"
compare() {
	awk -v a="$1" -v b="$2" -v unit="$3" 'BEGIN {
		if (unit ~ /\/s$/) {         # throughput: higher is better, ratio gort/go
			if (b <= 0) { print "-\t-"; exit }
			r = a / b; word_up = "faster"; word_down = "slower"
		} else {                     # time or memory: lower is better, ratio go/gort
			if (a <= 0) { print "-\t-"; exit }
			r = b / a
			if (unit ~ /iB$/) { word_up = "smaller"; word_down = "larger" }
			else { word_up = "faster"; word_down = "slower" }
		}
		if (r >= 1) printf "%.2f\tgort %.2fx %s\n", r, r, word_up
		else if (r > 0) printf "%.2f\tgort %.2fx %s\n", r, 1 / r, word_down
		else print "-\t-"
	}'
}

for w in "${workloads[@]}"; do
	gort_bin="$bin/bench-$w"
	gort_out="$tmp/$w.gort"
	go_out="$tmp/$w.go"
	: >"$gort_out"
	: >"$go_out"

	if [ ! -x "$gort_bin" ]; then
		rows+=("$w	skipped: $gort_bin not built")
		continue
	fi
	if [ "$w" = fileread ] && ! make_data_file; then
		rows+=("$w	skipped: could not create the 256 MiB input file")
		continue
	fi

	go_status=ok
	if [ ! -f "$root/bench/go/$w.go" ]; then
		go_status="no Go twin"
	elif ! build_go "$w"; then
		go_status="no go"
		$have_go && go_status="build failed"
	fi

	if [ "$w" = httpd ] && ! command -v wrk >/dev/null 2>&1; then
		rows+=("$w	skipped: wrk not installed")
		continue
	fi
	# gort, its Go twin and, for httpd, the reference (bench/ref) take turns
	impls=("$gort_out" "bench-$w" "$gort_bin")
	[ "$go_status" = ok ] && impls+=("$go_out" "go-bench-$w" "$bin/go-bench-$w")
	ref_k=$((${#impls[@]} / 3))
	ref_out="$tmp/$w.ref"
	: >"$ref_out"
	[ "$w" = httpd ] && [ -x "$bin/ref-httpd-epoll" ] && impls+=("$ref_out" ref-httpd-epoll "$bin/ref-httpd-epoll")
	names=
	for ((k = 1; k < ${#impls[@]}; k += 3)); do names+="${names:+, }${impls[k]}"; done
	log "$w: $names, in turn"
	if ! run_turns "$w" "${impls[@]}"; then
		log "$w: $fail_reason"
		rows+=("$w	skipped: $fail_reason")
		continue
	fi
	if [ "$go_status" = ok ] && [ -n "${turn_failed[1]:-}" ]; then
		log "$w: ${turn_failed[1]}"
		go_status="failed"
	fi
	if [ -n "${turn_failed[ref_k]:-}" ]; then
		log "$w: ${turn_failed[ref_k]}"
		: >"$ref_out"
	fi

	# one row per metric, in the order the gort binary printed them
	while read -r metric; do
		unit=$(awk -v m="$metric" '$1 == m { print $3; exit }' "$gort_out")
		gort_v=$(awk -v m="$metric" '$1 == m { print $2 }' "$gort_out" | median)
		go_v=$(awk -v m="$metric" '$1 == m { print $2 }' "$go_out" | median)
		if [ -n "$go_v" ]; then
			cmp=$(compare "$gort_v" "$go_v" "$unit")
			go_col="$go_v $unit"
		else
			cmp="-	-"
			go_col=$go_status
			[ "$go_status" = ok ] && go_col="(no such metric)"
		fi
		rows+=("$w	$metric	$gort_v $unit	$go_col	$cmp")
		ref_v=$(awk -v m="$metric" '$1 == m { print $2 }' "$ref_out" | median)
		if [ -n "$ref_v" ]; then
			# the least work per request a server can do (bench/ref/README.md)
			cmp="-	-"
			[ -n "$go_v" ] && cmp=$(compare "$ref_v" "$go_v" "$unit" | sed 's/gort/ref/')
			rows+=("$w	(ref: C, epoll, 1 thread)	$ref_v $unit	$go_col	$cmp")
		fi
	done < <(awk '!seen[$1]++ { print $1 }' "$gort_out")
done

# ---- report ----

echo
echo "gort vs Go: median of $runs runs each; $(nproc) CPUs; $(uname -sr); $($have_go && go version | awk '{ print $3 }' || echo 'no go')${GORT_NO_URING:+; GORT_NO_URING=$GORT_NO_URING}"
echo "ratio: go/gort for times and memory (lower is better), gort/go for throughput (higher is better)"
echo
row() { printf '%-9s %-30s %16s %16s %7s  %s\n' "$@"; }
row workload metric gort go ratio verdict
row --------- ------------------------------ ---------------- ---------------- ------- -------------------
for row in "${rows[@]}"; do
	IFS=$'\t' read -r w metric gort_col go_col ratio verdict <<<"$row"
	if [[ $metric == skipped:* ]]; then
		printf '%-9s %s\n' "$w" "$metric"
	else
		row "$w" "$metric" "$gort_col" "$go_col" "$ratio" "$verdict"
	fi
done
exit 0
