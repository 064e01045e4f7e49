#!/usr/bin/env bash
# qemu/initramfs.sh BOARD: build the initramfs an emulated BOARD boots into and
# print its path. It holds busybox-static of the board's architecture, the NIC
# driver modules of the Debian kernel (with their dependencies, in load order),
# the board's static nuvol, qemu/init as /init, and /www/cgi-bin/nuvol for
# busybox httpd.
#
# Which nuvol goes in, first match wins:
#   $NUVOL_BIN                        an explicit binary for this board
#   dist/BOARD/nuvol                  what ./build.sh BOARD produced
#   dist/B/nuvol                      for a board B with the same Rust target
#   a cross-build of its own          cargo zigbuild into target-qemu/
#                                     (NUVOL_QEMU_BUILD=never reuses the last one)
set -euo pipefail
# shellcheck source=qemu/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# nuvol_for_board: path of the static nuvol for the current M_* board.
nuvol_for_board() {
	if [ -n "${NUVOL_BIN:-}" ]; then
		[ -x "$NUVOL_BIN" ] || die "NUVOL_BIN=$NUVOL_BIN is not an executable"
		printf '%s\n' "$NUVOL_BIN"
		return
	fi
	if [ -x "$ROOT/dist/$M_BOARD/nuvol" ]; then
		printf '%s\n' "$ROOT/dist/$M_BOARD/nuvol"
		return
	fi
	local desc b
	for desc in "$ROOT"/boards/*.conf; do
		[ -f "$desc" ] || continue
		b=$(basename "$desc" .conf)
		if [ -x "$ROOT/dist/$b/nuvol" ] && [ "$(board_field "$desc" RUST_TARGET)" = "$M_TARGET" ]; then
			printf '%s\n' "$ROOT/dist/$b/nuvol"
			return
		fi
	done
	cross_build
}

# cross_build: static nuvol for $M_TARGET with the flags DESIGN.md lists,
# in a target dir of our own so it never waits on anyone else's build.
cross_build() {
	local tdir=${NUVOL_QEMU_TARGET_DIR:-$ROOT/target-qemu}
	local std=()
	case $M_TARGET in
	aarch64-* | x86_64-*) ;; # rustup ships std for these
	*) std=("-Zbuild-std=std,panic_abort") ;;
	esac
	local log=$tdir/qemu-build-$M_TARGET.log
	mkdir -p "$tdir"
	local bin=$tdir/$M_TARGET/release/nuvol
	if [ "${NUVOL_QEMU_BUILD:-auto}" = never ] && [ -x "$bin" ]; then
		printf '%s\n' "$bin"
		return
	fi
	say "cross-building nuvol for $M_TARGET (no dist/$M_BOARD/nuvol yet), log in ${log#"$ROOT"/}"
	if ! (cd "$ROOT" && CARGO_TARGET_DIR=$tdir RUSTC_BOOTSTRAP=1 \
		RUSTFLAGS="-C link-self-contained=no -C target-feature=+crt-static" \
		nice -n 10 cargo zigbuild --release -p nuvol --target "$M_TARGET" "${std[@]}") >"$log" 2>&1; then
		tail -n 20 "$log" >&2
		die "cross-build for $M_TARGET failed (NUVOL_QEMU_BUILD=never boots the last one built)"
	fi
	printf '%s\n' "$tdir/$M_TARGET/release/nuvol"
}

# module_order NAME...: the .ko paths (relative to the modules dir) of NAMEs
# and everything they depend on, dependencies first, builtins skipped. Reads
# the `depends=` field of each module's .modinfo, so no depmod is needed.
module_order() {
	local moddir=$1
	shift
	declare -A seen=()
	local order=()
	visit() {
		local name=${1//-/_}
		[ -n "${seen[$name]:-}" ] && return
		seen[$name]=1
		local file
		file=$(find "$moddir/kernel" -name "$name.ko" -o -name "${name//_/-}.ko" | head -n1)
		if [ -z "$file" ]; then
			grep -q "/$name.ko$" "$moddir/modules.builtin" && return
			die "module $name is neither in $moddir nor built in"
		fi
		local deps dep
		deps=$(tr '\0' '\n' <"$file" | sed -n 's/^depends=//p' | head -n1)
		for dep in ${deps//,/ }; do
			visit "$dep"
		done
		order+=("${file#"$moddir"/}")
	}
	local m
	for m in "$@"; do
		visit "$m"
	done
	printf '%s\n' "${order[@]}"
}

main() {
	[ $# -eq 1 ] || die "usage: qemu/initramfs.sh BOARD"
	machine_for "$1"
	[ -f "$M_PARTS/.done" ] || "$QEMU_DIR/fetch.sh" "$1"
	command -v cpio >/dev/null || die "cpio is needed to pack the initramfs (apt-get install cpio)"
	local nuvol
	nuvol=$(nuvol_for_board)
	[ -x "$nuvol" ] || die "no nuvol binary at $nuvol"

	local out=$CACHE/out/$M_BOARD
	# A tree per process: two runs for the same board must not mix files.
	local tree=$out/tree.$$
	rm -rf "$tree"
	mkdir -p "$tree"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,etc,var/run,var/lib/nuvol,www/cgi-bin,lib/modules}
	cp "$M_PARTS/root/bin/busybox" "$tree/bin/busybox"
	cp "$nuvol" "$tree/bin/nuvol"
	ln -s /bin/nuvol "$tree/www/cgi-bin/nuvol"
	install -m 0755 "$QEMU_DIR/init" "$tree/init"

	local moddir ko
	moddir=$(echo "$M_PARTS"/root/lib/modules/*)
	: >"$tree/etc/modules.load"
	while read -r ko; do
		cp "$moddir/$ko" "$tree/lib/modules/"
		basename "$ko" >>"$tree/etc/modules.load"
	done < <(module_order "$moddir" "${M_MODULES[@]}")
	printf 'root:x:0:0:root:/:/bin/sh\n' >"$tree/etc/passwd"
	printf 'root:x:0:\n' >"$tree/etc/group"
	printf '%s\n' "$M_BOARD" >"$tree/etc/board"

	(cd "$tree" && find . -print0 | LC_ALL=C sort -z |
		cpio --quiet -o -0 -H newc --owner=0:0) | gzip -6 >"$out/initramfs.cpio.gz.tmp.$$"
	mv "$out/initramfs.cpio.gz.tmp.$$" "$out/initramfs.cpio.gz"
	rm -rf "$tree"
	say "initramfs for $M_BOARD: $(du -k "$out/initramfs.cpio.gz" | cut -f1) KiB, nuvol from ${nuvol#"$ROOT"/}"
	printf '%s\n' "$out/initramfs.cpio.gz"
}

main "$@"
