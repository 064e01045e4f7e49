#!/usr/bin/env bash
# The installed page (/www/cgi-bin/nuvol) under the real uhttpd, started by
# OpenWRT's own uhttpd init script and config through the real procd, with
# the /etc/httpd.conf realm our uci-defaults wrote, in the OpenWRT-like root
# of tests/lib/openwrt-run-root.sh (chroot in fresh mount, network and pid
# namespaces, so uhttpd listens on port 80 of a private loopback).
#
# Checks:
#   - a stock router (root without a password): uhttpd leaves the realm
#     open, and the page shows nothing but how to set a password (403), to
#     GET and POST alike;
#   - `passwd` sets one while uhttpd runs: the next request makes the page
#     restart uhttpd (503, "reload in a few seconds"), then uhttpd asks for
#     the login: 401 without or with wrong credentials, the page with root's
#     password; no manual restart;
#   - a fresh install's overview says gossip is unencrypted and POST /key
#     (CSRF token required) makes, installs and uses a key, shown once;
#   - POST + CSRF through uhttpd: no token -> 403 and nothing reaches the
#     agent, the page's token -> 303 and the service is published;
#   - the same with uhttpd's no_symlinks (-S).
# NUVOL_BIN may name the agent binary; by default the debug build is used.
# Exit: 0 pass, 1 fail, 77 skipped (not root, no unshare/busybox/curl, no upstream build).
set -u
. "$(dirname "$0")/../lib/common.sh"
. "$ROOT/tests/lib/openwrt-run-root.sh"

if [ "${1:-}" != --inner ]; then
	[ "$(id -u)" = 0 ] || t_skip "needs root for mount and network namespaces"
	command -v unshare >/dev/null || t_skip "no unshare"
	command -v curl >/dev/null || t_skip "no curl"
	file -L /usr/bin/busybox 2>/dev/null | grep -q 'statically linked' || t_skip "no static busybox (busybox-static)"
	PREFIX=$("$ROOT/tests/lib/upstream.sh") || t_skip "the upstream OpenWRT programs did not build"
	if [ -z "${NUVOL_BIN:-}" ]; then
		(cd "$ROOT" && nice cargo build -q -p nuvol) || { echo "FAIL cannot build nuvol"; exit 1; }
		NUVOL_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/nuvol
	fi
	t_tmpdir WORK openwrt-uhttpd
	NUVOL_BIN=$NUVOL_BIN PREFIX=$PREFIX unshare -m -n -p -f --propagation private \
		bash "$0" --inner "$WORK"
	exit $?
fi

WORK=$2
R=$WORK/root
ip link set lo up || { echo "FAIL no loopback in the namespace"; exit 1; }
owrt_run_root "$R" "$PREFIX" "$NUVOL_BIN" || { echo "FAIL cannot lay out the root"; exit 1; }
owrt_mount "$R" "$PREFIX" || { echo "FAIL cannot mount the root"; exit 1; }
in_root() { owrt_in "$R" "$@"; }
UH=$OWRT_RUN_FILES/package/network/services/uhttpd/files
install -m 0644 "$UH/uhttpd.config" "$R/etc/config/uhttpd"
install -m 0755 "$UH/uhttpd.init" "$R/etc/init.d/uhttpd"

in_root /bin/sh /etc/uci-defaults/90-nuvol || t_fail "uci-defaults exited $?"
t_check "uci-defaults wrote the page's realm" grep -qx '/cgi-bin/nuvol:root:$p$root' "$R/etc/httpd.conf"
NAME=$(in_root uci -q get nuvol.main.name)
PA=$(t_port) || { echo "FAIL no free port"; exit 1; }
in_root uci set nuvol.main.bind="127.0.0.1:$PA"
in_root uci set nuvol.main.beacon_port=0
in_root uci commit nuvol

owrt_boot "$R" "$WORK/procd.log" || { echo "FAIL cannot start ubusd and procd"; exit 1; }
in_root /etc/init.d/nuvol start
t_wait 15 test -S "$R/var/run/nuvol.sock" || t_fail "the agent did not start"
in_root /etc/init.d/uhttpd start
up() { curl -s -o /dev/null --max-time 2 http://127.0.0.1/; }
t_check "uhttpd runs under procd from its own init script" t_wait 15 up

BASE=http://127.0.0.1/cgi-bin/nuvol
# req USER:PW METHOD PATH [BODY]: status in $STATUS, body in $WORK/body
req() {
	local auth=$1 method=$2 path=$3 body=${4-}
	local args=(-s -o "$WORK/body" -D "$WORK/head" -w '%{http_code}' --max-time 20 -X "$method")
	[ -n "$auth" ] && args+=(-u "$auth")
	[ "$method" = POST ] && args+=(-H 'Content-Type: application/x-www-form-urlencoded' --data-binary "$body")
	STATUS=$(curl "${args[@]}" "$BASE$path")
}
body_has() { grep -qF -- "$1" "$WORK/body"; }
status_is() { [ "$STATUS" = "$1" ] || { echo "     (got $STATUS: $(head -c 300 "$WORK/body"))"; return 1; }; }

# -------------------------------------------------- no root password --
t_check "uhttpd logged that it leaves the realm open" t_wait 5 \
	grep -q "account 'root' has no password set; leaving /cgi-bin/nuvol unauthenticated" "$R/var/log/messages"
req "" GET /members
t_check "no password: 403" status_is 403
t_check "... saying root has no password" body_has "has no password"
t_check "... with passwd" body_has "run &#39;passwd&#39;"
t_check "... and nothing of the microcloud" eval '! body_has "$NAME"'
req "" POST /publish 'type=http&port=8080&description=x'
t_check "no password: a POST is refused too (403)" status_is 403

# ------------------------------------------------- a password is set --
printf 'Router-pw-1\nRouter-pw-1\n' | in_root passwd root >/dev/null 2>&1
t_check "passwd set root's password in /etc/shadow" grep -q '^root:\$' "$R/etc/shadow"
req "" GET /
t_check "the first request after it: 503, the page restarts uhttpd" status_is 503
t_check "... and says to reload" body_has "Reload this page in a few seconds"
asks_login() { req "" GET /members; [ "$STATUS" = 401 ]; }
t_check "then uhttpd asks for the login (401), without a manual restart" t_wait 20 asks_login
req root:wrong GET /members
t_check "wrong password: 401" status_is 401
req nobody:Router-pw-1 GET /members
t_check "another user: 401" status_is 401
req root:Router-pw-1 GET /
t_check "root's password: the page" status_is 200
t_check "... with this node" body_has "$NAME"

# ------------------------------------------------ unencrypted microcloud --
info_says() { "$NUVOL_BIN" --control "$R/var/run/nuvol.sock" info 2>/dev/null | grep -q "$1"; }
req root:Router-pw-1 GET /
t_check "a fresh install: the overview says gossip is not encrypted" body_has "is NOT encrypted"
TOKEN=$(grep -o 'name=csrf value="[^"]*"' "$WORK/body" | head -1 | sed 's/.*value="//; s/"$//')
req root:Router-pw-1 POST /key "key="
t_check "POST /key without the token -> 403" status_is 403
t_check "... and the agent still has no key" info_says "0 installed, encryption off"
req root:Router-pw-1 POST /key "key=&csrf=$TOKEN"
t_check "POST /key with the token: 200, a new key to copy" status_is 200
KEY=$(sed -n 's/.*<pre>\([A-Za-z0-9+/=]\{44\}\)<\/pre>.*/\1/p' "$WORK/body")
t_check "... shown once on the page ($KEY)" [ -n "$KEY" ]
t_check "... and the agent encrypts with it" info_says "1 installed, encryption on"
req root:Router-pw-1 GET /
t_check "... so the overview no longer warns" eval '! body_has "is NOT encrypted"'

# ---------------------------------------------------------- POST + CSRF --
published() { "$NUVOL_BIN" --control "$R/var/run/nuvol.sock" services 2>/dev/null | grep -q "$1"; }
post_checks() {
	local tag=$1 token
	req root:Router-pw-1 GET /services
	token=$(grep -o 'name=csrf value="[^"]*"' "$WORK/body" | head -1 | sed 's/.*value="//; s/"$//')
	t_check "$tag: the services page has a CSRF token" [ -n "$token" ]
	req root:Router-pw-1 POST /publish "type=http&port=$2&description=wiki-$2"
	t_check "$tag: POST without the token -> 403" status_is 403
	t_check "$tag: ... and nothing published" eval '! published "wiki-$2"'
	req root:Router-pw-1 POST /publish "type=http&port=$2&description=wiki-$2&csrf=$token"
	t_check "$tag: POST with the token -> 303" status_is 303
	t_check "$tag: ... and the agent publishes it" t_wait 5 published "wiki-$2"
}
post_checks uhttpd 8080

# -------------------------------------------------------- no_symlinks --
in_root uci set uhttpd.main.no_symlinks=1
in_root uci commit uhttpd
in_root /etc/init.d/uhttpd restart
with_S() { in_root ubus call service list '{"name":"uhttpd"}' | grep -q '"-S"'; }
t_check "uhttpd runs with -S (no_symlinks)" t_wait 10 with_S
serves() { req root:Router-pw-1 GET /; [ "$STATUS" = 200 ]; }
t_check "no_symlinks: the page is served" t_wait 15 serves
req "" GET /
t_check "no_symlinks: no credentials -> 401" status_is 401
post_checks no_symlinks 8081

if [ "$T_FAILED" -gt 0 ]; then
	echo "--- procd:"; tail -20 "$WORK/procd.log"
	echo "--- syslog:"; tail -30 "$R/var/log/messages"
fi
t_done
