#!/usr/bin/env bash
# The .ipk that build.sh makes without the SDK, taken apart with tar:
# three members; control fields right for the board; its data, unpacked into
# an empty root, gives a /usr/bin/nuvol that runs on the board's CPU, the
# procd init script, the UCI config, the uci-defaults script and the CGI
# link; the data file list equals what the feed Makefile installs; the init
# script asks procd for what it should (the first-boot script: see
# openwrt-procd.sh); the shipped config is accepted by the agent and by the
# page; the .apk beside it holds the same files and is as reproducible.
#
# NUVOL_TEST_IPK_BOARD picks the board (default turris-omnia); dist/ is
# built first if it holds no .ipk for it.
set -u
. "$(dirname "$0")/../lib/common.sh"
cd "$ROOT" || exit 1

BOARD_NAME=${NUVOL_TEST_IPK_BOARD:-turris-omnia}
t_board "$BOARD_NAME" || t_skip "no board $BOARD_NAME"
[ -n "$OPENWRT_ARCH" ] || t_skip "$BOARD_NAME has no opkg arch, so no .ipk"
VERSION=$(awk '/^\[workspace.package\]/{p=1;next} /^\[/{p=0} p&&/^version *=/{gsub(/[" ]/,"");sub(/^version=/,"");print;exit}' Cargo.toml)
RELEASE=$(sed -n 's/^PKG_RELEASE:=//p' openwrt-feed/net/nuvol/Makefile)
IPK=dist/$BOARD_NAME/nuvol_${VERSION}-${RELEASE}_$OPENWRT_ARCH.ipk
if [ ! -f "$IPK" ] || [ ! -x "dist/$BOARD_NAME/nuvol" ]; then
	echo "building $BOARD_NAME first"
	# An over-budget board still gets its files; the budget is tested elsewhere.
	./build.sh "$BOARD_NAME" >/dev/null 2>&1
fi
[ -f "$IPK" ] || {
	t_fail "build.sh made no $IPK"
	t_done
}
RUN=("qemu-$QEMU_USER_ARCH-static" -cpu "$QEMU_USER_CPU")
command -v "${RUN[0]}" >/dev/null || t_skip "${RUN[0]} not installed"

t_tmpdir W ipk
tar -xzf "$IPK" -C "$W" || t_fail "outer tar does not unpack"

# --------------------------------------------------------------- members --
t_check "outer tar.gz holds exactly debian-binary, data.tar.gz, control.tar.gz" \
	[ "$(tar -tzf "$IPK" | sort | tr '\n' ' ')" = "./control.tar.gz ./data.tar.gz ./debian-binary " ]
t_check "debian-binary is 2.0" [ "$(cat "$W/debian-binary")" = "2.0" ]

mkdir -p "$W/control" "$W/root"
tar -xzf "$W/control.tar.gz" -C "$W/control"
tar -xzf "$W/data.tar.gz" -C "$W/root"
C=$W/control/control
field() { sed -n "s/^$1: //p" "$C"; }
t_check "control: Package nuvol" [ "$(field Package)" = nuvol ]
t_check "control: Version $VERSION-$RELEASE" [ "$(field Version)" = "$VERSION-$RELEASE" ]
t_check "control: Architecture $OPENWRT_ARCH" [ "$(field Architecture)" = "$OPENWRT_ARCH" ]
# No made-up contact or home page: the fields are left out until real ones exist.
t_check "control: no placeholder Maintainer or URL" bash -c "! grep -qi 'example.invalid' '$C'"
t_check "control: License GPL-2.0-only" [ "$(field License)" = GPL-2.0-only ]
t_check "control: Depends on libc and uhttpd" [ "$(field Depends)" = "libc, uhttpd" ]
t_check "control: Description with an indented long text" \
	bash -c "grep -q '^Description: .\+' '$C' && grep -q '^ [A-Za-z]' '$C'"
DATA_BYTES=$(find "$W/root" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
t_check "control: Installed-Size is the data's size ($DATA_BYTES)" [ "$(field Installed-Size)" = "$DATA_BYTES" ]
t_check "control: no empty or unknown-format lines" bash -c "! grep -vqE '^([A-Z][A-Za-z-]+: .+| .+)$' '$C'"
t_check "conffiles lists /etc/config/nuvol" [ "$(cat "$W/control/conffiles")" = /etc/config/nuvol ]
t_check "/lib/upgrade/keep.d/nuvol keeps /etc/nuvol/ on sysupgrade" \
	bash -c "tar -xzOf '$W/data.tar.gz' ./lib/upgrade/keep.d/nuvol | grep -qx /etc/nuvol/"
t_check "postinst enables via default_postinst" bash -c "[ -x '$W/control/postinst' ] && grep -q default_postinst '$W/control/postinst'"
t_check "prerm disables via default_prerm" bash -c "[ -x '$W/control/prerm' ] && grep -q default_prerm '$W/control/prerm'"

# The postinst as opkg runs it, against a stub of OpenWRT's functions.sh.
postinst_calls_default() {
	local inst
	t_tmpdir inst instroot
	mkdir -p "$inst/lib"
	printf 'default_postinst() { echo "default_postinst $*" > "%s/called"; }\n' "$inst" >"$inst/lib/functions.sh"
	IPKG_INSTROOT=$inst sh "$W/control/postinst" configure && grep -q "default_postinst .*postinst configure" "$inst/called"
}
t_check "postinst runs default_postinst (enable, start, uci-defaults)" postinst_calls_default

# ------------------------------------------------------------ data root --
R=$W/root
mode() { stat -c %a "$1"; }
t_check "/usr/bin/nuvol 755, the dist binary" bash -c "[ \"\$(stat -c %a '$R/usr/bin/nuvol')\" = 755 ] && cmp -s '$R/usr/bin/nuvol' 'dist/$BOARD_NAME/nuvol'"
t_check "/etc/init.d/nuvol 755" [ "$(mode "$R/etc/init.d/nuvol")" = 755 ]
t_check "/etc/config/nuvol 600" [ "$(mode "$R/etc/config/nuvol")" = 600 ]
t_check "/etc/uci-defaults/90-nuvol 755" [ "$(mode "$R/etc/uci-defaults/90-nuvol")" = 755 ]
t_check "/www/cgi-bin/nuvol 755, a script that execs /usr/bin/nuvol" bash -c "[ \"\$(stat -c %a '$R/www/cgi-bin/nuvol')\" = 755 ] && grep -q '^exec /usr/bin/nuvol ' '$R/www/cgi-bin/nuvol'"
t_check "data owned by root" bash -c "! tar -tvzf '$W/data.tar.gz' | awk '{print \$2}' | grep -qv '^0/0$'"
version_out=$("${RUN[@]}" "$R/usr/bin/nuvol" --version 2>&1)
t_check "/usr/bin/nuvol --version on ${RUN[*]}: $version_out" [ "$version_out" = "nuvol $VERSION" ]

# The page through the binary /www/cgi-bin/nuvol execs, with the shipped
# config (its state dir moved off the host's /etc).
t_tmpdir S state
sed "s|option state '/etc/nuvol'|option state '$S'|" "$R/etc/config/nuvol" >"$W/nuvol.conf"
cgi_answers() {
	local out
	out=$(cd "$S" && env -i GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=GET SCRIPT_NAME=/cgi-bin/nuvol \
		PATH_INFO= QUERY_STRING= SERVER_NAME=router SERVER_PORT=80 REMOTE_ADDR=127.0.0.1 \
		NUVOL_CONFIG="$W/nuvol.conf" NUVOL_CONTROL="$S/none.sock" \
		"${RUN[@]}" "$R/usr/bin/nuvol" 2>&1 </dev/null)
	printf '%s\n' "$out" | head -n 5
	printf '%s\n' "$out" | grep -qi '^Content-Type:' && ! printf '%s\n' "$out" | grep -q 'configuration error'
}
t_check "CGI through /www/cgi-bin/nuvol answers with the shipped config" cgi_answers

# ------------------------------------------------- feed install set == data --
feed_list() {
	awk '/^define Package\/nuvol\/install/{p=1;next} /^endef/{p=0} p' openwrt-feed/net/nuvol/Makefile |
		awk '{
			dst=$NF; sub(/^\$\(1\)/, "", dst)
			mode=""
			if ($1=="$(INSTALL_BIN)") mode=755
			else if ($1=="$(INSTALL_CONF)") mode=600
			else if ($1=="$(INSTALL_DATA)") mode=644
			else if ($1=="$(LN)") print "l " dst " -> " $2
			if (mode == "") next
			# Into a directory: one file per source, globs expanded below.
			if (dst ~ /\/$/) { src=$(NF-1); sub(/^\$\(NUVOL_SOURCE_DIR\)\//, "", src); print "glob " mode " " dst " " src }
			else print "f " mode " " dst
		}' | while read -r kind mode dst src; do
			if [ "$kind" = glob ]; then
				for f in $src; do echo "f $mode $dst${f##*/}"; done
			else
				echo "$kind $mode $dst${src:+ $src}"
			fi
		done | sort
}
data_list() {
	tar -tvzf "$W/data.tar.gz" | awk '{
		t=substr($1,1,1); name=$6; sub(/^\./, "", name)
		if (t=="-") { m=0; s=substr($1,2,9)
			for (i=0;i<3;i++) { v=0
				if (substr(s,i*3+1,1)=="r") v+=4; if (substr(s,i*3+2,1)=="w") v+=2; if (substr(s,i*3+3,1)=="x") v+=1
				m=m*10+v }
			print "f " m " " name }
		else if (t=="l") print "l " name " -> " $8
	}' | sort
}
compare_lists() {
	diff <(feed_list) <(data_list) && [ "$(feed_list | wc -l)" -ge 5 ]
}
t_check "the .ipk data is exactly the feed Makefile's install set" compare_lists

# --------------------------------------------------- procd init script --
init_asks_procd() {
	local out
	out=$(
		procd_open_instance() { echo "open $*"; }
		procd_set_param() { echo "param $*"; }
		procd_close_instance() { echo close; }
		procd_add_reload_trigger() { echo "trigger $*"; }
		procd_send_signal() { echo "signal $*"; }
		# shellcheck disable=SC1090
		. "$R/etc/init.d/nuvol"
		echo "USE_PROCD=$USE_PROCD START=$START"
		start_service
		service_triggers
		reload_service
	)
	printf '%s\n' "$out"
	for want in "USE_PROCD=1 START=95" "open agent" "param command /usr/bin/nuvol agent --config /etc/config/nuvol" \
		"param respawn" "param stdout 1" "param stderr 1" "param term_timeout 10" "close" \
		"trigger nuvol" "signal nuvol agent HUP"; do
		grep -qxF "$want" <<<"$out" || {
			echo "missing: $want"
			return 1
		}
	done
}
t_check "init script: procd instance with respawn, logs, term_timeout, reload on config nuvol" init_asks_procd

# ------------------------------------------------------- uci-defaults --
# The first-boot script runs under the real uci and busybox in
# tests/suite/openwrt-procd.sh (names, idempotence, kept documentation).

# ----------------------------------------- the agent takes the shipped config --
if t_agent_exists "${RUN[@]}" "$R/usr/bin/nuvol"; then
	agent_accepts_config() {
		local d port pid
		t_tmpdir d agent
		port=$(t_port)
		"${RUN[@]}" "$R/usr/bin/nuvol" agent --config "$R/etc/config/nuvol" --bind "127.0.0.1:$port" \
			--control "$d/sock" --state "$d/state" --beacon-port 0 </dev/null >"$d/log" 2>&1 &
		pid=$!
		T_PIDS+=("$pid")
		t_wait 30 "${RUN[@]}" "$R/usr/bin/nuvol" --control "$d/sock" info >/dev/null 2>&1 || {
			cat "$d/log"
			return 1
		}
		kill -TERM "$pid"
		t_wait 10 t_gone "$pid" || return 1
		wait "$pid"
		local rc=$?
		cat "$d/log"
		[ "$rc" = 0 ]
	}
	t_check "the agent runs with the shipped /etc/config/nuvol and leaves on SIGTERM (exit 0)" agent_accepts_config
else
	echo "note: this nuvol has no agent command yet; shipped-config run left out"
fi

# ---------------------------------------------------- reproducibility --
reproducible() {
	local before after
	SOURCE_DATE_EPOCH=1700000000 ./build.sh package "$BOARD_NAME" || return 1
	before=$(sha256sum <"$IPK")
	sleep 1
	SOURCE_DATE_EPOCH=1700000000 ./build.sh package "$BOARD_NAME" || return 1
	after=$(sha256sum <"$IPK")
	[ "$before" = "$after" ]
}
t_check "packaging twice gives the same .ipk bytes" reproducible

# ------------------------------------------------ the .apk beside it --
APKF=dist/$BOARD_NAME/nuvol-$VERSION-r$RELEASE.apk
t_check "the .apk is beside the .ipk" [ -f "$APKF" ]
if UP=$(tests/lib/upstream.sh --prefix 2>/dev/null); then
	apk_same_files() {
		local d
		d=$(mktemp -d)
		"$UP/bin/apk" extract --allow-untrusted --destination "$d" "$APKF" || return 1
		# The .apk holds the .ipk's data plus apk's own records.
		diff <(cd "$W/root" && find . \( -type f -o -type l \) | sort) \
			<(cd "$d" && find . \( -type f -o -type l \) | grep -v '^./lib/apk/packages/' | sort) &&
			cmp -s "$d/usr/bin/nuvol" "dist/$BOARD_NAME/nuvol"
		local rc=$?
		rm -rf "$d"
		return $rc
	}
	t_check "the .apk holds the same files as the .ipk (apk extract)" apk_same_files
	apk_reproducible() {
		local before
		SOURCE_DATE_EPOCH=1700000000 ./build.sh package "$BOARD_NAME" >/dev/null || return 1
		before=$(sha256sum <"$APKF")
		sleep 1
		SOURCE_DATE_EPOCH=1700000000 ./build.sh package "$BOARD_NAME" >/dev/null || return 1
		[ "$before" = "$(sha256sum <"$APKF")" ]
	}
	t_check "packaging twice gives the same .apk bytes" apk_reproducible
else
	echo "note: OpenWRT's apk not built (tests/lib/upstream.sh); .apk contents left to openwrt-apk.sh"
fi

t_done
