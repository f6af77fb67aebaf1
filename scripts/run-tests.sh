#!/usr/bin/env bash
# scripts/run-tests.sh: run check suites one after another; VALGRIND=1 runs them under memcheck.
#
# Each suite is a binary that exits nonzero on failure. Output of a passing suite is
# summarised in one line; a failing one is shown whole.
set -u
fail=0
for t in "$@"; do
	name=$(basename "$t")
	log=$(mktemp)
	start=$(date +%s)
	if [ "${VALGRIND:-0}" = 1 ]; then
		# Each test in its own forked child, as natively (memcheck follows
		# the fork). Not CK_FORK=no: there a check failing on a goroutine's
		# thread longjmps into the runner's frames on the main thread's
		# stack, and that thread (its g_tls still the goroutine) runs the
		# rest of the suite while main is still blocked in gort_run -- the
		# "stack overflow" aborts of test-preempt and test-syscall.
		# --fair-sched=yes: valgrind runs one thread at a time, and its
		# default lock lets a spinning goroutine's thread take it back
		# again and again, starving sysmon and the killer (test-task's
		# shutdown of a spinning task hung 3 runs in 3 without it).
		CK_DEFAULT_TIMEOUT=600 GORT_VALGRIND=1 valgrind --fair-sched=yes --quiet --error-exitcode=99 \
			--leak-check=full --errors-for-leak-kinds=definite --track-origins=no \
			--suppressions=tests/valgrind.supp "$t" >"$log" 2>&1
	else
		"$t" >"$log" 2>&1
	fi
	rc=$?
	secs=$(( $(date +%s) - start ))
	if [ $rc -eq 0 ]; then
		printf 'PASS %-24s %3ss  %s\n' "$name" "$secs" "$(grep -E '^[0-9]+%' "$log" | tail -1)"
	else
		printf 'FAIL %-24s %3ss  (exit %d)\n' "$name" "$secs" "$rc"
		sed 's/^/    /' "$log"
		fail=1
	fi
	rm -f "$log"
done
exit $fail
