#!/usr/bin/env bash
# Boots one emulated board (mipsel by default; NUVOL_QEMU_TEST_BOARD=armv7 or
# aarch64 for the others) from an initramfs built on the spot, and passes when
# its console shows `nuvol --version`, the agent's first log line and a
# working command channel. The boot itself is bounded by 180 s.
# Exit 77 only where qemu-system cannot run on this host.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
board=${NUVOL_QEMU_TEST_BOARD:-mipsel}
cache=${NUVOL_QEMU_CACHE:-$root/.cache/qemu}

skip() {
	echo "skipped: $*"
	exit 77
}

[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || skip "the qemu-system packages fetched here are Debian amd64; this host is $(uname -s)-$(uname -m)"
if ! command -v dpkg-deb >/dev/null || ! command -v apt-get >/dev/null; then
	skip "no dpkg-deb/apt-get to unpack Debian's qemu-system and kernels"
fi
if [ ! -f "$cache/host/.done" ] && ! timeout 15 bash -c ': </dev/tcp/deb.debian.org/80' 2>/dev/null; then
	skip "qemu-system is not cached and deb.debian.org is unreachable"
fi
"$root/qemu/fetch.sh" "$board" || {
	echo "FAIL: qemu/fetch.sh $board"
	exit 1
}
if ! out=$(LD_LIBRARY_PATH=$cache/host/usr/lib/x86_64-linux-gnu "$cache/host/usr/bin/qemu-system-mipsel" --version 2>&1); then
	skip "qemu-system cannot run on this host: $out"
fi

NUVOL_QEMU_BOOT_TIMEOUT=180 timeout 1800 "$root/qemu/run.sh" boot "$board"
rc=$?
[ $rc -eq 0 ] && exit 0
echo "FAIL: qemu/run.sh boot $board exited $rc"
exit 1
