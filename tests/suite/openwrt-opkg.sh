#!/usr/bin/env bash
# nuvol's .ipk under the real opkg (opkg-lede as OpenWRT 24.10 ships it),
# for every test board's package: a feed made by ./build.sh feed, its
# Packages index signed with a usign key this test makes (the signature
# checked with the real usign against the root's /etc/opkg/keys, as opkg
# does on a router; this opkg build leaves usign out); `opkg --offline-root
# install nuvol` into an empty OpenWRT root (tests/lib/openwrt-root.sh)
# puts every file in place and runs the scripts as OpenWRT's rootfs.mk does
# (--force-postinstall, IPKG_INSTROOT set: rc.d links appear, the
# first-boot script stays for the first boot); an upgrade to the next
# release keeps an edited /etc/config/nuvol and leaves the new one as
# nuvol-opkg; /lib/upgrade/keep.d/nuvol makes sysupgrade keep /etc/nuvol; `opkg remove` takes our files and links away
# and keeps the edited config.
set -u
. "$(dirname "$0")/../lib/common.sh"
. "$ROOT/tests/lib/openwrt-root.sh"
cd "$ROOT" || exit 1

[ -x /bin/busybox ] || t_skip "no /bin/busybox (apt-get install busybox-static)"
owrt_prefix
OPKG=$UP/bin/opkg
USIGN=$UP/bin/usign

t_tmpdir W opkg
"$USIGN" -G -s "$W/feed.sec" -p "$W/feed.pub" -c "nuvol test feed" || t_fail "usign -G"
"$USIGN" -G -s "$W/other.sec" -p "$W/other.pub" -c "another key" || t_fail "usign -G"

# in_root R ARGS...: opkg on root R as OpenWRT's rootfs.mk calls it.
in_root() {
	local r=$1
	shift
	IPKG_INSTROOT=$r TMPDIR=$r/tmp "$OPKG" --offline-root "$r" -f "$r/etc/opkg.conf" --force-postinstall \
		--add-arch "all:100" --add-arch "$A:200" "$@"
}

# new_root R FEED: an empty OpenWRT root with the feed and its key.
new_root() {
	local r=$1 feed=$2 fp
	owrt_root "$r"
	mkdir -p "$r/etc/opkg/keys" "$r/usr/lib/opkg" "$r/var/opkg-lists"
	# What opkg-key add does on a router: the key under its fingerprint.
	fp=$("$USIGN" -F -p "$W/feed.pub")
	cp "$W/feed.pub" "$r/etc/opkg/keys/$fp"
	{
		echo "dest root /"
		echo "dest ram /tmp"
		echo "lists_dir ext /var/opkg-lists"
		echo "option overlay_root /overlay"
		echo "option check_signature"
		# As the README tells a router owner to add the feed.
		echo "src/gz nuvol file://$feed/$A"
	} >"$r/etc/opkg.conf"
}

enabled() { [ "$(readlink "$1/etc/rc.d/S95nuvol")" = ../init.d/nuvol ] && [ "$(readlink "$1/etc/rc.d/K10nuvol")" = ../init.d/nuvol ]; }
disabled() { ! ls "$1"/etc/rc.d/*nuvol >/dev/null 2>&1; }
installed_version() { in_root "$1" status nuvol 2>/dev/null | sed -n 's/^Version: //p'; }

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
	owrt_base_ipk "$F/$A" "$A" || t_fail "$BOARD_NAME: base packages"
	t_check "$BOARD_NAME: ./build.sh feed writes Packages, Packages.gz, Packages.sig" \
		./build.sh feed "$F" --usign-key "$W/feed.sec" "$BOARD_NAME"

	R=$W/root-$BOARD_NAME
	new_root "$R" "$F"
	t_check "$BOARD_NAME: Packages.sig verifies with the root's /etc/opkg/keys (usign -V)" \
		"$USIGN" -V -q -m "$F/$A/Packages" -P "$R/etc/opkg/keys"
	refused() {
		"$USIGN" -S -m "$F/$A/Packages" -s "$W/other.sec" -x "$W/other.sig" &&
			! "$USIGN" -V -q -m "$F/$A/Packages" -x "$W/other.sig" -P "$R/etc/opkg/keys"
	}
	t_check "$BOARD_NAME: a Packages signed by a key the root does not trust does not verify" refused

	# ---------------------------------------------------------- install --
	in_root "$R" update >"$W/update.log" 2>&1 || {
		cat "$W/update.log"
		t_fail "$BOARD_NAME: opkg update"
	}
	in_root "$R" install nuvol >"$W/install.log" 2>&1
	rc=$?
	sed 's/^/    /' "$W/install.log"
	t_check "$BOARD_NAME: opkg install nuvol from the feed (exit $rc)" [ "$rc" = 0 ]
	all_in_place() {
		local p missing=0
		[ -s "$R/usr/lib/opkg/info/nuvol.list" ] || return 1
		while read -r p; do
			[ -e "$R$p" ] || [ -L "$R$p" ] || {
				echo "missing $p"
				missing=1
			}
		done < <(cut -f1 "$R/usr/lib/opkg/info/nuvol.list")
		[ "$missing" = 0 ] && cmp -s "$R/usr/bin/nuvol" "dist/$BOARD_NAME/nuvol" &&
			[ -x "$R/www/cgi-bin/nuvol" ] && grep -q "^exec /usr/bin/nuvol " "$R/www/cgi-bin/nuvol" &&
			[ "$(stat -c %a "$R/etc/config/nuvol")" = 600 ] && [ -x "$R/etc/uci-defaults/90-nuvol" ]
	}
	t_check "$BOARD_NAME: every file of nuvol.list in place (first-boot script kept for the first boot)" all_in_place
	t_check "$BOARD_NAME: postinst enabled the service (rc.d S95nuvol, K10nuvol)" enabled "$R"
	t_check "$BOARD_NAME: opkg records /etc/config/nuvol as a conffile with its checksum" \
		grep -q '^ /etc/config/nuvol [0-9a-f]\{64\}$' "$R/usr/lib/opkg/status"
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
		NUVOL_APK=$UP/bin/apk NUVOL_DIST=$D2 "$D2/src/build.sh" feed "$F" --usign-key "$W/feed.sec" "$BOARD_NAME" >/dev/null
		in_root "$R" update >/dev/null 2>&1
		in_root "$R" upgrade nuvol >"$W/up.log" 2>&1
		rc=$?
		sed 's/^/    /' "$W/up.log"
		now=$(installed_version "$R")
		t_check "$BOARD_NAME: opkg upgrade to release $((OWRT_RELEASE + 1)) (exit $rc, installed $now)" \
			[ "$rc.$now" = "0.$OWRT_VERSION-$((OWRT_RELEASE + 1))" ]
		t_check "$BOARD_NAME: upgrade keeps the edited /etc/config/nuvol, the new one is nuvol-opkg" \
			bash -c "[ \"\$(sha256sum <'$R/etc/config/nuvol')\" = '$edited' ] && grep -qx '# release $((OWRT_RELEASE + 1))' '$R/etc/config/nuvol-opkg'"
		t_check "$BOARD_NAME: still enabled after the upgrade" enabled "$R"
	else
		t_fail "$BOARD_NAME: making release $((OWRT_RELEASE + 1))"
	fi

	# ----------------------------------------------------------- remove --
	cut -f1 "$R/usr/lib/opkg/info/nuvol.list" >"$W/list"
	in_root "$R" remove nuvol >"$W/rm.log" 2>&1
	rc=$?
	sed 's/^/    /' "$W/rm.log"
	t_check "$BOARD_NAME: opkg remove nuvol (exit $rc)" [ "$rc" = 0 ]
	files_gone() {
		local p left=0
		while read -r p; do
			[ "$p" = /etc/config/nuvol ] && continue
			if [ -e "$R$p" ] || [ -L "$R$p" ]; then
				echo "left: $p"
				left=1
			fi
		done <"$W/list"
		[ "$left" = 0 ] && [ ! -e "$R/usr/lib/opkg/info/nuvol.list" ]
	}
	t_check "$BOARD_NAME: removal takes every other file of ours away" files_gone
	t_check "$BOARD_NAME: prerm disabled the service (no rc.d links)" disabled "$R"
	t_check "$BOARD_NAME: removal keeps the edited /etc/config/nuvol" \
		bash -c "[ \"\$(sha256sum <'$R/etc/config/nuvol' 2>/dev/null)\" = '$edited' ]"
	rm -rf "$R" "$D2" "$F"
done
t_done
