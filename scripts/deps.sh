#!/usr/bin/env bash
# scripts/deps.sh: install the Debian packages gort's build, tests and benchmarks need, when missing.
#
# As root it runs apt-get; otherwise it prints the one command to run and fails.
# Quiet and fast when everything is already there, so every make target can call it.
set -euo pipefail

pkgs=(
	build-essential pkg-config
	liburing-dev libsystemd-dev libprotobuf-c-dev protobuf-c-compiler check
	clang libclang-rt-14-dev libfuzzer-14-dev valgrind
	gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static
	golang-go wrk hyperfine tmux systemd jq
)
# Debian's arm64 builds (multiarch), which the core suites link when
# scripts/check-aarch64.sh cross-compiles them to run under qemu-user.
foreign_arch=arm64
pkgs+=(check:arm64 libsubunit-dev:arm64 liburing-dev:arm64)
native=$(dpkg --print-architecture)

missing=()
for p in "${pkgs[@]}"; do
	# an unqualified name is the native (or arch: all) package, never another arch's
	want="$native|all"
	[[ $p == *:* ]] && want=${p#*:}
	dpkg-query -W -f='${Status} ${Architecture}\n' "$p" 2>/dev/null |
		grep -E "^install ok installed ($want)\$" >/dev/null || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "gort: missing packages; run: sudo dpkg --add-architecture $foreign_arch &&" \
		"sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
	exit 1
fi

echo "gort: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
dpkg --print-foreign-architectures | grep -qx "$foreign_arch" || dpkg --add-architecture "$foreign_arch"
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
