#!/usr/bin/env bash
# build.sh: cross-compile nuvol for every board, package it for opkg and apk,
# print the size table; make a signed package feed; run a local demo
# microcloud; drive an OpenWRT ImageBuilder.
#
#   ./build.sh                     build every board in boards/
#   ./build.sh BOARD...            build some boards
#   ./build.sh demo [stop]         three agents on loopback, page on :7000
#   ./build.sh image BOARD --imagebuilder PATH [options]
#   ./build.sh package BOARD...    re-package dist/BOARD/nuvol, no compiling
#   ./build.sh feed DIR [--apk-key PEM] [--usign-key KEY] [BOARD...]
#                                  a package feed of the built boards in DIR
#   ./build.sh tools               install the build tools (and build OpenWRT's
#                                  apk from ../shared/upstream), build nothing
#   ./build.sh list                the boards
#
# Output: dist/<board>/nuvol, dist/<board>/nuvol_<version>-<N>_<arch>.ipk
# (opkg, OpenWRT <= 24.10) and dist/<board>/nuvol-<version>-r<N>.apk (apk,
# OpenWRT >= 25.12, made with apk-tools 3 `apk mkpkg`).
#
# No OpenWRT SDK and no container engine needed: cargo-zigbuild (zig from
# PyPI) links static musl for every target, and std is rebuilt from source
# (-Zbuild-std) so it is optimised for size with the rest of the binary and
# so targets without a downloadable std (mips, mipsel, arm, armv7, i586)
# build at all. When a container engine answers, `cross` is used instead.
#
# Environment: CARGO_TARGET_DIR (default target/), NUVOL_DIST (default
# dist/), NUVOL_BUILDER=auto|zigbuild|cross, NUVOL_NO_INSTALL=1 (never
# install a tool, say what is missing), NUVOL_VERBOSE=1 (stream cargo's
# output instead of logging it to .cache/logs/), NUVOL_BUDGET=warn (an
# over-budget board only warns), NUVOL_NO_QEMU=1 (skip the CPU check).
#
# Exit codes: 0 ok, 1 a build, check or budget failed, 100 bad usage.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"

DIST=${NUVOL_DIST:-$ROOT/dist}
CACHE=$ROOT/.cache
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export CARGO_TARGET_DIR=$TARGET_DIR
FEED_PKG=$ROOT/openwrt-feed/net/nuvol
# Pinned versions of the tools this script installs when they are missing.
ZIG_PIP_VERSION=0.17.0
CARGO_ZIGBUILD_VERSION=0.24.1

die() {
	printf 'build.sh: %s\n' "$*" >&2
	exit 1
}
usage_die() {
	printf 'build.sh: %s\n' "$*" >&2
	exit 100
}
say() { printf '==> %s\n' "$*"; }

usage() {
	sed -n '2,/^$/s/^# \{0,1\}//p' "$0" | sed '/^$/d'
}

# ----------------------------------------------------------------- boards --

all_boards() {
	local f
	for f in "$ROOT"/boards/*.conf; do
		f=${f##*/}
		printf '%s\n' "${f%.conf}"
	done
}

# load_board BOARD: sets the descriptor's variables (see boards/README.md).
load_board() {
	local f=$ROOT/boards/$1.conf
	[ -f "$f" ] || usage_die "unknown board '$1' (boards: $(all_boards | tr '\n' ' ' | sed 's/ $//'))"
	BOARD="" RUST_TARGET="" RUST_FLAGS="" OMIT_LOCK_PREFIX="" CARGO_FEATURES="" OPENWRT_ARCH="" OPENWRT_TARGET=""
	QEMU_USER_ARCH="" QEMU_USER_CPU="" SIZE_BUDGET_KIB="" FLASH_MB=""
	# shellcheck disable=SC1090 # descriptors are plain KEY="value" lines
	. "$f"
	[ "$BOARD" = "$1" ] || die "boards/$1.conf says BOARD=\"$BOARD\""
	if [ -z "$RUST_TARGET" ] || [ -z "$SIZE_BUDGET_KIB" ]; then
		die "boards/$1.conf lacks RUST_TARGET or SIZE_BUDGET_KIB"
	fi
}

# ------------------------------------------------------------------ tools --

can_install_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ -z "${NUVOL_NO_INSTALL:-}" ]; }

# apt_install PKG...: installs Debian packages, updating the lists once if needed.
apt_install() {
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends "$@" >"$CACHE/logs/apt.log" 2>&1 ||
		{ apt-get update -q >>"$CACHE/logs/apt.log" 2>&1 &&
			apt-get install -y -q --no-install-recommends "$@" >>"$CACHE/logs/apt.log" 2>&1; }
}

# need_cmd CMD DEBIAN-PACKAGE: the command, installed from Debian if missing.
need_cmd() {
	command -v "$1" >/dev/null 2>&1 && return 0
	can_install_apt || die "$1 not found: install it (apt-get install $2)"
	say "installing $2 (for $1)"
	apt_install "$2" || die "$1 not found and 'apt-get install $2' failed (see .cache/logs/apt.log)"
	command -v "$1" >/dev/null 2>&1 || die "$1 still not found after installing $2"
}

toolchain() { sed -n 's/^channel *= *"\(.*\)"/\1/p' "$ROOT/rust-toolchain.toml"; }

ensure_rust() {
	if ! command -v cargo >/dev/null 2>&1 || ! command -v rustup >/dev/null 2>&1; then
		die "cargo/rustup not found: install Rust with rustup (https://rustup.rs); the toolchain is pinned in rust-toolchain.toml"
	fi
	local tc
	tc=$(toolchain)
	if ! rustup run "$tc" rustc --version >/dev/null 2>&1; then
		[ -z "${NUVOL_NO_INSTALL:-}" ] || die "Rust $tc not installed: rustup toolchain install $tc"
		say "installing Rust $tc (pinned in rust-toolchain.toml)"
		rustup toolchain install "$tc" --profile minimal -c rust-src,clippy,rustfmt >"$CACHE/logs/rustup.log" 2>&1 ||
			die "rustup toolchain install $tc failed (see .cache/logs/rustup.log)"
	fi
	if ! rustup component list --toolchain "$tc" --installed 2>/dev/null | grep -q '^rust-src'; then
		[ -z "${NUVOL_NO_INSTALL:-}" ] || die "rust-src missing: rustup component add rust-src --toolchain $tc"
		say "installing rust-src (std is rebuilt for every target)"
		rustup component add rust-src --toolchain "$tc" >"$CACHE/logs/rustup.log" 2>&1 ||
			die "rustup component add rust-src failed (see .cache/logs/rustup.log)"
	fi
}

# zig for cargo-zigbuild: on PATH, as the ziglang Python module, or our own
# copy in .cache/tools (pip --target: no system or venv changes needed).
ensure_zig() {
	local own=$CACHE/tools/ziglang
	if [ -x "$own/ziglang/zig" ]; then
		PATH=$CACHE/tools/bin:$PATH
		export PATH
	fi
	command -v zig >/dev/null 2>&1 && return 0
	python3 -m ziglang version >/dev/null 2>&1 && return 0
	[ -z "${NUVOL_NO_INSTALL:-}" ] || die "zig not found: pip install ziglang (cargo-zigbuild links with it)"
	command -v python3 >/dev/null 2>&1 || need_cmd python3 python3
	if ! python3 -m pip --version >/dev/null 2>&1; then
		need_cmd pip3 python3-pip
	fi
	say "installing zig $ZIG_PIP_VERSION (pip install ziglang into .cache/tools)"
	python3 -m pip install -q --disable-pip-version-check --target "$own" "ziglang==$ZIG_PIP_VERSION" \
		>"$CACHE/logs/pip.log" 2>&1 || die "pip install ziglang failed (see .cache/logs/pip.log)"
	mkdir -p "$CACHE/tools/bin"
	# A wrapper, not a symlink: zig finds its lib/ next to the real binary.
	printf '#!/bin/sh\nexec "%s" "$@"\n' "$own/ziglang/zig" >"$CACHE/tools/bin/zig"
	chmod +x "$CACHE/tools/bin/zig"
	PATH=$CACHE/tools/bin:$PATH
	export PATH
	zig version >/dev/null 2>&1 || die "zig installed into .cache/tools but does not run"
}

ensure_zigbuild() {
	command -v cargo-zigbuild >/dev/null 2>&1 && return 0
	[ -z "${NUVOL_NO_INSTALL:-}" ] || die "cargo-zigbuild not found: cargo install --locked cargo-zigbuild"
	say "installing cargo-zigbuild $CARGO_ZIGBUILD_VERSION (cargo install, a few minutes once)"
	nice -n 10 cargo install -q --locked cargo-zigbuild --version "$CARGO_ZIGBUILD_VERSION" \
		>"$CACHE/logs/cargo-install.log" 2>&1 || die "cargo install cargo-zigbuild failed (see .cache/logs/cargo-install.log)"
}

# engine_answers: a container engine that actually runs, not just its client.
engine_answers() {
	{ command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1; } ||
		{ command -v podman >/dev/null 2>&1 && timeout 10 podman info >/dev/null 2>&1; }
}

pick_builder() {
	BUILDER=${NUVOL_BUILDER:-auto}
	case $BUILDER in
	auto) if engine_answers; then BUILDER=cross; else BUILDER=zigbuild; fi ;;
	zigbuild | cross) ;;
	*) usage_die "NUVOL_BUILDER must be auto, zigbuild or cross, not '$BUILDER'" ;;
	esac
}

ensure_builder() {
	case $BUILDER in
	zigbuild)
		ensure_zig
		ensure_zigbuild
		;;
	cross)
		engine_answers || die "NUVOL_BUILDER=cross but neither 'docker info' nor 'podman info' answers"
		if ! command -v cross >/dev/null 2>&1; then
			[ -z "${NUVOL_NO_INSTALL:-}" ] || die "cross not found: cargo install --locked cross"
			say "installing cross (cargo install)"
			nice -n 10 cargo install -q --locked cross >"$CACHE/logs/cargo-install.log" 2>&1 ||
				die "cargo install cross failed (see .cache/logs/cargo-install.log)"
		fi
		;;
	esac
}

# ensure_qemu ARCH: qemu-ARCH-static, from Debian's qemu-user-static.
ensure_qemu() {
	[ -n "${NUVOL_NO_QEMU:-}" ] && return 0
	command -v "qemu-$1-static" >/dev/null 2>&1 && return 0
	can_install_apt || die "qemu-$1-static not found: apt-get install qemu-user-static (or NUVOL_NO_QEMU=1 to skip the CPU check)"
	say "installing qemu-user-static (runs each binary on its board's CPU)"
	apt_install qemu-user-static || die "apt-get install qemu-user-static failed (see .cache/logs/apt.log)"
	command -v "qemu-$1-static" >/dev/null 2>&1 || die "qemu-$1-static not found even after installing qemu-user-static"
}

ensure_tools() {
	mkdir -p "$CACHE/logs"
	need_cmd tar tar
	need_cmd gzip gzip
	need_cmd make make
	need_cmd file file
	ensure_rust
	pick_builder
	ensure_builder
	find_apk
}

# ------------------------------------------------------------------ build --

workspace_version() {
	awk '/^\[workspace.package\]/{p=1;next} /^\[/{p=0} p&&/^version *=/{gsub(/[" ]/,"",$0); sub(/^version=/,""); print; exit}' "$ROOT/Cargo.toml"
}
feed_var() { sed -n "s/^$1:=//p" "$FEED_PKG/Makefile" | head -1; }

# cargo_build TARGET FEATURES LOG [RUST_FLAGS]: a release build of the nuvol
# binary; RUST_FLAGS are the board descriptor's own code-generation flags.
cargo_build() {
	local target=$1 features=$2 log=$3 board_flags=${4:-}
	local -a cmd
	# A board gets exactly the features its descriptor lists: routers serve
	# the page as CGI under uhttpd and leave the built-in server (http) out.
	local -a feat=(--no-default-features)
	[ -z "$features" ] || feat+=(--features "$features")
	# shellcheck disable=SC2054 # std,panic_abort is one argument
	if [ "$BUILDER" = cross ]; then
		# cross links with the image's musl gcc, static by default for musl.
		cmd=(cross build --release -p nuvol --target "$target" -Zbuild-std=std,panic_abort "${feat[@]}")
		export CROSS_BUILD_ENV_PASSTHROUGH=RUSTC_BOOTSTRAP
		export RUSTFLAGS="-C target-feature=+crt-static"
	else
		# zig's linker provides musl's crt and libc; rustc must not add its own.
		cmd=(cargo zigbuild --release -p nuvol --target "$target" -Zbuild-std=std,panic_abort "${feat[@]}")
		export RUSTFLAGS="-C link-self-contained=no -C target-feature=+crt-static"
	fi
	# Size (measured on aarch64, 2026-11-21): std rebuilt with its
	# optimize_for_size feature (-11 %), and panics that abort at once instead
	# of formatting a message (-9 %; the agent never panics on input by design,
	# and a debug build keeps the messages). Per-board flags (Thumb-2 on ARMv7,
	# position-dependent code on MIPS and i586) come from the descriptor.
	cmd+=(-Zbuild-std-features=optimize_for_size)
	RUSTFLAGS+=" -Zunstable-options -Cpanic=immediate-abort${board_flags:+ $board_flags}"
	export RUSTFLAGS
	# -Zbuild-std on the pinned stable toolchain: RUSTC_BOOTSTRAP unlocks it.
	export RUSTC_BOOTSTRAP=1
	if [ -n "${NUVOL_VERBOSE:-}" ]; then
		nice -n 10 "${cmd[@]}" </dev/null 2>&1 | tee "$log"
		return "${PIPESTATUS[0]}"
	fi
	nice -n 10 "${cmd[@]}" </dev/null >"$log" 2>&1
}

# check_binary BIN: statically linked, and runs on the board's CPU.
check_binary() {
	local bin=$1 out
	file -b "$bin" | grep -q 'statically linked' || { file "$bin" >&2; return 1; }
	[ -n "${NUVOL_NO_QEMU:-}" ] && return 0
	out=$(timeout 60 "qemu-$QEMU_USER_ARCH-static" -cpu "$QEMU_USER_CPU" "$bin" --version 2>&1) || {
		printf '%s\n' "$out" >&2
		return 1
	}
	[ "$out" = "nuvol $VERSION" ] || {
		printf 'expected "nuvol %s", got "%s"\n' "$VERSION" "$out" >&2
		return 1
	}
}

# feed_install BIN DESTDIR: runs the feed Makefile's Package/nuvol/install
# recipe (the same one the OpenWRT SDK runs) against stubs of the SDK's make
# variables, so the .ipk holds exactly what the feed installs. Also writes
# the package metadata the recipe's Makefile defines into $DESTDIR.meta/.
feed_install() {
	local bin=$1 dest=$2 stub=$CACHE/sdk-stub
	mkdir -p "$stub/include" "$stub/feeds/packages/lang/rust" "$stub/pkg-install/bin"
	cp "$bin" "$stub/pkg-install/bin/nuvol"
	cat >"$stub/rules.mk" <<-'EOF'
		# The SDK's install helpers (include/rules.mk), as OpenWRT defines them.
		INCLUDE_DIR:=$(TOPDIR)/include
		INSTALL_DIR:=install -d -m0755
		INSTALL_BIN:=install -m0755
		INSTALL_DATA:=install -m0644
		INSTALL_CONF:=install -m0600
		LN:=ln -sf
		CP:=cp -fpR
	EOF
	printf 'BuildPackage=\n' >"$stub/include/package.mk"
	printf 'RUST_ARCH_DEPENDS:=\nRustBinPackage=\nBuild/Compile/Cargo=\n' >"$stub/feeds/packages/lang/rust/rust-package.mk"
	# shellcheck disable=SC2016 # make expands these, not the shell
	# Recipe lines need a literal tab, which a <<- here-document would strip.
	printf '%s\n' \
		'include Makefile' \
		'$(eval $(Package/nuvol))' \
		'.PHONY: install meta' \
		'install:' \
		'	$(call Package/nuvol/install,$(DESTDIR))' \
		'meta:' \
		'	$(file >$(META)/title,$(TITLE))' \
		'	$(file >$(META)/depends,$(DEPENDS))' \
		'	$(file >$(META)/section,$(SECTION))' \
		'	$(file >$(META)/maintainer,$(PKG_MAINTAINER))' \
		'	$(file >$(META)/license,$(PKG_LICENSE))' \
		'	$(file >$(META)/license_files,$(PKG_LICENSE_FILES))' \
		'	$(file >$(META)/url,$(URL))' \
		'	$(file >$(META)/description,$(Package/nuvol/description))' \
		'	$(file >$(META)/conffiles,$(Package/nuvol/conffiles))' \
		>"$stub/driver.mk"
	rm -rf "$dest" "$dest.meta"
	mkdir -p "$dest" "$dest.meta"
	make -s -C "$FEED_PKG" -f "$stub/driver.mk" TOPDIR="$stub" PKG_INSTALL_DIR="$stub/pkg-install" \
		DESTDIR="$dest" META="$dest.meta" install meta
}

# reproducible_tar DIR OUT.tar.gz PATHS...: owner root, fixed mtime, sorted.
reproducible_tar() {
	local dir=$1 out=$2
	shift 2
	tar --format=gnu --numeric-owner --owner=0 --group=0 --sort=name \
		--mtime="@$SOURCE_DATE_EPOCH" -C "$dir" -cf - "$@" | gzip -n -9 >"$out"
}

# package_data BIN DESTDIR: the files a package holds, as package-pack.mk
# lays them out for both formats: the feed's install recipe, then every
# conffile the package does not ship itself appended to
# lib/upgrade/keep.d/nuvol, so sysupgrade keeps it. Metadata lands in
# DESTDIR.meta/.
package_data() {
	local dest=$2 x keep=""
	feed_install "$1" "$dest"
	while read -r x; do
		[ -z "$x" ] || [ -f "$dest/$x" ] || keep="${keep:+$keep }$x"
	done <"$dest.meta/conffiles"
	[ -z "$keep" ] && return 0
	mkdir -p "$dest/lib/upgrade/keep.d"
	for x in $keep; do printf '%s\n' "$x" >>"$dest/lib/upgrade/keep.d/nuvol"; done
	chmod 0644 "$dest/lib/upgrade/keep.d/nuvol"
}

# build_ipk BOARD BIN OUT: the .ipk opkg installs, built without the SDK:
# a gzip'd tar of debian-binary, data.tar.gz and control.tar.gz, as
# OpenWRT's scripts/ipkg-build makes it.
build_ipk() {
	local bin=$2 out=$3 work=$CACHE/ipk/$1
	rm -rf "$work"
	mkdir -p "$work/control"
	package_data "$bin" "$work/data"
	local meta=$work/data.meta c=$work/control
	local depends size
	# OpenWRT adds libc to every package; '+pkg' means "select and depend".
	depends=$(printf 'libc %s' "$(cat "$meta/depends")" | tr ' ' '\n' | sed -n 's/^+//p;/^libc$/p' | paste -sd, - | sed 's/,/, /g')
	size=$(find "$work/data" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
	{
		printf 'Package: nuvol\n'
		printf 'Version: %s\n' "$IPK_VERSION"
		printf 'Depends: %s\n' "$depends"
		printf 'Source: openwrt-feed/net/nuvol\n'
		printf 'SourceName: nuvol\n'
		printf 'License: %s\n' "$(cat "$meta/license")"
		[ -z "$(cat "$meta/license_files")" ] || printf 'LicenseFiles: %s\n' "$(cat "$meta/license_files")"
		printf 'Section: %s\n' "$(cat "$meta/section")"
		printf 'SourceDateEpoch: %s\n' "$SOURCE_DATE_EPOCH"
		# Empty fields are left out, as package-pack.mk's addfield does.
		[ -z "$(cat "$meta/url")" ] || printf 'URL: %s\n' "$(cat "$meta/url")"
		[ -z "$(cat "$meta/maintainer")" ] || printf 'Maintainer: %s\n' "$(cat "$meta/maintainer")"
		printf 'Architecture: %s\n' "$OPENWRT_ARCH"
		printf 'Installed-Size: %s\n' "$size"
		printf 'Description: %s\n' "$(cat "$meta/title")"
		sed -e 's/^ *//' -e '/^$/d' -e 's/^/ /' "$meta/description"
	} >"$c/control"
	sed '/^$/d' "$meta/conffiles" >"$c/conffiles"
	# The scripts every SDK-built package gets (include/package-ipkg.mk):
	# default_postinst runs our uci-defaults script, enables the init script
	# and starts it on a live system; default_prerm stops and disables it.
	cat >"$c/postinst" <<-'EOF'
		#!/bin/sh
		[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
		[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
		. ${IPKG_INSTROOT}/lib/functions.sh
		default_postinst $0 $@
	EOF
	cat >"$c/prerm" <<-'EOF'
		#!/bin/sh
		[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
		. ${IPKG_INSTROOT}/lib/functions.sh
		default_prerm $0 $@
	EOF
	chmod 0755 "$c/postinst" "$c/prerm"
	chmod 0644 "$c/control" "$c/conffiles"
	printf '2.0\n' >"$work/debian-binary"
	reproducible_tar "$work/data" "$work/data.tar.gz" .
	reproducible_tar "$c" "$work/control.tar.gz" .
	reproducible_tar "$work" "$out" ./debian-binary ./data.tar.gz ./control.tar.gz
}

# build_apk BOARD BIN OUT: the .apk OpenWRT 25.12 installs, made by the
# real `apk mkpkg` the way include/package-pack.mk calls it: the file list
# in lib/apk/packages/nuvol.list, conffiles and their checksums beside it,
# and the post-install / post-upgrade / pre-deinstall scripts every package
# gets (default_postinst / default_prerm from /lib/functions.sh). Signed
# when NUVOL_APK_SIGN_KEY names a private key (PEM), as the SDK signs with
# its build key; a repository index signs it anyway (./build.sh feed).
build_apk() {
	local bin=$2 out=$3 work=$CACHE/apk/$1
	rm -rf "$work"
	mkdir -p "$work/scripts"
	package_data "$bin" "$work/data"
	local d=$work/data meta=$work/data.meta s=$work/scripts
	local pl=$d/lib/apk/packages
	mkdir -p "$pl"
	# shellcheck disable=SC2016 # the scripts expand these on the router
	{
		echo '#!/bin/sh'
		echo '[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0'
		echo '[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0'
		echo '. ${IPKG_INSTROOT}/lib/functions.sh'
		echo 'export root="${IPKG_INSTROOT}"'
		echo 'export pkgname="nuvol"'
		echo 'add_group_and_user'
		echo 'default_postinst'
	} >"$s/post-install"
	{
		echo '#!/bin/sh'
		echo 'export PKG_UPGRADE=1'
		cat "$s/post-install"
	} >"$s/post-upgrade"
	# shellcheck disable=SC2016
	{
		echo '#!/bin/sh'
		echo '[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0'
		echo '. ${IPKG_INSTROOT}/lib/functions.sh'
		echo 'export root="${IPKG_INSTROOT}"'
		echo 'export pkgname="nuvol"'
		echo 'default_prerm'
	} >"$s/pre-deinstall"
	chmod 0755 "$s"/*
	# The list names itself, as package-pack.mk's find does; the conffiles
	# files come after it and are not in it.
	: >"$pl/nuvol.list"
	(cd "$d" && find . -type f,l -printf '/%P\n' | LC_ALL=C sort) >"$work/list"
	mv "$work/list" "$pl/nuvol.list"
	local file
	sed '/^$/d' "$meta/conffiles" >"$pl/nuvol.conffiles"
	: >"$pl/nuvol.conffiles_static"
	while read -r file; do
		[ -f "$d/$file" ] || continue
		printf '%s %s\n' "$file" "$(sha256sum <"$d/$file" | cut -d' ' -f1)" >>"$pl/nuvol.conffiles_static"
	done <"$pl/nuvol.conffiles"
	chmod 0644 "$pl"/*
	# OpenWRT adds libc to every package; '+pkg' means "select and depend".
	local depends
	depends=$(printf 'libc %s' "$(cat "$meta/depends")" | tr ' ' '\n' | sed -n 's/^+//p;/^libc$/p' | paste -sd' ' -)
	local -a sign=() optional=()
	[ -z "${NUVOL_APK_SIGN_KEY:-}" ] || sign=(--sign "$NUVOL_APK_SIGN_KEY")
	# Empty fields are left out (no home page or contact yet).
	[ -z "$(cat "$meta/url")" ] || optional+=(--info "url:$(cat "$meta/url")")
	[ -z "$(cat "$meta/maintainer")" ] || optional+=(--info "maintainer:$(cat "$meta/maintainer")")
	rm -f "$out"
	"$APK" mkpkg \
		--info "name:nuvol" \
		--info "version:$APK_VERSION" \
		--info "description:$(tr -s ' \n' ' ' <"$meta/description" | sed 's/^ //;s/ $//')" \
		--info "arch:$OPENWRT_ARCH" \
		--info "license:$(cat "$meta/license")" \
		--info "origin:openwrt-feed/net/nuvol" \
		"${optional[@]}" \
		--script "post-install:$s/post-install" \
		--script "post-upgrade:$s/post-upgrade" \
		--script "pre-deinstall:$s/pre-deinstall" \
		--info "depends:$depends" \
		--files "$d" \
		--output "$out" "${sign[@]}" >"$CACHE/logs/apk-mkpkg-$1.log" 2>&1 || {
		cat "$CACHE/logs/apk-mkpkg-$1.log" >&2
		die "$1: apk mkpkg failed"
	}
}

# find_apk: APK, the apk-tools 3 that makes .apk files: $NUVOL_APK, an apk
# 3 on PATH, or OpenWRT's own (apk-tools 3.0.6, the one 25.12 ships) built
# from the pinned sources by tests/lib/upstream.sh into .cache/upstream.
find_apk() {
	[ -z "${APK:-}" ] || return 0
	local prefix
	if [ -n "${NUVOL_APK:-}" ]; then
		APK=$NUVOL_APK
	elif command -v apk >/dev/null 2>&1 && apk --version 2>/dev/null | grep -q '^apk-tools 3\.'; then
		APK=$(command -v apk)
	elif prefix=$("$ROOT/tests/lib/upstream.sh" --prefix 2>/dev/null); then
		APK=$prefix/bin/apk
	else
		[ -z "${NUVOL_NO_INSTALL:-}" ] || die "apk (apk-tools 3) not found: run ./build.sh tools, or set NUVOL_APK"
		local dep
		for dep in gcc:gcc make:make pkg-config:pkg-config python3:python3 flock:util-linux; do
			need_cmd "${dep%%:*}" "${dep#*:}"
		done
		python3 -m pip --version >/dev/null 2>&1 || need_cmd pip3 python3-pip
		if can_install_apt; then
			dpkg -s libssl-dev zlib1g-dev >/dev/null 2>&1 || apt_install libssl-dev zlib1g-dev ||
				die "apt-get install libssl-dev zlib1g-dev failed (see .cache/logs/apt.log)"
		fi
		say "building OpenWRT's apk-tools, opkg and usign from ../shared/upstream (tests/lib/upstream.sh, once; log in .cache/logs/upstream.log)"
		prefix=$("$ROOT/tests/lib/upstream.sh" 2>"$CACHE/logs/upstream.log") || {
			tail -n 20 "$CACHE/logs/upstream.log" >&2
			die "tests/lib/upstream.sh failed (see .cache/logs/upstream.log)"
		}
		APK=$prefix/bin/apk
	fi
	"$APK" --version 2>/dev/null | grep -q '^apk-tools 3\.' || die "$APK is not apk-tools 3"
}

kib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1024 }'; }

# package_setup: the versions and the timestamp every package gets.
package_setup() {
	VERSION=$(workspace_version)
	[ -n "$VERSION" ] || die "no version in [workspace.package] of Cargo.toml"
	local release
	release=$(feed_var PKG_RELEASE)
	[ "$(feed_var PKG_VERSION)" = "$VERSION" ] ||
		die "openwrt-feed/net/nuvol/Makefile has PKG_VERSION $(feed_var PKG_VERSION) but Cargo.toml says $VERSION"
	IPK_VERSION=$VERSION-$release
	# apk's version syntax: the release is "-rN" (OpenWRT 25.12 does the same).
	APK_VERSION=$VERSION-r$release
	# File times inside the package: the last commit's, so the same tree
	# gives the same bytes (override with SOURCE_DATE_EPOCH).
	SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)}
	export SOURCE_DATE_EPOCH
}

# cmd_package BOARD...: re-packages dist/BOARD/nuvol without compiling (after
# editing a file of the feed, say).
cmd_package() {
	[ $# -gt 0 ] || usage_die "usage: ./build.sh package BOARD..."
	local b
	for b in "$@"; do load_board "$b"; done
	need_cmd tar tar
	need_cmd gzip gzip
	need_cmd make make
	find_apk
	package_setup
	for b in "$@"; do
		load_board "$b"
		[ -x "$DIST/$b/nuvol" ] || die "no ${DIST#"$ROOT"/}/$b/nuvol: build it first (./build.sh $b)"
		[ -n "$OPENWRT_ARCH" ] || die "$b has no OpenWRT package arch, so no .ipk or .apk"
		pack_board "$b" "$DIST/$b/nuvol"
		say "$b: ${PACKED_IPK#"$ROOT"/} ($(stat -c %s "$PACKED_IPK") bytes), ${PACKED_APK#"$ROOT"/} ($(stat -c %s "$PACKED_APK") bytes)"
	done
}

# pack_board BOARD BIN: dist/BOARD's .ipk (opkg, OpenWRT <= 24.10) and .apk
# (apk, OpenWRT >= 25.12), each replacing any older one; sets PACKED_IPK
# and PACKED_APK.
pack_board() {
	PACKED_IPK=$DIST/$1/nuvol_${IPK_VERSION}_$OPENWRT_ARCH.ipk
	PACKED_APK=$DIST/$1/nuvol-$APK_VERSION.apk
	rm -f "$DIST/$1"/nuvol_*.ipk "$DIST/$1"/nuvol-*.apk
	build_ipk "$1" "$2" "$PACKED_IPK"
	build_apk "$1" "$2" "$PACKED_APK"
}

# board_failed BOARD WHAT T0: a table row for a board that did not make it;
# the other boards still build.
board_failed() {
	FAILED_BOARDS+=("$1")
	ROWS+=("$(printf '%-13s %-31s %9s %8s %9s %9s %10s %-6s %5ss' "$1" "$RUST_TARGET" - - - - "$SIZE_BUDGET_KIB" FAILED "$((SECONDS - $3))")  ($2)")
}

# build_board BOARD INDEX COUNT: compile, check, package one board; appends
# its row to the size table.
build_board() {
	local board=$1 n=$2 count=$3 t0 log bin out ipk_bytes="-" apk_bytes="-"
	load_board "$board"
	t0=$SECONDS
	log=$CACHE/logs/build-$board.log
	mkdir -p "$DIST/$board"
	# A failed build must not leave last time's binary looking current.
	rm -f "$DIST/$board/nuvol" "$DIST/$board"/nuvol_*.ipk "$DIST/$board"/nuvol-*.apk
	say "[$n/$count] $board: compiling for $RUST_TARGET${CARGO_FEATURES:+ with features $CARGO_FEATURES} ($BUILDER; log in ${log#"$ROOT"/})"
	if ! cargo_build "$RUST_TARGET" "$CARGO_FEATURES" "$log" "$RUST_FLAGS"; then
		grep -E -A12 '^error' "$log" | head -n 40 >&2
		echo "build.sh: $board: build failed for $RUST_TARGET (full log: ${log#"$ROOT"/})" >&2
		board_failed "$board" "build failed" "$t0"
		return 0
	fi
	bin=$TARGET_DIR/$RUST_TARGET/release/nuvol
	out=$DIST/$board/nuvol
	cp "$bin" "$out"
	if [ "$OMIT_LOCK_PREFIX" = yes ]; then
		# The Quark's LOCK erratum: see boards/tools/omit-lock-prefix.py.
		need_cmd objdump binutils
		need_cmd python3 python3
		say "[$n/$count] $board: rewriting LOCK-prefixed instructions (CPU erratum)"
		if ! python3 "$ROOT/boards/tools/omit-lock-prefix.py" "$out" >>"$log" 2>&1; then
			tail -n 3 "$log" >&2
			echo "build.sh: $board: could not take the LOCK prefixes out of dist/$board/nuvol" >&2
			rm -f "$out"
			board_failed "$board" "lock patch failed" "$t0"
			return 0
		fi
	fi
	if [ -n "${NUVOL_NO_QEMU:-}" ]; then
		say "[$n/$count] $board: checking it is statically linked (qemu check skipped: NUVOL_NO_QEMU)"
	else
		say "[$n/$count] $board: checking it is static and runs on qemu-$QEMU_USER_ARCH -cpu $QEMU_USER_CPU"
		ensure_qemu "$QEMU_USER_ARCH"
	fi
	if ! check_binary "$out"; then
		echo "build.sh: $board: dist/$board/nuvol failed its check (static, runs on $QEMU_USER_CPU)" >&2
		board_failed "$board" "check failed" "$t0"
		return 0
	fi
	if [ -n "$OPENWRT_ARCH" ]; then
		say "[$n/$count] $board: packaging nuvol_${IPK_VERSION}_$OPENWRT_ARCH.ipk and nuvol-$APK_VERSION.apk"
		pack_board "$board" "$out"
		ipk_bytes=$(stat -c %s "$PACKED_IPK")
		apk_bytes=$(stat -c %s "$PACKED_APK")
	else
		say "[$n/$count] $board: no .ipk or .apk (OpenWRT has no package arch for it; see ./build.sh image $board)"
	fi
	local bytes budget status
	bytes=$(stat -c %s "$out")
	budget=$((SIZE_BUDGET_KIB * 1024))
	status=ok
	[ "$bytes" -le "$budget" ] || {
		status=OVER
		OVER_BUDGET=$((OVER_BUDGET + 1))
	}
	ROWS+=("$(printf '%-13s %-31s %9s %8s %9s %9s %10s %-6s %5ss' "$board" "$RUST_TARGET" "$bytes" "$(kib "$bytes")" \
		"$ipk_bytes" "$apk_bytes" "$SIZE_BUDGET_KIB" "$status" "$((SECONDS - t0))")")
}

cmd_build() {
	local -a boards=("$@")
	[ ${#boards[@]} -gt 0 ] || mapfile -t boards < <(all_boards)
	local b
	# Every name is checked before anything slow starts.
	for b in "${boards[@]}"; do load_board "$b"; done
	ensure_tools
	package_setup
	ROWS=()
	FAILED_BOARDS=()
	OVER_BUDGET=0
	local i=0 t0=$SECONDS
	for b in "${boards[@]}"; do
		i=$((i + 1))
		build_board "$b" "$i" "${#boards[@]}"
	done
	echo
	printf '%-13s %-31s %9s %8s %9s %9s %10s %-6s %6s\n' board target "bin bytes" "bin KiB" "ipk bytes" "apk bytes" "budget KiB" status time
	printf '%s\n' "${ROWS[@]}"
	echo
	say "built $((${#boards[@]} - ${#FAILED_BOARDS[@]})) of ${#boards[@]} board(s) in $((SECONDS - t0)) s into ${DIST#"$ROOT"/}/"
	[ ${#FAILED_BOARDS[@]} -eq 0 ] || die "failed: ${FAILED_BOARDS[*]} (logs in .cache/logs/)"
	[ "$OVER_BUDGET" -eq 0 ] && return 0
	# An image is still made from an over-budget binary; the budget is the
	# project's gate (CI), not the router owner's.
	[ "${BUDGET_FATAL:-1}" = 1 ] && [ "${NUVOL_BUDGET:-fail}" != warn ] || {
		echo "warning: $OVER_BUDGET board(s) over their size budget (SIZE_BUDGET_KIB in boards/)" >&2
		return 0
	}
	die "$OVER_BUDGET board(s) over their size budget (SIZE_BUDGET_KIB in boards/)"
}

# ------------------------------------------------------------------- demo --

DEMO_DIR=${NUVOL_DEMO_DIR:-$CACHE/demo}
DEMO_HTTP=${NUVOL_DEMO_HTTP:-127.0.0.1:7000}
DEMO_PORT=${NUVOL_DEMO_PORT:-7946}

demo_stop() {
	local pidf pid stopped=0 i
	for pidf in "$DEMO_DIR"/*.pid; do
		[ -f "$pidf" ] || continue
		pid=$(cat "$pidf")
		# Only our own agents: the pid must still be a nuvol process.
		if kill -0 "$pid" 2>/dev/null && grep -q nuvol "/proc/$pid/cmdline" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null || true
			for i in $(seq 1 50); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
			kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
			stopped=$((stopped + 1))
		fi
		rm -f "$pidf"
	done
	say "demo: stopped $stopped agent(s)"
}

# port_busy HOST:PORT: something already listens on that TCP port.
port_busy() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }

# http_get HOST:PORT PATH: the response's first line, with bash's /dev/tcp.
http_get() {
	local hp=$1 path=$2 line
	exec 3<>"/dev/tcp/${hp%:*}/${hp##*:}" || return 1
	printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$hp" >&3
	IFS= read -r -t 5 line <&3 || line=""
	exec 3<&-
	printf '%s\n' "${line%$'\r'}"
}

cmd_demo() {
	case ${1:-} in
	stop)
		demo_stop
		return 0
		;;
	"") ;;
	*) usage_die "demo takes no argument or 'stop', not '$1'" ;;
	esac
	mkdir -p "$CACHE/logs"
	ensure_rust
	local log=$CACHE/logs/demo-build.log nuvol
	say "demo: building nuvol for this machine (log in ${log#"$ROOT"/})"
	nice -n 10 cargo build --release -p nuvol </dev/null >"$log" 2>&1 || {
		tail -n 30 "$log" >&2
		die "demo: the host build failed (full log: ${log#"$ROOT"/})"
	}
	nuvol=$TARGET_DIR/release/nuvol
	say "demo: $("$nuvol" --version)"
	# Decided at run time, not hard-coded, so the demo works the moment the
	# agent command lands.
	if ! "$nuvol" agent --help >/dev/null 2>&1; then
		echo "demo: this build has no agent yet ('nuvol agent --help' fails), so there is no microcloud to start."
		echo "demo: what exists: $nuvol --version; run '$nuvol --help' for the rest."
		exit 1
	fi
	demo_stop >/dev/null
	local p1=$DEMO_PORT p2=$((DEMO_PORT + 10)) p3=$((DEMO_PORT + 20)) hp
	for hp in "$DEMO_HTTP" "127.0.0.1:$p1" "127.0.0.1:$p2" "127.0.0.1:$p3"; do
		port_busy "$hp" && die "demo: $hp is already in use (another demo? ./build.sh demo stop)"
	done
	rm -rf "$DEMO_DIR"
	mkdir -p "$DEMO_DIR"
	# The built-in page refuses every login without a password hash: give
	# n1 a config with a fresh demo password, if this build can hash one.
	local password="" n1conf=$DEMO_DIR/n1.conf hash
	password=$(head -c 9 /dev/urandom | base64 | tr -d '/+=' | head -c 10)
	if hash=$(printf '%s\n' "$password" | "$nuvol" page-passwd 2>/dev/null) && [ -n "$hash" ]; then
		# Either the bare hash or the whole "option password_hash" line.
		case $hash in
		*password_hash*) printf "config page 'page'\n%s\n" "$hash" >"$n1conf" ;;
		*) printf "config page 'page'\n\toption password_hash '%s'\n" "$hash" >"$n1conf" ;;
		esac
	else
		password=""
		: >"$n1conf"
	fi
	local name port i
	for i in 1 2 3; do
		name=n$i
		port=$((DEMO_PORT + (i - 1) * 10))
		local -a args=(agent --name "$name" --bind "127.0.0.1:$port" --control "$DEMO_DIR/$name.sock"
			--state "$DEMO_DIR/$name")
		if [ "$i" = 1 ]; then
			args+=(--http "$DEMO_HTTP" --config "$n1conf")
		else
			args+=(--join "127.0.0.1:$p1")
		fi
		# setsid: the agents outlive this script and ignore its terminal.
		setsid "$nuvol" "${args[@]}" </dev/null >"$DEMO_DIR/$name.log" 2>&1 &
		echo $! >"$DEMO_DIR/$name.pid"
	done
	say "demo: started n1 (127.0.0.1:$p1, page on $DEMO_HTTP), n2 (:$p2) and n3 (:$p3) in ${DEMO_DIR#"$ROOT"/}"
	local members=0
	for i in $(seq 1 60); do
		for name in n1 n2 n3; do
			kill -0 "$(cat "$DEMO_DIR/$name.pid")" 2>/dev/null || {
				tail -n 5 "$DEMO_DIR/$name.log" >&2
				demo_stop >/dev/null
				die "demo: agent $name exited (log: ${DEMO_DIR#"$ROOT"/}/$name.log)"
			}
		done
		members=$("$nuvol" --control "$DEMO_DIR/n3.sock" members 2>/dev/null | grep -cw alive || true)
		[ "$members" -ge 3 ] && break
		sleep 0.5
	done
	if [ "$members" -ge 3 ]; then
		say "demo: all three agents see each other"
	else
		echo "demo: after 30 s n3 sees $members alive member(s), not 3; the agents keep running, see ${DEMO_DIR#"$ROOT"/}/*.log"
	fi
	"$nuvol" --control "$DEMO_DIR/n2.sock" publish --type http --port "${DEMO_HTTP##*:}" \
		--description "the demo page, served by n1" >/dev/null 2>&1 &&
		say "demo: n2 published a service record; search it from any node"
	local status=""
	for i in $(seq 1 20); do
		status=$(http_get "$DEMO_HTTP" / 2>/dev/null) && [ -n "$status" ] && break
		sleep 0.5
	done
	if [ -n "$password" ] && [[ $status == *" 403 "* ]]; then
		say "demo: the page answers with its login form ($status until you log in)"
	elif [ -n "$status" ]; then
		say "demo: the page answers: $status"
	else
		echo "demo: the page at http://$DEMO_HTTP/ does not answer; see ${DEMO_DIR#"$ROOT"/}/n1.log"
	fi
	cat <<-EOF

		  open     http://$DEMO_HTTP/   ${password:+(password: $password)}
		  CLI      $nuvol --control $DEMO_DIR/n1.sock members
		           $nuvol --control $DEMO_DIR/n1.sock search
		  logs     $DEMO_DIR/n1.log n2.log n3.log
		  stop     ./build.sh demo stop
	EOF
}

# ------------------------------------------------------------------- feed --

# cmd_feed DIR [--apk-key PEM] [--usign-key KEY] [BOARD...]: a package feed
# of what dist/ holds, one folder per package arch as OpenWRT's own feeds
# are laid out: DIR/<arch>/ with the .apk files and their index
# packages.adb (apk mkndx, signed with PEM, an EC key as `openssl ecparam
# -name prime256v1 -genkey` makes it), and the .ipk files with Packages,
# Packages.gz and, with a usign secret key, Packages.sig (as the
# ImageBuilder's package_index makes them). A router trusts the feed once its
# public keys are in /etc/apk/keys/ (apk) or added with opkg-key (opkg).
cmd_feed() {
	local dir="" apk_key="" usign_key=""
	local -a boards=()
	while [ $# -gt 0 ]; do
		case $1 in
		--apk-key) apk_key=${2:-}; shift 2 || usage_die "--apk-key needs a PEM file" ;;
		--usign-key) usign_key=${2:-}; shift 2 || usage_die "--usign-key needs a usign secret key" ;;
		-*) usage_die "feed: unknown option $1" ;;
		*)
			if [ -z "$dir" ]; then dir=$1; else boards+=("$1"); fi
			shift
			;;
		esac
	done
	[ -n "$dir" ] || usage_die "usage: ./build.sh feed DIR [--apk-key PEM] [--usign-key KEY] [BOARD...]"
	[ -z "$apk_key" ] || [ -r "$apk_key" ] || usage_die "feed: cannot read the apk key $apk_key"
	[ -z "$usign_key" ] || [ -r "$usign_key" ] || usage_die "feed: cannot read the usign key $usign_key"
	[ ${#boards[@]} -gt 0 ] || mapfile -t boards < <(all_boards)
	local b
	for b in "${boards[@]}"; do load_board "$b"; done
	find_apk
	package_setup
	local usign=""
	if [ -n "$usign_key" ]; then
		usign=$(dirname "$APK")/usign
		[ -x "$usign" ] || usign=$(command -v usign) || die "feed: usign not found (./build.sh tools builds it)"
	fi
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	local -a arches=()
	for b in "${boards[@]}"; do
		load_board "$b"
		[ -n "$OPENWRT_ARCH" ] || continue
		local ipk=$DIST/$b/nuvol_${IPK_VERSION}_$OPENWRT_ARCH.ipk apk=$DIST/$b/nuvol-$APK_VERSION.apk
		if [ ! -f "$ipk" ] || [ ! -f "$apk" ]; then
			[ ${#boards[@]} -eq "$(all_boards | wc -l)" ] && continue
			die "feed: no packages for $b in ${DIST#"$ROOT"/}/$b (./build.sh $b)"
		fi
		mkdir -p "$dir/$OPENWRT_ARCH"
		# Two boards of one arch (turris-mox, rpi3) build different binaries
		# only through their features; the first board listed wins.
		case " ${arches[*]} " in *" $OPENWRT_ARCH "*) continue ;; esac
		arches+=("$OPENWRT_ARCH")
		rm -f "$dir/$OPENWRT_ARCH"/nuvol*
		cp "$ipk" "$apk" "$dir/$OPENWRT_ARCH/"
	done
	[ ${#arches[@]} -gt 0 ] || die "feed: dist/ holds no packages (./build.sh first)"
	local a f
	for a in "${arches[@]}"; do
		local -a sign=(--allow-untrusted)
		[ -z "$apk_key" ] || sign+=(--sign "$apk_key")
		(cd "$dir/$a" && rm -f packages.adb && "$APK" mkndx "${sign[@]}" --output packages.adb ./*.apk) \
			>"$CACHE/logs/apk-mkndx.log" 2>&1 || {
			cat "$CACHE/logs/apk-mkndx.log" >&2
			die "feed: apk mkndx failed for $a"
		}
		# Packages: each .ipk's control stanza plus where and what it is,
		# as OpenWRT's scripts/ipkg-make-index.sh writes it.
		: >"$dir/$a/Packages"
		for f in "$dir/$a"/*.ipk; do
			tar -xzOf "$f" ./control.tar.gz | tar -xzOf - ./control | sed '/^$/d' >>"$dir/$a/Packages"
			printf 'Filename: %s\nSize: %s\nSHA256sum: %s\n\n' "${f##*/}" "$(stat -c %s "$f")" \
				"$(sha256sum <"$f" | cut -d' ' -f1)" >>"$dir/$a/Packages"
		done
		gzip -9nc "$dir/$a/Packages" >"$dir/$a/Packages.gz"
		rm -f "$dir/$a/Packages.sig"
		[ -z "$usign" ] || "$usign" -S -m "$dir/$a/Packages" -s "$usign_key" || die "feed: usign failed"
		say "feed: $dir/$a ($(find "$dir/$a" -maxdepth 1 -type f -printf '%f ' | sed 's/ $//'))"
	done
}

# ------------------------------------------------------------------ image --

cmd_image() {
	local board="" ib="" profile="" extra="" microcloud="" key=""
	local -a joins=()
	while [ $# -gt 0 ]; do
		case $1 in
		--imagebuilder) ib=${2:-}; shift 2 || usage_die "--imagebuilder needs a PATH" ;;
		--profile) profile=${2:-}; shift 2 || usage_die "--profile needs a name" ;;
		--packages) extra=${2:-}; shift 2 || usage_die "--packages needs a list" ;;
		--microcloud) microcloud=${2:-}; shift 2 || usage_die "--microcloud needs a name" ;;
		--join) joins+=("${2:-}"); shift 2 || usage_die "--join needs HOST:PORT" ;;
		--key) key=${2:-}; shift 2 || usage_die "--key needs a base64 key" ;;
		-*) usage_die "image: unknown option $1" ;;
		*)
			[ -z "$board" ] || usage_die "image takes one board, got '$board' and '$1'"
			board=$1
			shift
			;;
		esac
	done
	[ -n "$board" ] || usage_die "usage: ./build.sh image BOARD --imagebuilder PATH [--profile P] [--packages 'a b'] [--microcloud M] [--join H:P]... [--key K]"
	load_board "$board"
	[ -n "$ib" ] || usage_die "image: --imagebuilder PATH is required (an unpacked OpenWRT ImageBuilder for $OPENWRT_TARGET)"
	if [ ! -f "$ib/Makefile" ] || [ ! -f "$ib/.config" ] || [ ! -d "$ib/packages" ]; then
		die "no OpenWRT ImageBuilder at '$ib': download openwrt-imagebuilder-*-${OPENWRT_TARGET/\//-}.Linux-x86_64.tar.* from https://downloads.openwrt.org and unpack it"
	fi
	ib=$(cd "$ib" && pwd)
	local ib_arch
	ib_arch=$(sed -n 's/^CONFIG_TARGET_ARCH_PACKAGES="\(.*\)"/\1/p' "$ib/.config")
	if [ -n "$OPENWRT_ARCH" ] && [ "$ib_arch" != "$OPENWRT_ARCH" ]; then
		die "the ImageBuilder at '$ib' builds for $ib_arch, but $board needs $OPENWRT_ARCH ($OPENWRT_TARGET)"
	fi
	BUDGET_FATAL=0 cmd_build "$board"
	load_board "$board"
	local files=$CACHE/image/$board/files packages
	rm -rf "$files"
	mkdir -p "$files/etc/uci-defaults"
	# Routers with little flash get the agent and the page; LXC only where
	# it fits (its tools and liblxc take ~1.5 MB).
	packages="uhttpd"
	[ "${FLASH_MB:-0}" -le 16 ] || packages="$packages lxc lxc-attach lxc-create lxc-destroy lxc-info lxc-start lxc-stop lxc-wait"
	if [ -n "$OPENWRT_ARCH" ]; then
		# An ImageBuilder of OpenWRT >= 25.12 (CONFIG_USE_APK) installs .apk
		# files, an older one .ipk; either way from packages/, whose index
		# its package_reload remakes because our file is newer than it.
		rm -f "$ib/packages"/nuvol_*.ipk "$ib/packages"/nuvol-[0-9]*.apk
		if grep -qx 'CONFIG_USE_APK=y' "$ib/.config"; then
			cp "$DIST/$board/nuvol-$APK_VERSION.apk" "$ib/packages/"
		else
			cp "$DIST/$board/nuvol_${IPK_VERSION}_$OPENWRT_ARCH.ipk" "$ib/packages/"
		fi
		packages="nuvol $packages"
	else
		# No opkg arch for this board: the image carries the files the
		# package would install, enabled the way its postinst would.
		feed_install "$DIST/$board/nuvol" "$CACHE/image/$board/data"
		cp -a "$CACHE/image/$board/data/." "$files/"
		mkdir -p "$files/etc/rc.d"
		ln -sf ../init.d/nuvol "$files/etc/rc.d/S95nuvol"
		ln -sf ../init.d/nuvol "$files/etc/rc.d/K10nuvol"
	fi
	# First-boot settings given on the command line, applied before the
	# package's own uci-defaults script (89 < 90).
	{
		echo '#!/bin/sh'
		echo '# Written by ./build.sh image: this image'"'"'s microcloud settings.'
		[ -z "$microcloud" ] || printf "uci -q set nuvol.main.microcloud='%s'\n" "$microcloud"
		local j
		for j in "${joins[@]}"; do printf "uci -q add_list nuvol.main.join='%s'\n" "$j"; done
		if [ -n "$key" ]; then
			echo "uci -q set nuvol.image_key=key"
			printf "uci -q set nuvol.image_key.secret='%s'\n" "$key"
			echo "uci -q set nuvol.image_key.primary=1"
		fi
		echo 'uci -q commit nuvol'
		echo 'exit 0'
	} >"$files/etc/uci-defaults/89-nuvol-image"
	chmod 0755 "$files/etc/uci-defaults/89-nuvol-image"
	packages="$packages $extra"
	local log=$CACHE/logs/image-$board.log
	say "image: make image in $ib${profile:+ PROFILE=$profile} PACKAGES=\"${packages% }\" (log in ${log#"$ROOT"/})"
	local -a margs=(image "PACKAGES=${packages% }" "FILES=$files")
	[ -z "$profile" ] || margs+=("PROFILE=$profile")
	nice -n 10 make -C "$ib" "${margs[@]}" </dev/null >"$log" 2>&1 || {
		tail -n 30 "$log" >&2
		die "image: the ImageBuilder failed (full log: ${log#"$ROOT"/})"
	}
	say "image: done; the images are in $ib/bin/targets/$OPENWRT_TARGET/"
}

# ------------------------------------------------------------------- main --

main() {
	mkdir -p "$CACHE/logs"
	case ${1:-} in
	-h | --help | help) usage ;;
	list) all_boards ;;
	tools)
		ensure_tools
		ensure_qemu arm
		say "tools ready: builder $BUILDER$(command -v cargo-zigbuild >/dev/null && echo " ($(cargo-zigbuild -V))"), rust $(toolchain) with rust-src, zig $(zig version 2>/dev/null || python3 -m ziglang version), $("$APK" --version | cut -d, -f1) ($APK)"
		;;
	demo)
		shift
		cmd_demo "$@"
		;;
	image)
		shift
		cmd_image "$@"
		;;
	package)
		shift
		cmd_package "$@"
		;;
	feed)
		shift
		cmd_feed "$@"
		;;
	-*) usage_die "unknown option $1 (see ./build.sh --help)" ;;
	*) cmd_build "$@" ;;
	esac
}

# One line: bash has read all of it before running it, so editing this file
# while a build runs cannot make the running script read a changed tail.
main "$@"; exit $?
