#!/usr/bin/env bash
# The board descriptors and build.sh's failure modes, without compiling:
# every board file is complete and names a real Rust target and QEMU CPU;
# a bad board name, a missing tool and a missing ImageBuilder each give one
# clear line and a non-zero exit; the shell scripts pass shellcheck.
set -u
. "$(dirname "$0")/../lib/common.sh"
cd "$ROOT" || exit 1

EXPECTED="alix ath79 galileo ramips rpi1 rpi3 rpi4 turris-mox turris-omnia x86-64"
t_check "the ten boards are there" [ "$(./build.sh list | tr '\n' ' ' | sed 's/ $//')" = "$EXPECTED" ]

TARGETS=$(rustc --print target-list 2>/dev/null)
descriptor_ok() {
	local b=$1 key
	(
		t_board "$b" || exit 1
		[ "$BOARD" = "$b" ] || { echo "$b: BOARD=$BOARD"; exit 1; }
		for key in DESCRIPTION RUST_TARGET OPENWRT_TARGET QEMU_USER_ARCH QEMU_USER_CPU RAM_MB FLASH_MB SIZE_BUDGET_KIB GOSSIP_PROFILE QUIRKS; do
			[ -n "${!key:-}" ] || { echo "$b: $key is empty"; exit 1; }
		done
		grep -qx "$RUST_TARGET" <<<"$TARGETS" || { echo "$b: rustc has no target $RUST_TARGET"; exit 1; }
		[[ $SIZE_BUDGET_KIB =~ ^[0-9]+$ && $RAM_MB =~ ^[0-9]+$ && $FLASH_MB =~ ^[0-9]+$ ]] || { echo "$b: non-numeric size"; exit 1; }
		case $GOSSIP_PROFILE in lan | wan) ;; *) echo "$b: profile $GOSSIP_PROFILE"; exit 1 ;; esac
		case $CARGO_FEATURES in "" | http | heavy,http) ;; *) echo "$b: features $CARGO_FEATURES"; exit 1 ;; esac
		# The CPU must be one qemu-user knows, or the CPU check would be void.
		if command -v "qemu-$QEMU_USER_ARCH-static" >/dev/null; then
			"qemu-$QEMU_USER_ARCH-static" -cpu help | grep -qiw -- "$QEMU_USER_CPU" ||
				{ echo "$b: qemu-$QEMU_USER_ARCH-static has no cpu $QEMU_USER_CPU"; exit 1; }
		fi
		# Full-system keys come as a set or not at all.
		if [ -n "$QEMU_SYSTEM_ARCH" ]; then
			for key in QEMU_SYSTEM_MACHINE QEMU_SYSTEM_CPU QEMU_KERNEL_PKG QEMU_BUSYBOX_PKG QEMU_NIC_MODULES QEMU_NIC_DEVICE; do
				[ -n "${!key:-}" ] || { echo "$b: $key empty while QEMU_SYSTEM_ARCH is set"; exit 1; }
			done
		fi
	)
}
for b in $EXPECTED; do
	t_check "descriptor $b is complete and names real targets" descriptor_ok "$b"
done

# The starting budgets of issue 2, for the base features.
budget_ok() {
	(
		t_board "$1"
		case $RUST_TARGET in
		mips*) limit=1300 ;;
		*) limit=900 ;;
		esac
		[[ $CARGO_FEATURES == *heavy* ]] || [ "$SIZE_BUDGET_KIB" -le "$limit" ]
	)
}
for b in $EXPECTED; do
	t_check "base-feature budget of $b is within the issue's limit" budget_ok "$b"
done
t_check "galileo has no opkg arch and names its quirks" \
	bash -c '. boards/galileo.conf; [ -z "$OPENWRT_ARCH" ] && [[ $QUIRKS == *LOCK* ]] && [[ $QUIRKS == *MMX* ]]'

# one_line_failure EXPECTED-TEXT CMD...: fails non-zero with exactly one line.
one_line_failure() {
	local want=$1 out rc
	shift
	out=$("$@" 2>&1 </dev/null)
	rc=$?
	echo "exit $rc: $out"
	[ "$rc" -ne 0 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && [[ $out == *"$want"* ]]
}
t_check "bad board name: one line, exit 100" one_line_failure "unknown board 'nosuch'" ./build.sh nosuch
t_check "a bad name among good ones fails before building" one_line_failure "unknown board 'typo'" ./build.sh alix typo
t_check "missing cargo: one line" one_line_failure "cargo/rustup not found" env PATH=/usr/bin:/bin bash ./build.sh alix
t_check "missing ImageBuilder: one line" one_line_failure "no OpenWRT ImageBuilder" ./build.sh image ramips --imagebuilder /nonexistent
t_check "image without --imagebuilder: one line" one_line_failure "--imagebuilder PATH is required" ./build.sh image ramips
t_check "unknown option: one line" one_line_failure "unknown option" ./build.sh --frobnicate
# A missing tool that cannot be installed (NUVOL_NO_INSTALL) names itself.
mkdir_fake_path() {
	local d
	t_tmpdir d nopath
	# Everything build.sh needs except zig and cargo-zigbuild.
	for c in bash sed awk grep tr cat id tar gzip make file cargo rustup rustc mkdir cp rm stat find sort head tail paste printf chmod env dirname seq sleep timeout nice date git python3 uname; do
		p=$(command -v "$c") && ln -s "$p" "$d/$c"
	done
	FAKE_PATH=$d
}
mkdir_fake_path
t_check "missing cargo-zigbuild with NUVOL_NO_INSTALL: one line" one_line_failure "not found" \
	env PATH="$FAKE_PATH" NUVOL_NO_INSTALL=1 NUVOL_BUILDER=zigbuild ./build.sh alix

if command -v shellcheck >/dev/null; then
	t_check "shellcheck build.sh and the test scripts" shellcheck -x -S warning -e SC1091 build.sh tests/run.sh tests/lib/common.sh \
		tests/suite/*.sh qemu/*.sh qemu/init openwrt-feed/net/nuvol/files/nuvol.init openwrt-feed/net/nuvol/files/nuvol.uci-defaults
else
	echo "note: shellcheck not installed, lint check left out"
fi
t_done
