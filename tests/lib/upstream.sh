#!/usr/bin/env bash
# tests/lib/upstream.sh: builds OpenWRT's own programs from the pinned sources
# in ../shared/upstream (see its README) into the project's cache, once per
# set of tarballs, so tests run nuvol's files under the real apk, opkg, procd,
# ubus, uci, uhttpd and usign instead of stand-ins.
#
#   tests/lib/upstream.sh            build (or reuse) everything, print PREFIX
#   tests/lib/upstream.sh --prefix   print PREFIX only if the build is complete
#
# PREFIX (.cache/upstream/<hash of the tarball names>/prefix) has bin/, sbin/,
# lib/ and share/; programs find their libraries through an rpath, so no
# LD_LIBRARY_PATH is needed. The build directory is removed afterwards; a
# finished build is marked by PREFIX/.complete and reused while the tarballs'
# names (which carry their upstream commits) stay the same. A build takes
# about a minute on 2 cores. Sources are read from $NUVOL_UPSTREAM (default
# ../shared/upstream next to the repository), which may be read-only.
#
# Needs: gcc, make, pkg-config, libssl-dev, zlib1g-dev (tests/deps.d/upstream.apt)
# and cmake, ninja, meson from PyPI (installed here with pip when missing).

set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SRC=${NUVOL_UPSTREAM:-$ROOT/../shared/upstream}
[ -d "$SRC" ] || {
	echo "upstream.sh: no $SRC (the pinned OpenWRT sources)" >&2
	exit 1
}
[ -r "$SRC" ] || {
	echo "upstream.sh: cannot read $SRC" >&2
	exit 1
}

# The stamp names every tarball: a new pin means a new build beside the old.
STAMP=$(cd "$SRC" && ls -1 ./*.tar.gz | sha256sum | cut -c1-12)
BASE=$ROOT/.cache/upstream/$STAMP
PREFIX=$BASE/prefix

if [ "${1:-}" = --prefix ]; then
	[ -f "$PREFIX/.complete" ] || exit 1
	echo "$PREFIX"
	exit 0
fi
if [ -f "$PREFIX/.complete" ]; then
	echo "$PREFIX"
	exit 0
fi

# One builder at a time per stamp (two suites may ask at once).
mkdir -p "$BASE"
exec 9>"$BASE/.lock"
flock 9
if [ -f "$PREFIX/.complete" ]; then
	echo "$PREFIX"
	exit 0
fi

log() { echo "==> upstream: $*" >&2; }

for tool in cmake ninja meson; do
	command -v "$tool" >/dev/null 2>&1 || {
		log "installing $tool from PyPI"
		python3 -m pip install -q "$tool" >&2
	}
done

BUILD=$BASE/build
rm -rf "$BUILD" "$PREFIX"
mkdir -p "$BUILD" "$PREFIX"
unpack() { # unpack NAME: the tarball whose name starts with NAME-
	local t
	t=$(ls "$SRC"/"$1"-*.tar.gz)
	mkdir -p "$BUILD/$1"
	tar -xzf "$t" -C "$BUILD/$1" --strip-components=1
}

export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig
# glibc 2.36 lacks strlcpy and needs _GNU_SOURCE for asprintf: one forced
# include gives both to procd (the README of ../shared/upstream says so).
cat >"$BUILD/compat.h" <<'EOF'
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <string.h>
#include <stddef.h>
static inline size_t nuvol_strlcpy(char *d, const char *s, size_t n)
{
	size_t l = strlen(s);
	if (n) {
		size_t c = l >= n ? n - 1 : l;
		memcpy(d, s, c);
		d[c] = 0;
	}
	return l;
}
#define strlcpy nuvol_strlcpy
EOF

cm() { # cm NAME [cmake options...] : configure, build and install one project
	local name=$1
	shift
	log "building $name"
	cmake -S "$BUILD/$name" -B "$BUILD/$name/_b" -G Ninja \
		-DCMAKE_BUILD_TYPE=Release \
		-DCMAKE_INSTALL_PREFIX="$PREFIX" \
		-DCMAKE_PREFIX_PATH="$PREFIX" \
		-DCMAKE_INSTALL_RPATH="$PREFIX/lib" \
		-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON \
		-DCMAKE_POLICY_VERSION_MINIMUM=3.5 \
		"$@" >"$BUILD/$name.log" 2>&1 || {
		tail -n 30 "$BUILD/$name.log" >&2
		return 1
	}
}
inst() { # inst NAME [targets...]: build the targets (or all) and install
	local name=$1
	shift
	ninja -C "$BUILD/$name/_b" "$@" >>"$BUILD/$name.log" 2>&1 &&
		{ [ $# -gt 0 ] || ninja -C "$BUILD/$name/_b" install >>"$BUILD/$name.log" 2>&1; } || {
		tail -n 30 "$BUILD/$name.log" >&2
		return 1
	}
}

INC=-I$PREFIX/include
for p in json-c libubox ubus uci udebug procd uhttpd opkg-lede apk-tools usign; do unpack "$p"; done

cm json-c -DBUILD_TESTING=OFF -DDISABLE_EXTRA_LIBS=ON -DBUILD_STATIC_LIBS=OFF
inst json-c
cm libubox -DBUILD_LUA=OFF -DBUILD_EXAMPLES=OFF -DCMAKE_C_FLAGS="$INC"
inst libubox
cm ubus -DBUILD_LUA=OFF -DBUILD_EXAMPLES=OFF -DCMAKE_C_FLAGS="$INC"
inst ubus
cm uci -DBUILD_LUA=OFF -DCMAKE_C_FLAGS="$INC"
inst uci
mkdir -p "$BUILD/no-ucode"
cm udebug -Ducode_include_dir="$BUILD/no-ucode" -DCMAKE_C_FLAGS="$INC"
inst udebug udebug
install -m 0644 "$BUILD"/udebug/_b/libudebug.so "$PREFIX/lib/"
install -m 0644 "$BUILD"/udebug/udebug.h "$PREFIX/include/"
cm procd -DJAIL_SUPPORT=OFF -DSECCOMP_SUPPORT=OFF -DUTRACE_SUPPORT=OFF \
	-DCMAKE_C_FLAGS="$INC -include $BUILD/compat.h -Wno-error=format-overflow -Wno-error"
inst procd procd
mkdir -p "$PREFIX/sbin"
install -m 0755 "$BUILD/procd/_b/procd" "$PREFIX/sbin/procd"
cm uhttpd -DTLS_SUPPORT=OFF -DLUA_SUPPORT=OFF -DUBUS_SUPPORT=OFF -DUCODE_SUPPORT=OFF \
	-DCMAKE_C_FLAGS="$INC -Wno-error=stringop-overread"
inst uhttpd
cm opkg-lede -DBUILD_TESTS=OFF -DENABLE_USIGN=OFF -DCMAKE_C_FLAGS="$INC"
inst opkg-lede
cm usign -DCMAKE_C_FLAGS="$INC"
inst usign

log "building apk-tools"
(
	cd "$BUILD/apk-tools"
	meson setup _b --prefix="$PREFIX" --libdir=lib -Dlua=disabled -Dhelp=disabled -Ddocs=disabled \
		-Dpython=disabled -Dtests=disabled -Dzstd=disabled \
		-Dc_link_args="-Wl,-rpath,$PREFIX/lib" >"$BUILD/apk-tools.log" 2>&1 &&
		ninja -C _b >>"$BUILD/apk-tools.log" 2>&1 &&
		ninja -C _b install >>"$BUILD/apk-tools.log" 2>&1
) || {
	tail -n 30 "$BUILD/apk-tools.log" >&2
	exit 1
}

# OpenWRT installs opkg-cl as opkg.
ln -sf opkg-cl "$PREFIX/bin/opkg"
# Every program must be there and find its libraries: a missing one shows
# here, not in a test.
for b in bin/ubus sbin/ubusd bin/uci sbin/procd bin/uhttpd bin/opkg bin/usign bin/jshn bin/apk; do
	[ -x "$PREFIX/$b" ] || {
		log "missing program $b after the build"
		exit 1
	}
	if ldd "$PREFIX/$b" | grep -q 'not found'; then
		ldd "$PREFIX/$b" >&2
		exit 1
	fi
done
rm -rf "$BUILD"
touch "$PREFIX/.complete"
log "built into $PREFIX"
echo "$PREFIX"
