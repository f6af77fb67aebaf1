#!/usr/bin/env bash
# scripts/check-aarch64.sh: cross-compile the core tests for aarch64 and run them under qemu-user.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/aarch64
mkdir -p "$out"
CC=aarch64-linux-gnu-gcc
CFLAGS="-O2 -g -Wall -Wextra -Werror -Iarch -Iinclude"
$CC $CFLAGS tests/arch-selftest.c arch/aarch64.S -o "$out/arch-selftest" -static
if qemu-aarch64-static "$out/arch-selftest" > "$out/arch-selftest.log" 2>&1; then
	echo "PASS arch-selftest (aarch64, qemu)"
else
	cat "$out/arch-selftest.log"
	echo "FAIL arch-selftest (aarch64, qemu)"
	exit 1
fi
