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

# machine_for BOARD: sets the M_* variables describing how to emulate BOARD,
# from its descriptor boards/BOARD.conf (RUST_TARGET, RAM_MB and the
# QEMU_SYSTEM_* / QEMU_KERNEL_PKG / QEMU_BUSYBOX_PKG / QEMU_NIC_* keys, see
# boards/README.md). The shorthands mipsel, armv7 and aarch64 name one board of
# each CPU family that Debian ships a qemu-bootable kernel for; without a
# boards/ directory they fall back to the same values built in here.
machine_for() {
	local board=$1
	case $board in
	mipsel) board=ramips ;;
	armv7) board=turris-omnia ;;
	aarch64) board=turris-mox ;;
	esac
	local desc=$ROOT/boards/$board.conf
	local target ram arch machine cpu kernel busybox modules nic
	if [ -f "$desc" ]; then
		target=$(board_field "$desc" RUST_TARGET)
		ram=$(board_field "$desc" RAM_MB)
		arch=$(board_field "$desc" QEMU_SYSTEM_ARCH)
		machine=$(board_field "$desc" QEMU_SYSTEM_MACHINE)
		cpu=$(board_field "$desc" QEMU_SYSTEM_CPU)
		kernel=$(board_field "$desc" QEMU_KERNEL_PKG)
		busybox=$(board_field "$desc" QEMU_BUSYBOX_PKG)
		modules=$(board_field "$desc" QEMU_NIC_MODULES)
		nic=$(board_field "$desc" QEMU_NIC_DEVICE)
		[ -n "$arch" ] || die "board '$board' has no full-system emulation (QEMU_SYSTEM_ARCH is empty in boards/$board.conf)"
	else
		# The values checked by hand (DESIGN.md), for a tree without boards/.
		case $board in
		ramips) target=mipsel-unknown-linux-musl ram=64 arch=mipsel machine=malta cpu=24Kc \
			kernel=linux-image-4kc-malta:mipsel modules="mii pcnet32" nic=pcnet,romfile= ;;
		turris-omnia) target=armv7-unknown-linux-musleabihf ram=1024 arch=arm machine=virt,highmem=off \
			cpu=cortex-a15 kernel=linux-image-armmp:armhf modules="virtio_mmio virtio_net" nic=virtio-net-device ;;
		turris-mox) target=aarch64-unknown-linux-musl ram=512 arch=aarch64 machine=virt cpu=cortex-a53 \
			kernel=linux-image-arm64:arm64 modules="virtio_mmio virtio_net" nic=virtio-net-device ;;
		*) die "unknown board '$board': use mipsel, armv7, aarch64 or a board with a boards/<name>.conf" ;;
		esac
		busybox=busybox-static:${kernel#*:}
	fi
	M_BOARD=$board
	M_TARGET=$target
	M_RAM=${NUVOL_QEMU_RAM_MB:-${ram:-64}}
	M_QEMU=qemu-system-$arch
	M_KERNEL_PKG=${kernel%%:*}
	M_DEBARCH=${kernel#*:}
	M_BUSYBOX_PKG=$busybox
	read -r -a M_MODULES <<<"$modules"
	M_NIC=$nic
	M_MACHINE=(-M "$machine" -cpu "$cpu")
	case $machine in
	malta*)
		# malta comes with a VGA card; the routers it stands for are headless.
		M_MACHINE+=(-vga none)
		M_CONSOLE=ttyS0
		;;
	*) M_CONSOLE=ttyAMA0 ;;
	esac
	M_PARTS=$CACHE/$M_DEBARCH
}

# board_field FILE KEY: value of `KEY="value"` (or KEY=value) in a board
# descriptor, quotes stripped; empty when absent.
board_field() {
	sed -n -E "s/^[[:space:]]*$2=\"?([^\"]*)\"?[[:space:]]*\$/\1/p" "$1" | head -n1
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
