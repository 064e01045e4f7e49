# shellcheck shell=bash
# shellcheck disable=SC2034 # the M_* and path variables are for the scripts that source this
# Shared by the qemu/ scripts: where things live, which emulated machine runs
# which board, and a private apt that fetches foreign-architecture packages
# without touching the host's dpkg state (installing qemu-system-* would
# conflict with the host's newer qemu-utils, and dpkg --add-architecture would
# make every later `apt-get update` on this machine four times slower).

QEMU_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$QEMU_DIR/.." && pwd)
# .cache is gitignored: kernels, busybox and qemu itself never get committed.
CACHE=${NUVOL_QEMU_CACHE:-$ROOT/.cache/qemu}
DEBIAN_MIRROR=${NUVOL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SUITE=${NUVOL_DEBIAN_SUITE:-bookworm}

say() { printf '[qemu] %s\n' "$*" >&2; }
die() {
	printf '[qemu] error: %s\n' "$*" >&2
	exit 1
}

# machine_for BOARD: sets the M_* variables describing how to emulate BOARD.
# BOARD is a shorthand (mipsel, armv7, aarch64) or a boards/<name> descriptor
# whose Rust target picks the machine, so every board of a CPU family boots on
# the one qemu machine Debian ships a kernel for. virt has no cortex-a9 (the
# Turris Omnia's core); the a15 runs the same armv7 code, and qemu-user checks
# the exact a9 elsewhere.
machine_for() {
	local board=$1 target=""
	M_BOARD=$board
	M_RAM=64
	case $board in
	mipsel) target=mipsel-unknown-linux-musl ;;
	armv7) target=armv7-unknown-linux-musleabihf ;;
	aarch64) target=aarch64-unknown-linux-musl ;;
	*)
		local desc=$ROOT/boards/$board
		[ -f "$desc" ] || die "unknown board '$board': use mipsel, armv7, aarch64 or a file in boards/"
		target=$(board_field "$desc" target)
		local ram
		ram=$(board_field "$desc" ram_mb)
		[ -n "$ram" ] && M_RAM=$ram
		;;
	esac
	M_TARGET=$target
	case $target in
	mipsel-*)
		M_DEBARCH=mipsel
		M_KERNEL_PKG=linux-image-4kc-malta
		M_QEMU=qemu-system-mipsel
		M_MACHINE=(-M malta -cpu 24Kc -vga none)
		# romfile= : the pcnet option ROM is a PXE loader nobody needs here.
		M_NIC=pcnet,romfile=
		M_CONSOLE=ttyS0
		M_MODULES=(pcnet32)
		;;
	armv7-* | arm-*)
		M_DEBARCH=armhf
		M_KERNEL_PKG=linux-image-armmp
		M_QEMU=qemu-system-arm
		# shellcheck disable=SC2054 # -M takes one comma-separated value
		M_MACHINE=(-M virt,highmem=off -cpu cortex-a15)
		M_NIC=virtio-net-device
		M_CONSOLE=ttyAMA0
		M_MODULES=(virtio_mmio virtio_net)
		;;
	aarch64-*)
		M_DEBARCH=arm64
		M_KERNEL_PKG=linux-image-arm64
		M_QEMU=qemu-system-aarch64
		M_MACHINE=(-M virt -cpu cortex-a53)
		M_NIC=virtio-net-device
		M_CONSOLE=ttyAMA0
		M_MODULES=(virtio_mmio virtio_net)
		;;
	*) die "board '$board' has target '$target', which no qemu machine here emulates" ;;
	esac
	M_PARTS=$CACHE/$M_DEBARCH
}

# board_field FILE KEY: value of `KEY=value` or `KEY: value` in a board
# descriptor, quotes stripped; empty when absent.
board_field() {
	sed -n -E "s/^[[:space:]]*$2[[:space:]]*[=:][[:space:]]*\"?([^\"#]*)\"?.*/\1/p" "$1" | head -n1 | sed 's/[[:space:]]*$//'
}

# apt wrapper bound to the private state under $CACHE/apt.
papt() {
	local tool=$1
	shift
	"$tool" \
		-o Dir::State::Lists="$CACHE/apt/lists" \
		-o Dir::Cache="$CACHE/apt/cache" \
		-o Dir::Etc::SourceList="$CACHE/apt/sources.list" \
		-o Dir::Etc::SourceParts=/nonexistent \
		-o APT::Architectures::=amd64 -o APT::Architectures::=armhf \
		-o APT::Architectures::=arm64 -o APT::Architectures::=mipsel \
		-o Acquire::Languages=none -o APT::Sandbox::User=root \
		"$@"
}

# The extracted qemu 7.2 and the libraries it needs that the host lacks.
qemu_bin() {
	local bin=$CACHE/host/usr/bin/$1
	[ -x "$bin" ] || die "$1 not fetched: run qemu/fetch.sh"
	printf '%s\n' "$bin"
}
qemu_env() {
	export LD_LIBRARY_PATH=$CACHE/host/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
}
