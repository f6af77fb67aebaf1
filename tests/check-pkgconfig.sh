#!/usr/bin/env bash
# tests/check-pkgconfig.sh: an embedding program built against libgort.a with only what `pkg-config --static gort` says, then run.
#
# Usage: tests/check-pkgconfig.sh BUILD_DIR. Two links of examples/hello.c: the
# runtime static and the system libraries shared (libgort.a named explicitly, the
# rest from --static --libs), and everything static (cc -static). Either fails
# when gort.pc's Libs.private lacks a library libgort.a needs (io_uring, libdl,
# pthread). Each binary must run and print hello's result.
set -u
build=${1:?usage: $0 BUILD_DIR}
cc=${CC:-cc}
export PKG_CONFIG_PATH="$build/lib/pkgconfig"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fail=0
want='8 goroutines computed squares 0..7, sum 140'

cflags=$(pkg-config --cflags gort) || { echo "FAIL pkg-config: no gort.pc in $build/lib/pkgconfig"; exit 1; }
libs=$(pkg-config --static --libs gort) || exit 1
libdir=$(pkg-config --variable=libdir gort)

try() { # name, then the link command
	local name=$1
	shift
	if ! "$@" >"$out/$name.log" 2>&1; then
		echo "FAIL pkg-config $name: link failed: $*"
		sed 's/^/    /' "$out/$name.log"
		fail=1
		return
	fi
	# no libgort.so may be needed at run time: the runtime is inside
	if ldd "$out/$name" 2>/dev/null | grep -q libgort; then
		echo "FAIL pkg-config $name: linked libgort.so, not libgort.a"
		fail=1
		return
	fi
	local got
	got=$(timeout 60 "$out/$name" 2>&1)
	local rc=$?
	if [ $rc -ne 0 ] || ! grep -qxF "$want" <<<"$got"; then
		echo "FAIL pkg-config $name: exit $rc, output:"
		sed 's/^/    /' <<<"$got"
		fail=1
		return
	fi
	echo "PASS pkg-config $name"
}

# libgort.a itself instead of -lgort (which prefers libgort.so), the rest as given
# shellcheck disable=SC2086
try static-runtime $cc $cflags -o "$out/static-runtime" examples/hello.c \
	$(sed "s|-lgort\\b|$libdir/libgort.a|" <<<"$libs")
# everything static: -lgort finds only libgort.a (glibc warns that dlopen needs
# its shared libraries at run time: expected, the module loader is not used)
# shellcheck disable=SC2086
try static-all $cc -static $cflags -o "$out/static-all" examples/hello.c $libs
exit $fail
