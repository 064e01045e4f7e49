#!/usr/bin/env bash
# qemu/fetch.sh [BOARD...]: fetch and unpack, once, everything the emulated
# boards need from Debian's archive: qemu-system 7.2 (unpacked, not installed,
# with the runtime libraries the host lacks) and, per board architecture, the
# Debian kernel with its modules and busybox-static. Safe to re-run: finished
# parts are marked with a stamp file and skipped.
set -euo pipefail
# shellcheck source=qemu/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Runtime libraries qemu-system-{arm,mips} 7.2 link against; only those the
# host does not already have get downloaded.
QEMU_PKGS=(qemu-system-arm qemu-system-mips qemu-system-data)
QEMU_LIBS=(libaio1 libbpf1 libcapstone4 libfdt1 libfuse3-3 libglib2.0-0 libgmp10
	libgnutls30 libhogweed6 libibverbs1 libjpeg62-turbo libnettle8 libnuma1
	libpixman-1-0 libpmem1 libpng16-16 librdmacm1 libsasl2-2 libseccomp2 libslirp0
	libudev1 liburing2 libvdeplug2 libzstd1 zlib1g libndctl6 libdaxctl1 libelf1 libnl-3-200 libnl-route-3-200)

apt_lists() {
	mkdir -p "$CACHE/apt/lists/partial" "$CACHE/apt/cache/archives/partial"
	# Only the main suite: bookworm-security mirrors are often mid-sync, and a
	# half-synced index makes apt fail for packages we do not even need.
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $DEBIAN_MIRROR $DEBIAN_SUITE main" \
		>"$CACHE/apt/sources.list"
	if [ -z "$(find "$CACHE/apt/lists" -maxdepth 1 -name '*mipsel_Packages*' -mtime -7 2>/dev/null)" ]; then
		say "updating the private apt index (amd64 armhf arm64 mipsel)"
		papt apt-get -qq update
	fi
}

# download_into DIR PKG...: apt-get download PKGs into DIR/debs, then unpack
# every .deb there into DIR/root.
download_into() {
	local dir=$1
	shift
	mkdir -p "$dir/debs" "$dir/root"
	(cd "$dir/debs" && papt apt-get -qq download "$@")
	local deb
	for deb in "$dir"/debs/*.deb; do
		dpkg-deb -x "$deb" "$dir/root"
	done
}

fetch_host_qemu() {
	local dir=$CACHE/host
	[ -f "$dir/.done" ] && return 0
	say "fetching qemu-system 7.2 and its missing libraries"
	rm -rf "$dir"
	local pkgs=("${QEMU_PKGS[@]}") lib
	for lib in "${QEMU_LIBS[@]}"; do
		if ! dpkg-query -W -f='${Status}' "$lib" 2>/dev/null | grep -q 'ok installed'; then
			pkgs+=("$lib")
		fi
	done
	download_into "$dir" "${pkgs[@]}"
	# dpkg-deb -x gives usr/bin, usr/lib/x86_64-linux-gnu, usr/share/qemu, and
	# lib/x86_64-linux-gnu for the packages not yet moved to /usr (libnl).
	mv "$dir/root/usr" "$dir/usr"
	if [ -d "$dir/root/lib" ]; then
		cp -a "$dir/root/lib/." "$dir/usr/lib/"
	fi
	rm -rf "$dir/root" "$dir/debs"
	qemu_env
	local bin missing
	for bin in qemu-system-arm qemu-system-aarch64 qemu-system-mipsel; do
		missing=$(ldd "$dir/usr/bin/$bin" | grep 'not found' || true)
		[ -z "$missing" ] || die "$bin still misses libraries: $missing"
	done
	"$dir/usr/bin/qemu-system-arm" --version | head -n1 >&2
	touch "$dir/.done"
}

fetch_arch() {
	local dir=$M_PARTS
	[ -f "$dir/.done" ] && return 0
	say "fetching the $M_DEBARCH kernel, its modules and busybox-static"
	rm -rf "$dir"
	# linux-image-armmp and friends are metapackages; the kernel is their
	# versioned dependency (linux-image-6.1.0-N-armmp).
	local real
	real=$(papt apt-cache depends "$M_KERNEL_PKG:$M_DEBARCH" |
		sed -n -E 's/^ *Depends: (linux-image-[0-9][^ ]*).*/\1/p' | head -n1)
	[ -n "$real" ] || die "cannot resolve $M_KERNEL_PKG:$M_DEBARCH to a kernel package"
	download_into "$dir" "${real%%:*}:$M_DEBARCH" "$M_BUSYBOX_PKG"
	local kernel
	kernel=$(find "$dir/root/boot" -name "vmlinuz-*" | head -n1)
	[ -n "$kernel" ] || die "no kernel image in ${real}"
	ln -sf "${kernel#"$dir"/}" "$dir/kernel"
	[ -x "$dir/root/bin/busybox" ] || die "$M_BUSYBOX_PKG has no /bin/busybox"
	rm -rf "$dir/debs"
	touch "$dir/.done"
}

main() {
	local boards=("$@")
	[ ${#boards[@]} -gt 0 ] || boards=(mipsel armv7 aarch64)
	command -v dpkg-deb >/dev/null || die "dpkg-deb is needed (Debian/Ubuntu host)"
	apt_lists
	fetch_host_qemu
	local b
	for b in "${boards[@]}"; do
		machine_for "$b"
		fetch_arch
	done
	say "parts ready in $CACHE"
}

main "$@"
