# shellcheck shell=bash
# A small OpenWRT root for running nuvol's files under the real programs
# (procd, ubusd, uhttpd: the openwrt-procd and openwrt-uhttpd suites; the
# package-manager suites use tests/lib/openwrt-root.sh, an empty root that
# apk and opkg fill).
# Source it after tests/lib/common.sh:
#   owrt_run_root R PREFIX NUVOL_BIN   lay out R (see below)
#   owrt_mount R PREFIX            the mounts R needs; ONLY inside a private
#                                  mount namespace (unshare -m): they bind host
#                                  library folders, read-only, into R
#   owrt_in R CMD...               run CMD in R (chroot, OpenWRT's PATH, clean env)
#   owrt_boot R LOG                syslogd (R/var/log/messages), ubusd, procd
#                                  (its log in LOG) in R; pids added to T_PIDS
#
# R gets busybox (static, as /bin/sh and its applets, as on a router),
# OpenWRT's rc.common, functions.sh, service.sh and procd.sh (byte-exact
# copies in ../shared/upstream/openwrt), the upstream procd, ubusd, ubus,
# uci, jshn (+ jshn.sh) and uhttpd from PREFIX, and nuvol's package files
# installed the way openwrt-feed/net/nuvol/Makefile's Package/nuvol/install
# does. The upstream programs are dynamic glibc binaries: owrt_mount binds
# the host's /usr/lib/x86_64-linux-gnu and /usr/lib64 into R and PREFIX at
# its own path (their rpath). ubus and procd use their built-in socket
# /var/run/ubus/ubus.sock, which is R's inside `chroot R`.

OWRT_RUN_UPSTREAM=${NUVOL_UPSTREAM:-$ROOT/../shared/upstream}
OWRT_RUN_FILES=$OWRT_RUN_UPSTREAM/openwrt

owrt_run_root() {
	local r=$1 prefix=$2 bin=$3 feed=$ROOT/openwrt-feed/net/nuvol
	mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,usr/share/libubox,lib/functions,etc/config,etc/init.d,etc/rc.d,etc/uci-defaults,var/run/ubus,var/lock,var/log,tmp,proc,sys,dev,www,root} || return 1
	ln -s /var/run "$r/run" 2>/dev/null
	chmod 1777 "$r/tmp"
	cp /usr/bin/busybox "$r/bin/busybox" || return 1
	local applet
	for applet in $(busybox --list); do
		case $applet in busybox | ubus | uci | jshn) continue ;; esac
		[ -e "$r/bin/$applet" ] || ln -s busybox "$r/bin/$applet"
	done
	# Debian's busybox has no flock applet (OpenWRT's has): the host's one
	# runs on the bound glibc.
	cp "$(command -v flock)" "$r/usr/bin/flock" || return 1
	cp "$OWRT_RUN_FILES/package/base-files/files/etc/rc.common" "$r/etc/rc.common"
	cp "$OWRT_RUN_FILES/package/base-files/files/lib/functions.sh" "$r/lib/functions.sh"
	cp "$OWRT_RUN_FILES/package/base-files/files/lib/functions/service.sh" "$r/lib/functions/service.sh"
	cp "$OWRT_RUN_FILES/package/system/procd/files/procd.sh" "$r/lib/functions/procd.sh"
	cp "$prefix/sbin/procd" "$prefix/sbin/ubusd" "$r/sbin/"
	cp "$prefix/bin/ubus" "$prefix/bin/jshn" "$r/usr/bin/"
	cp "$prefix/bin/uhttpd" "$r/usr/sbin/uhttpd"
	cp "$prefix/bin/uci" "$r/sbin/uci"
	cp "$prefix/share/libubox/jshn.sh" "$r/usr/share/libubox/jshn.sh"
	printf 'root:x:0:0:root:/root:/bin/ash\nnobody:*:65534:65534:nobody:/var:/bin/false\n' >"$r/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
	# A stock router: root without a password.
	printf 'root:::0:99999:7:::\nnobody:*:0:0:99999:7:::\n' >"$r/etc/shadow"
	chmod 600 "$r/etc/shadow"
	printf "config system\n\toption hostname 'OpenWrt'\n" >"$r/etc/config/system"
	# The uci package's /lib/config/uci.sh is not among the copies: these
	# are the two functions the scripts here use. uci_get (procd.sh reads
	# the system-wide respawn settings with it) and uci_load, behind
	# functions.sh's config_load (uhttpd's init script): `uci export` is
	# shell syntax that functions.sh's config/option/list functions read.
	mkdir -p "$r/lib/config"
	cat >"$r/lib/config/uci.sh" <<-'EOF'
		uci_get() {
			uci -q get "$1${2:+.$2}${3:+.$3}" || { [ -n "${4-}" ] && echo "$4"; }
		}
		uci_load() {
			local data
			CONFIG_SECTIONS= CONFIG_NUM_SECTIONS=0 CONFIG_SECTION=
			data="$(uci -P /var/state -S -n export "$1" 2>/dev/null)" || return 1
			[ -z "$data" ] || eval "$data"
			${CONFIG_SECTION:+config_cb}
			return 0
		}
	EOF
	# reload_config as base-files has it: tell procd about each config file
	# whose `uci show` changed since the last run.
	cat >"$r/sbin/reload_config" <<-'EOF'
		#!/bin/sh
		mkdir -p /var/run/config.check
		for config in /etc/config/*; do
			uci show "${config##*/}" >/var/run/config.check/${config##*/}
		done
		if [ -f /var/run/config.md5 ]; then
			for c in $(md5sum -c /var/run/config.md5 2>/dev/null | grep FAILED | cut -d: -f1); do
				ubus call service event "{ \"type\": \"config.change\", \"data\": { \"package\": \"${c##*/}\" } }"
			done
		fi
		md5sum /var/run/config.check/* >/var/run/config.md5
		rm -rf /var/run/config.check
	EOF
	chmod 755 "$r/sbin/reload_config"

	# Package/nuvol/install, step by step.
	install -m 0755 "$bin" "$r/usr/bin/nuvol" || return 1
	install -m 0755 "$feed/files/nuvol.init" "$r/etc/init.d/nuvol"
	install -m 0644 "$feed/files/nuvol.config" "$r/etc/config/nuvol"
	install -m 0755 "$feed/files/nuvol.uci-defaults" "$r/etc/uci-defaults/90-nuvol"
	mkdir -p "$r/www/cgi-bin" "$r/usr/share/nuvol/templates"
	install -m 0755 "$feed/files/nuvol.cgi" "$r/www/cgi-bin/nuvol"
	cp "$ROOT"/agent/lxc/templates/*.app "$r/usr/share/nuvol/templates/"
}

owrt_mount() {
	local r=$1 prefix=$2 d
	mount -t proc proc "$r/proc" || return 1
	mount -t sysfs sysfs "$r/sys" || return 1
	mount -t tmpfs -o mode=755 tmpfs "$r/dev" || return 1
	for d in null zero random urandom tty; do
		touch "$r/dev/$d"
		mount --bind "/dev/$d" "$r/dev/$d" || return 1
	done
	for d in /usr/lib/x86_64-linux-gnu /usr/lib64 "$prefix"; do
		[ -d "$d" ] || continue
		mkdir -p "$r$d"
		mount -o bind,ro "$d" "$r$d" || return 1
	done
	mkdir -p "$r/lib"
	[ -e "$r/lib/x86_64-linux-gnu" ] || ln -s /usr/lib/x86_64-linux-gnu "$r/lib/x86_64-linux-gnu"
	[ -e "$r/lib64" ] || ln -s /usr/lib64 "$r/lib64"
}

owrt_in() {
	local r=$1
	shift
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root chroot "$r" "$@"
}

owrt_boot() {
	local r=$1 log=$2
	owrt_in "$r" /bin/syslogd -n -O /var/log/messages &
	T_PIDS+=($!)
	owrt_in "$r" /sbin/ubusd &
	T_PIDS+=($!)
	t_wait 10 test -S "$r/var/run/ubus/ubus.sock" || { echo "ubusd did not start" >&2; return 1; }
	owrt_in "$r" /sbin/procd -S -s /var/run/ubus/ubus.sock >"$log" 2>&1 &
	T_PIDS+=($!)
	t_wait 10 owrt_in "$r" ubus list service >/dev/null 2>&1 || {
		echo "procd did not register the service object:" >&2
		cat "$log" >&2
		return 1
	}
}
