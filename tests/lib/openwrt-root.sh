# shellcheck shell=bash
# tests/lib/openwrt-root.sh: an empty OpenWRT root for package-manager tests
# (sourced after common.sh). The root gets what a router's base-files put
# there and the scripts of a package use: /etc/rc.common, /lib/functions.sh,
# /lib/functions/service.sh and /lib/functions/procd.sh byte for byte from
# ../shared/upstream/openwrt, Debian's static busybox as /bin/sh and the
# other applets, and the real uci, jshn and jshn.sh (built by
# tests/lib/upstream.sh, copied with the libraries they link, so they also
# run inside a chroot of the root).
#
# What a router's feed would provide besides, the test makes as real
# packages of its own (owrt_base_apk, owrt_base_ipk): "libc" (empty: the
# static agent needs none) and "uhttpd" holding OpenWRT's own uhttpd.config
# and uhttpd.init (the files nuvol's first-boot script reads and calls), but
# no uhttpd binary, which nothing here runs.

OWRT_UPSTREAM=${NUVOL_UPSTREAM:-$ROOT/../shared/upstream}
OWRT_FILES=$OWRT_UPSTREAM/openwrt/package

# owrt_prefix: sets UP to the prefix of the upstream programs, building them
# once if needed; skips the suite if they cannot be built.
owrt_prefix() {
	UP=$("$ROOT/tests/lib/upstream.sh" --prefix 2>/dev/null) ||
		UP=$("$ROOT/tests/lib/upstream.sh") || t_skip "the OpenWRT programs do not build (tests/lib/upstream.sh)"
}

# owrt_root DIR: lays out the empty root described above.
owrt_root() {
	local r=$1 a lib
	mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,lib/functions,etc/init.d,etc/rc.d,etc/config,etc/uci-defaults,tmp,var/run,var/lock,proc,dev,usr/share/libubox}
	chmod 1777 "$r/tmp"
	install -m 0755 "$OWRT_FILES/base-files/files/etc/rc.common" "$r/etc/rc.common"
	install -m 0644 "$OWRT_FILES/base-files/files/lib/functions.sh" "$r/lib/functions.sh"
	install -m 0644 "$OWRT_FILES/base-files/files/lib/functions/service.sh" "$r/lib/functions/service.sh"
	install -m 0644 "$OWRT_FILES/system/procd/files/procd.sh" "$r/lib/functions/procd.sh"
	cp /bin/busybox "$r/bin/busybox"
	for a in $(/bin/busybox --list); do
		[ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"
	done
	# The real uci, jshn and jshn.sh (procd.sh sources it), with every
	# library they link at the same absolute paths as on the host (their
	# rpath names the prefix).
	install -D -m 0755 "$UP/bin/uci" "$r/sbin/uci"
	install -D -m 0755 "$UP/bin/jshn" "$r/usr/bin/jshn"
	install -D -m 0644 "$UP/share/libubox/jshn.sh" "$r/usr/share/libubox/jshn.sh"
	for lib in $(ldd "$UP/bin/uci" "$UP/bin/jshn" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $1 !~ /:$/ {print $1}' | sort -u); do
		install -D -m 0755 "$lib" "$r$lib"
	done
	printf "config system\n\toption hostname 'OpenWrt'\n" >"$r/etc/config/system"
}

# owrt_base_files DIR: the files of the test's "uhttpd" package.
owrt_base_files() {
	mkdir -p "$1/etc/init.d" "$1/etc/config"
	install -m 0755 "$OWRT_FILES/network/services/uhttpd/files/uhttpd.init" "$1/etc/init.d/uhttpd"
	install -m 0644 "$OWRT_FILES/network/services/uhttpd/files/uhttpd.config" "$1/etc/config/uhttpd"
}

# owrt_base_apk OUTDIR ARCH: libc and uhttpd .apk files for ARCH.
owrt_base_apk() {
	local out=$1 arch=$2 d
	d=$(mktemp -d)
	mkdir -p "$d/libc" "$d/uhttpd"
	owrt_base_files "$d/uhttpd"
	"$UP/bin/apk" mkpkg --info name:libc --info version:1.2.5-r4 --info "arch:$arch" \
		--info "description:the C library (empty here: nuvol is static)" \
		--files "$d/libc" --output "$out/libc-1.2.5-r4.apk" &&
		"$UP/bin/apk" mkpkg --info name:uhttpd --info version:2026.07.24~f682ccab-r1 --info "arch:$arch" \
			--info "description:uhttpd's config and init script (no binary)" --info depends:libc \
			--files "$d/uhttpd" --output "$out/uhttpd-2026.07.24~f682ccab-r1.apk"
	local rc=$?
	rm -rf "$d"
	return $rc
}

# owrt_ipk OUT NAME VERSION ARCH DEPENDS DATADIR: a plain .ipk (no scripts).
owrt_ipk() {
	local out=$1 name=$2 version=$3 arch=$4 depends=$5 data=$6 d
	d=$(mktemp -d)
	mkdir -p "$d/c"
	{
		printf 'Package: %s\nVersion: %s\n' "$name" "$version"
		[ -z "$depends" ] || printf 'Depends: %s\n' "$depends"
		printf 'Architecture: %s\nDescription: %s, made by the test\n' "$arch" "$name"
	} >"$d/c/control"
	printf '2.0\n' >"$d/debian-binary"
	tar --numeric-owner --owner=0 --group=0 -C "$data" -czf "$d/data.tar.gz" . &&
		tar --numeric-owner --owner=0 --group=0 -C "$d/c" -czf "$d/control.tar.gz" . &&
		tar --numeric-owner --owner=0 --group=0 -C "$d" -czf "$out" ./debian-binary ./data.tar.gz ./control.tar.gz
	local rc=$?
	rm -rf "$d"
	return $rc
}

# owrt_base_ipk OUTDIR ARCH: libc and uhttpd .ipk files for ARCH.
owrt_base_ipk() {
	local out=$1 arch=$2 d
	d=$(mktemp -d)
	mkdir -p "$d/libc" "$d/uhttpd"
	owrt_base_files "$d/uhttpd"
	owrt_ipk "$out/libc_1.2.5-4_$arch.ipk" libc 1.2.5-4 "$arch" "" "$d/libc" &&
		owrt_ipk "$out/uhttpd_2026.07.24~f682ccab-1_$arch.ipk" uhttpd 2026.07.24~f682ccab-1 "$arch" libc "$d/uhttpd"
	local rc=$?
	rm -rf "$d"
	return $rc
}

# owrt_newer_release BOARD OUTDIST: release N+1 of BOARD's packages in
# OUTDIST/BOARD/, made by build.sh from a copy of the packaging files (in
# OUTDIST/src; its build.sh makes the feed of that release) whose shipped
# config has one more line, so an upgrade meets a changed conffile.
owrt_newer_release() {
	local board=$1 out=$2 src=$2/src rel
	mkdir -p "$src"
	cp -a "$ROOT/build.sh" "$ROOT/boards" "$ROOT/openwrt-feed" "$ROOT/Cargo.toml" "$ROOT/LICENSE" "$src/"
	mkdir -p "$src/agent/lxc" "$src/tests/lib"
	cp -a "$ROOT/agent/lxc/templates" "$src/agent/lxc/"
	rel=$(sed -n 's/^PKG_RELEASE:=//p' "$ROOT/openwrt-feed/net/nuvol/Makefile")
	sed -i "s/^PKG_RELEASE:=.*/PKG_RELEASE:=$((rel + 1))/" "$src/openwrt-feed/net/nuvol/Makefile"
	printf '# release %s\n' "$((rel + 1))" >>"$src/openwrt-feed/net/nuvol/files/nuvol.config"
	mkdir -p "$out/$board"
	cp "$ROOT/dist/$board/nuvol" "$out/$board/nuvol"
	NUVOL_APK=$UP/bin/apk NUVOL_DIST=$out "$src/build.sh" package "$board" >"$out/package.log" 2>&1
	local rc=$?
	[ "$rc" = 0 ] || cat "$out/package.log"
	return $rc
}

# The boards tests/run.sh cross-builds and that have an OpenWRT package
# arch (galileo has none); NUVOL_TEST_PKG_BOARDS picks others.
# shellcheck disable=SC2034 # read by the suites that source this file
OWRT_BOARDS=${NUVOL_TEST_PKG_BOARDS:-turris-omnia ramips turris-mox alix}

# owrt_packages BOARD: dist/BOARD holds the binary and this tree's .ipk and
# .apk: built when missing, re-packaged when only the binary is there.
owrt_packages() {
	local b=$1 v r
	v=$(awk '/^\[workspace.package\]/{p=1;next} /^\[/{p=0} p&&/^version *=/{gsub(/[" ]/,"");sub(/^version=/,"");print;exit}' "$ROOT/Cargo.toml")
	r=$(sed -n 's/^PKG_RELEASE:=//p' "$ROOT/openwrt-feed/net/nuvol/Makefile")
	OWRT_APK=$ROOT/dist/$b/nuvol-$v-r$r.apk
	OWRT_IPK=$ROOT/dist/$b/nuvol_$v-${r}_$OPENWRT_ARCH.ipk
	# shellcheck disable=SC2034 # read by the suites that source this file
	OWRT_VERSION=$v OWRT_RELEASE=$r
	if [ ! -x "$ROOT/dist/$b/nuvol" ]; then
		echo "building $b first"
		NUVOL_BUDGET=warn "$ROOT/build.sh" "$b" >/dev/null 2>&1
	fi
	[ -x "$ROOT/dist/$b/nuvol" ] || return 1
	# Always re-packaged: the packaging may have changed since the binary.
	NUVOL_APK=$UP/bin/apk "$ROOT/build.sh" package "$b" >/dev/null || return 1
	[ -f "$OWRT_APK" ] && [ -f "$OWRT_IPK" ]
}

# owrt_keep_list ROOT: what sysupgrade would carry over from ROOT, found as
# its keep list is (every line of /lib/upgrade/keep.d/*, expanded by find).
owrt_keep_list() {
	local r=$1 p
	sed -e '/^[[:space:]]*$/d' -e '/^#/d' "$r"/lib/upgrade/keep.d/* | while read -r p; do
		[ -e "$r$p" ] && find "$r$p" -type f -o -type l
	done | sed "s|^$r||"
}
