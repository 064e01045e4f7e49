#!/usr/bin/env bash
# nuvol's .apk under the real apk (apk-tools 3.0.6, as OpenWRT 25.12 ships
# it), for every test board's package: a feed made by ./build.sh feed, its
# index signed with a key this test makes and the root then trusts (no
# --allow-untrusted anywhere; an index signed by another key is refused);
# `apk add nuvol` into an empty OpenWRT root (tests/lib/openwrt-root.sh)
# puts every file of nuvol.list in place and runs the post-install script
# the way a router does (apk chroots into the root): the first-boot script
# runs under the real uci and is removed, rc.d links appear; an upgrade to
# the next release keeps an edited /etc/config/nuvol and leaves the new
# one beside it as .apk-new; /lib/upgrade/keep.d/nuvol makes sysupgrade keep
# /etc/nuvol; `apk del` takes our files and links away and keeps the edited
# config. The ImageBuilder's way (scripts run outside the root with
# IPKG_INSTROOT) is checked too: links appear, the first-boot script stays
# for the first boot.
set -u
. "$(dirname "$0")/../lib/common.sh"
. "$ROOT/tests/lib/openwrt-root.sh"
cd "$ROOT" || exit 1

command -v openssl >/dev/null || t_skip "openssl not installed (it makes the feed's signing key)"
[ -x /bin/busybox ] || t_skip "no /bin/busybox (apt-get install busybox-static)"
owrt_prefix
APK=$UP/bin/apk

t_tmpdir W apk
openssl ecparam -name prime256v1 -genkey -noout -out "$W/feed-key.pem" 2>/dev/null
openssl ec -in "$W/feed-key.pem" -pubout -out "$W/feed-key.pub.pem" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$W/other-key.pem" 2>/dev/null

# in_root R ARGS...: apk on root R, trusting only R's /etc/apk/keys.
in_root() {
	local r=$1
	shift
	"$APK" --root "$r" --no-cache --no-interactive "$@"
}

# new_root R ARCH FEED: an empty OpenWRT root that trusts the feed's key.
new_root() {
	local r=$1 arch=$2 feed=$3
	owrt_root "$r"
	mkdir -p "$r/etc/apk/keys" "$r/etc/apk/repositories.d"
	cp "$W/feed-key.pub.pem" "$r/etc/apk/keys/nuvol-feed.pem"
	# As the README tells a router owner to add the feed.
	printf '%s\n' "$feed/$arch/packages.adb" >"$r/etc/apk/repositories.d/customfeeds.list"
	in_root "$r" add --initdb --arch "$arch" >/dev/null
}

# listed_files_in_place R: every path of nuvol.list is in the root, and
# /usr/bin/nuvol is the board's binary.
listed_files_in_place() {
	local r=$1 p missing=0
	[ -s "$r/lib/apk/packages/nuvol.list" ] || return 1
	while read -r p; do
		# A live install runs the first-boot script and deletes it.
		[ "$p" = /etc/uci-defaults/90-nuvol ] && continue
		[ -e "$r$p" ] || [ -L "$r$p" ] || {
			echo "missing $p"
			missing=1
		}
	done <"$r/lib/apk/packages/nuvol.list"
	[ "$missing" = 0 ] && cmp -s "$r/usr/bin/nuvol" "dist/$BOARD_NAME/nuvol" &&
		[ -x "$r/www/cgi-bin/nuvol" ] && grep -q "^exec /usr/bin/nuvol " "$r/www/cgi-bin/nuvol" &&
		[ "$(stat -c %a "$r/etc/config/nuvol")" = 600 ]
}
enabled() { [ "$(readlink "$1/etc/rc.d/S95nuvol")" = ../init.d/nuvol ] && [ "$(readlink "$1/etc/rc.d/K10nuvol")" = ../init.d/nuvol ]; }
disabled() { ! ls "$1"/etc/rc.d/*nuvol >/dev/null 2>&1; }
installed_version() { in_root "$1" query --fields version --installed nuvol 2>/dev/null | sed -n 's/^Version: *//p'; }

for BOARD_NAME in $OWRT_BOARDS; do
	t_board "$BOARD_NAME" || {
		t_fail "no board $BOARD_NAME"
		continue
	}
	echo "--- $BOARD_NAME ($OPENWRT_ARCH)"
	owrt_packages "$BOARD_NAME" || {
		t_fail "$BOARD_NAME: no packages in dist/$BOARD_NAME (./build.sh $BOARD_NAME)"
		continue
	}
	A=$OPENWRT_ARCH
	F=$W/feed-$BOARD_NAME
	mkdir -p "$F/$A"
	owrt_base_apk "$F/$A" "$A" >/dev/null || t_fail "$BOARD_NAME: base packages"
	t_check "$BOARD_NAME: ./build.sh feed indexes and signs the feed" \
		./build.sh feed "$F" --apk-key "$W/feed-key.pem" "$BOARD_NAME"

	# ------------------------------------------------- the package itself --
	pkg_fields() {
		local d
		d=$("$APK" adbdump "$OWRT_APK") || return 1
		grep -qx "  name: nuvol" <<<"$d" && grep -qx "  version: $OWRT_VERSION-r$OWRT_RELEASE" <<<"$d" &&
			grep -qx "  arch: $A" <<<"$d" && grep -qx "  license: GPL-2.0-only" <<<"$d" &&
			grep -qx "    - uhttpd" <<<"$d" && grep -q "^  post-install: " <<<"$d" &&
			grep -q "^  post-upgrade: " <<<"$d" && grep -q "^  pre-deinstall: " <<<"$d" &&
			! grep -q example.invalid <<<"$d"
	}
	t_check "$BOARD_NAME: .apk info: name, version X.Y.Z-rN, arch, license, depends, the three scripts" pkg_fields
	t_check "$BOARD_NAME: apk accepts the version $OWRT_VERSION-r$OWRT_RELEASE" \
		"$APK" version --check "$OWRT_VERSION-r$OWRT_RELEASE"

	# ------------------------------------------------------------ trust --
	R0=$W/root-untrusted-$BOARD_NAME
	F0=$W/feed-other-$BOARD_NAME
	mkdir -p "$F0/$A"
	cp "$F/$A"/*.apk "$F0/$A/"
	(cd "$F0/$A" && "$APK" mkndx --allow-untrusted --sign "$W/other-key.pem" --output packages.adb ./*.apk) >/dev/null
	new_root "$R0" "$A" "$F0"
	refused() {
		local out
		out=$(in_root "$R0" add nuvol 2>&1) && return 1
		echo "$out" | tail -n 2
		[ ! -e "$R0/usr/bin/nuvol" ]
	}
	t_check "$BOARD_NAME: an index signed by a key the root does not trust is refused" refused

	# ------------------------------------------------- install, as a router --
	R=$W/root-$BOARD_NAME
	new_root "$R" "$A" "$F"
	in_root "$R" add nuvol >"$W/add.log" 2>&1
	rc=$?
	sed 's/^/    /' "$W/add.log"
	t_check "$BOARD_NAME: apk add nuvol from the signed feed (exit $rc)" [ "$rc" = 0 ]
	t_check "$BOARD_NAME: every file of nuvol.list in place, the board's binary, the CGI script, config 600" \
		listed_files_in_place "$R"
	t_check "$BOARD_NAME: conffiles and conffiles_static beside nuvol.list, /etc/nuvol/ in keep.d" \
		bash -c "grep -qx /etc/config/nuvol '$R/lib/apk/packages/nuvol.conffiles' &&
			grep -qx /etc/nuvol/ '$R/lib/upgrade/keep.d/nuvol' &&
			grep -q '^/etc/config/nuvol [0-9a-f]\{64\}$' '$R/lib/apk/packages/nuvol.conffiles_static'"
	t_check "$BOARD_NAME: post-install enabled the service (rc.d S95nuvol, K10nuvol)" enabled "$R"
	# shellcheck disable=SC2016 # $p$root is uhttpd's, literally
	first_boot_ran() {
		[ ! -e "$R/etc/uci-defaults/90-nuvol" ] && grep -qx '/cgi-bin/nuvol:root:$p$root' "$R/etc/httpd.conf" &&
			[ -n "$(chroot "$R" /sbin/uci -q get nuvol.main.name)" ]
	}
	t_check "$BOARD_NAME: post-install ran the first-boot script under uci (name set, realm added, script gone)" first_boot_ran
	keeps_state() {
		mkdir -p "$R/etc/nuvol/services.d"
		echo state >"$R/etc/nuvol/node.state"
		echo svc >"$R/etc/nuvol/services.d/web"
		local keep
		keep=$(owrt_keep_list "$R")
		grep -qx /etc/nuvol/node.state <<<"$keep" && grep -qx /etc/nuvol/services.d/web <<<"$keep"
	}
	t_check "$BOARD_NAME: /lib/upgrade/keep.d/nuvol makes sysupgrade keep /etc/nuvol (state, services.d)" keeps_state

	# ---------------------------------------------------------- upgrade --
	printf '\n# edited by the owner\n' >>"$R/etc/config/nuvol"
	edited=$(sha256sum <"$R/etc/config/nuvol")
	D2=$W/dist2-$BOARD_NAME
	if owrt_newer_release "$BOARD_NAME" "$D2"; then
		NUVOL_APK=$APK NUVOL_DIST=$D2 "$D2/src/build.sh" feed "$F" --apk-key "$W/feed-key.pem" "$BOARD_NAME" >/dev/null
		in_root "$R" upgrade >"$W/up.log" 2>&1
		rc=$?
		sed 's/^/    /' "$W/up.log"
		now=$(installed_version "$R")
		t_check "$BOARD_NAME: apk upgrade to release $((OWRT_RELEASE + 1)) (exit $rc, installed $now)" \
			[ "$rc.$now" = "0.$OWRT_VERSION-r$((OWRT_RELEASE + 1))" ]
		t_check "$BOARD_NAME: upgrade keeps the edited /etc/config/nuvol, the new one is .apk-new" \
			bash -c "[ \"\$(sha256sum <'$R/etc/config/nuvol')\" = '$edited' ] && grep -qx '# release $((OWRT_RELEASE + 1))' '$R/etc/config/nuvol.apk-new'"
		t_check "$BOARD_NAME: still enabled after the upgrade" enabled "$R"
	else
		t_fail "$BOARD_NAME: making release $((OWRT_RELEASE + 1))"
	fi

	# ----------------------------------------------------------- remove --
	cp "$R/lib/apk/packages/nuvol.list" "$W/list"
	in_root "$R" del nuvol >"$W/del.log" 2>&1
	rc=$?
	sed 's/^/    /' "$W/del.log"
	t_check "$BOARD_NAME: apk del nuvol (exit $rc)" [ "$rc" = 0 ]
	files_gone() {
		local p left=0
		while read -r p; do
			[ "$p" = /etc/config/nuvol ] && continue
			if [ -e "$R$p" ] || [ -L "$R$p" ]; then
				echo "left: $p"
				left=1
			fi
		done <"$W/list"
		[ "$left" = 0 ]
	}
	t_check "$BOARD_NAME: removal takes every other file of ours away" files_gone
	t_check "$BOARD_NAME: pre-deinstall disabled the service (no rc.d links)" disabled "$R"
	t_check "$BOARD_NAME: removal keeps the edited /etc/config/nuvol" \
		bash -c "[ \"\$(sha256sum <'$R/etc/config/nuvol' 2>/dev/null)\" = '$edited' ]"

	# ---------------------------------------- as the ImageBuilder does it --
	RI=$W/root-image-$BOARD_NAME
	new_root "$RI" "$A" "$F"
	# Scripts outside the root, told where it is (OpenWRT's rootfs.mk).
	IPKG_INSTROOT=$RI "$APK" --root "$RI" --no-cache --no-interactive --force-no-chroot --preserve-env \
		add nuvol >"$W/ib.log" 2>&1
	rc=$?
	sed 's/^/    /' "$W/ib.log"
	t_check "$BOARD_NAME: offline root (IPKG_INSTROOT): installed and enabled, first-boot script left for the first boot" \
		bash -c "[ $rc = 0 ] && [ \"\$(readlink '$RI/etc/rc.d/S95nuvol')\" = ../init.d/nuvol ] && [ -x '$RI/etc/uci-defaults/90-nuvol' ] && [ ! -e '$RI/etc/httpd.conf' ]"
	rm -rf "$R0" "$R" "$RI" "$D2" "$F" "$F0"
done
t_done
