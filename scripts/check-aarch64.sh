#!/usr/bin/env bash
# scripts/check-aarch64.sh: cross-compile the core tests for aarch64 and run them under qemu-user.
#
# The runtime's objects, arch/aarch64.S and each core suite are built by the
# Makefile's own rules (same sources, same -Wall -Wextra -Werror) with the cross
# compiler into build/aarch64, linked against Debian's arm64 libcheck, and run
# one after another under qemu-aarch64-static. At run time they use Debian's
# arm64 glibc, loader and libraries (/lib/aarch64-linux-gnu: the multiarch
# packages that scripts/deps.sh installs), one consistent set, rather than the
# cross toolchain's copy of glibc mixed with them.
#
# Emulation is slow: workloads shrink by GORT_TEST_SCALE (default 100 here), and
# a test case that sets no timeout of its own gets CK_DEFAULT_TIMEOUT (default 60
# s here) instead of check's 4 s. The suites see GORT_TEST_QEMU=1, so that a
# check that cannot work under qemu-user can be skipped there, saying why.
set -euo pipefail
cd "$(dirname "$0")/.."

# The core suites: the scheduler and what it is built from. Suites that need
# io_uring (qemu-user has none) or a daemon are not among them.
core=(proc chan select sync timer sysmon preempt)

out=build/aarch64
cross=aarch64-linux-gnu-gcc
qemu=qemu-aarch64-static
multiarch_pc=/usr/lib/aarch64-linux-gnu/pkgconfig

for tool in "$cross" "$qemu"; do
	command -v "$tool" >/dev/null || { echo "check-aarch64: $tool missing; run scripts/deps.sh" >&2; exit 1; }
done
# Only -l: the cross compiler already searches the multiarch directory, after its own sysroot.
if ! check_libs=$(PKG_CONFIG_LIBDIR=$multiarch_pc pkg-config --static --libs-only-l check); then
	echo "check-aarch64: no arm64 libcheck (check:arm64); run scripts/deps.sh" >&2
	exit 1
fi

suites=()
absent=()
for s in "${core[@]}"; do
	if [ -f "tests/test-$s.c" ]; then
		suites+=("$out/tests/test-$s")
	else
		absent+=("test-$s")
	fi
done

mkdir -p "$out"
# the standalone arch test needs nothing but arch/: static, as its header says
$cross -O2 -g -Wall -Wextra -Werror -Iarch -Iinclude tests/arch-selftest.c arch/aarch64.S \
	-o "$out/arch-selftest" -static
# A fresh make, not the caller's: none of its variables or jobserver apply to this build.
mk() {
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make BUILD="$out" CC="$cross" SAN= OPT=-O2 \
		EXTRA_CFLAGS= CHECK_LIBS="$check_libs" "$@"
}
# Relinked each time, so that a suite that no longer builds leaves no binary behind;
# -k: it is reported below, and the others still run.
rm -f "${suites[@]}"
mk -s -k -j"$(nproc)" "${suites[@]}" || true

export GORT_TEST_SCALE=${GORT_TEST_SCALE:-100}
export CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-60}
export GORT_TEST_QEMU=1
unset QEMU_LD_PREFIX

[ ${#absent[@]} -eq 0 ] || echo "aarch64: core suites not written yet: ${absent[*]}"
fail=0
for t in "$out/arch-selftest" "${suites[@]}"; do
	name=$(basename "$t")
	log=$out/$name.log
	start=$(date +%s)
	if [ ! -x "$t" ]; then
		printf 'FAIL %-24s       (does not build for aarch64: see the errors above)\n' "$name (aarch64)"
		fail=1
		continue
	fi
	rc=0
	"$qemu" "$t" >"$log" 2>&1 || rc=$?
	secs=$(( $(date +%s) - start ))
	if [ $rc -eq 0 ]; then
		summary=$(grep -E '^[0-9]+%: Checks' "$log" | tail -1 || true)
		printf 'PASS %-24s %3ss  %s\n' "$name (aarch64)" "$secs" "${summary:-$(tail -1 "$log")}"
	else
		printf 'FAIL %-24s %3ss  (exit %d, qemu-user, GORT_TEST_SCALE=%s)\n' "$name (aarch64)" \
			"$secs" "$rc" "$GORT_TEST_SCALE"
		sed 's/^/    /' "$log"
		fail=1
	fi
done
exit $fail
