#!/usr/bin/env bash
# The installed /etc/init.d/nuvol under the real procd, through OpenWRT's own
# rc.common + procd.sh + libubox's jshn, in an OpenWRT-like root (busybox sh,
# tests/lib/openwrt-run-root.sh) entered with chroot inside fresh mount, network
# and pid namespaces: nothing of it reaches the host's /etc or network, and
# every process dies with the namespace.
#
# Checks:
#   - the uci-defaults script names a node without eth0 uniquely (two roots,
#     two names) and keeps /etc/config/nuvol's documentation;
#   - enable / disable make and remove /etc/rc.d/S95nuvol and K10nuvol;
#   - start: procd runs the agent and it joins a second agent (outside the
#     root) on loopback;
#   - kill -9 of the agent: procd respawns it (new pid) and it rejoins; the
#     state changes meanwhile went to RAM, the flash copy was not rewritten;
#   - uci set + uci commit + reload_config: procd's config.change trigger
#     runs `/etc/init.d/nuvol reload`, the agent applies it by SIGHUP (same
#     pid, the new service is supervised); `/etc/init.d/nuvol reload` too;
#   - stop: the second agent sees the node "left", not "failed", and the
#     state is written to flash;
#   - a broken config: the agent exits 100 on each try and procd gives up
#     after respawn_retry + 1 runs (the system-wide respawn settings of
#     /etc/config/system apply: the init script's bare `respawn`).
# NUVOL_BIN may name the agent binary (x86-64, static or host-built); by
# default the workspace's debug build is used.
# Exit: 0 pass, 1 fail, 77 skipped (not root, no unshare/busybox, no upstream build).
set -u
. "$(dirname "$0")/../lib/common.sh"
. "$ROOT/tests/lib/openwrt-run-root.sh"

if [ "${1:-}" != --inner ]; then
	[ "$(id -u)" = 0 ] || t_skip "needs root for mount and network namespaces"
	command -v unshare >/dev/null && command -v chroot >/dev/null || t_skip "no unshare/chroot"
	file -L /usr/bin/busybox 2>/dev/null | grep -q 'statically linked' || t_skip "no static busybox (busybox-static)"
	PREFIX=$("$ROOT/tests/lib/upstream.sh") || t_skip "the upstream OpenWRT programs did not build"
	if [ -z "${NUVOL_BIN:-}" ]; then
		(cd "$ROOT" && nice cargo build -q -p nuvol) || { echo "FAIL cannot build nuvol"; exit 1; }
		NUVOL_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/nuvol
	fi
	t_tmpdir WORK openwrt-procd
	# The root is removed here, outside the namespace, where none of its
	# bind mounts exist.
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
NUVOL=$NUVOL_BIN

# --------------------------------------------------------- first boot --
DOC_LINES=$(wc -l <"$R/etc/config/nuvol")
in_root /bin/sh /etc/uci-defaults/90-nuvol || t_fail "uci-defaults exited $?"
NAME1=$(in_root uci -q get nuvol.main.name)
t_check "uci-defaults names a node without eth0 'openwrt-XXXXXX' ($NAME1)" \
	eval '[[ $NAME1 =~ ^openwrt-[0-9a-f]{6}$ ]]'
keeps_docs() { [ "$(wc -l <"$R/etc/config/nuvol")" -eq $((DOC_LINES + 1)) ] && grep -q '^#config service' "$R/etc/config/nuvol"; }
t_check "the shipped config keeps its documentation ($DOC_LINES lines + the name)" keeps_docs
# A second router, same hostname, no eth0 either: another name.
sed -i '/^\toption name /d' "$R/etc/config/nuvol"
in_root /bin/sh /etc/uci-defaults/90-nuvol
NAME2=$(in_root uci -q get nuvol.main.name)
t_check "a second node gets another name ($NAME2)" eval '[ -n "$NAME2" ] && [ "$NAME2" != "$NAME1" ]'
printf "config system\n\toption hostname 'attic-router'\n" >"$R/etc/config/system"
sed -i '/^\toption name /d' "$R/etc/config/nuvol"
in_root /bin/sh /etc/uci-defaults/90-nuvol
t_check "a router with its own hostname is named after it" eval '[ "$(in_root uci -q get nuvol.main.name)" = attic-router ]'
t_check "uci-defaults added the page's realm to /etc/httpd.conf" grep -qx '/cgi-bin/nuvol:root:$p$root' "$R/etc/httpd.conf"

# The system-wide respawn settings (what a bare `respawn` reads): a short
# timeout keeps the test fast, retry 2 makes the crash loop end after 3 runs.
cat >>"$R/etc/config/system" <<'EOF'

config service
	option respawn_timeout '1'
	option respawn_retry '2'
EOF

PA=$(t_port --also 1) || { echo "FAIL no free ports"; exit 1; }
PB=$((PA + 1))
# Agent A is the installed one; point it at B and loopback with uci, as an owner would.
in_root uci set nuvol.main.bind="127.0.0.1:$PA"
in_root uci set nuvol.main.beacon_port=0
in_root uci add_list nuvol.main.join="127.0.0.1:$PB"
in_root uci commit nuvol
A_SOCK=$R/var/run/nuvol.sock
B_SOCK=$WORK/b.sock
"$NUVOL" agent --name node-b --bind "127.0.0.1:$PB" --state "$WORK/b" --control "$B_SOCK" \
	--beacon-port 0 >"$WORK/b.log" 2>&1 &
T_PIDS+=($!)

# ------------------------------------------------------- ubusd + procd --
owrt_boot "$R" "$WORK/procd.log" || { echo "FAIL cannot start ubusd and procd"; exit 1; }
# uci-defaults once more, now with a syslog to tell.
before=$(md5sum <"$R/etc/config/nuvol")
in_root /bin/sh /etc/uci-defaults/90-nuvol >/dev/null 2>&1
idempotent() { [ "$(md5sum <"$R/etc/config/nuvol")" = "$before" ] && [ "$(grep -c nuvol "$R/etc/httpd.conf")" = 1 ]; }
t_check "run again, it changes nothing (same config, one realm line)" idempotent
t_check "it tells the log where the cluster key goes" grep -q "nuvol keys generate" "$R/var/log/messages"

# ---------------------------------------------------- enable / disable --
in_root /etc/init.d/nuvol enable
links_made() { [ "$(readlink "$R/etc/rc.d/S95nuvol")" = ../init.d/nuvol ] && [ "$(readlink "$R/etc/rc.d/K10nuvol")" = ../init.d/nuvol ]; }
t_check "enable makes rc.d/S95nuvol and K10nuvol" links_made
t_check "enabled says so" in_root /etc/init.d/nuvol enabled
in_root /etc/init.d/nuvol disable
t_check "disable removes them" eval '! ls "$R/etc/rc.d" | grep -q nuvol'
in_root /etc/init.d/nuvol enable

# ---------------------------------------------------------------- start --
agent_pid() { in_root ubus call service list '{"name":"nuvol"}' 2>/dev/null | sed -n 's/.*"pid": \([0-9]*\).*/\1/p' | head -1; }
state_on_b() { "$NUVOL" --control "$B_SOCK" members 2>/dev/null | awk -v n="$1" '$1==n {print $3}'; }
NAME=attic-router
a_alive_on_b() { [ "$(state_on_b "$NAME")" = alive ]; }
in_root /etc/init.d/nuvol start
t_check "start: procd runs the agent" t_wait 10 eval '[ -n "$(agent_pid)" ]'
t_check "the agent under procd joins node-b" t_wait 20 a_alive_on_b
PID1=$(agent_pid)
inode() { stat -c %i "$1" 2>/dev/null; }
FLASH_NODE=$(inode "$R/etc/nuvol/node")
t_check "the state file is on flash after the first start" [ -n "$FLASH_NODE" ]

# ------------------------------------------------------------- respawn --
kill -9 "$PID1"
respawned() { local p; p=$(agent_pid); [ -n "$p" ] && [ "$p" != "$PID1" ] && kill -0 "$p" 2>/dev/null; }
t_check "kill -9: procd respawns the agent" t_wait 15 respawned
t_check "the respawned agent is alive on node-b again" t_wait 20 a_alive_on_b
t_check "its state changes went to RAM (/var/run/nuvol.volatile/node), not flash" \
	eval '[ -s "$R/var/run/nuvol.volatile/node" ] && [ "$(inode "$R/etc/nuvol/node")" = "$FLASH_NODE" ]'
# shellcheck disable=SC2034 # read by the eval checks below
PID2=$(agent_pid)

# -------------------------------------------------------------- reload --
service_listed() { "$NUVOL" --control "$A_SOCK" service list 2>/dev/null | grep -qw "$1"; }
in_root reload_config # the md5 baseline, as at boot
in_root uci set nuvol.marker1=service
in_root uci add_list nuvol.marker1.command=sleep
in_root uci add_list nuvol.marker1.command=600
in_root uci commit nuvol
t_check "a bare uci commit does not reload (no service yet)" eval '! service_listed marker1'
in_root reload_config
t_check "reload_config -> procd's trigger -> SIGHUP: the new service runs" t_wait 15 service_listed marker1
t_check "... without a restart (same pid)" eval '[ "$(agent_pid)" = "$PID2" ]'
in_root uci set nuvol.marker2=service
in_root uci set nuvol.marker2.command='sleep 600'
in_root uci commit nuvol
in_root /etc/init.d/nuvol reload
t_check "/etc/init.d/nuvol reload applies the change too" t_wait 10 service_listed marker2
t_check "... without a restart (same pid)" eval '[ "$(agent_pid)" = "$PID2" ]'

# ---------------------------------------------------------------- stop --
in_root /etc/init.d/nuvol stop
t_check "stop: node-b sees the node left, not failed" t_wait 15 eval '[ "$(state_on_b "$NAME")" = left ]'
t_check "stop: the agent is gone" t_wait 12 eval '! kill -0 "$PID2" 2>/dev/null'
t_check "stop: the state is written to flash" eval '[ "$(inode "$R/etc/nuvol/node")" != "$FLASH_NODE" ]'
sleep 2
t_check "... and node-b never saw it failed" eval '! grep -q "$NAME.*failed" "$WORK/b.log"'

# -------------------------------------------------------- broken config --
in_root uci set nuvol.main.no_such_option=1
in_root uci commit nuvol
: >"$R/var/log/messages"
in_root /etc/init.d/nuvol start
runs() { grep -c 'no_such_option' "$R/var/log/messages"; }
# Failed for good: the crash-loop line in procd's log, and no run after it.
gave_up() { grep -q 'nuvol::agent s in a crash loop' "$WORK/procd.log" "$R/var/log/messages"; }
t_check "a broken config: procd stops retrying" t_wait 30 gave_up
sleep 3
t_check "... after respawn_retry + 1 = 3 runs (saw $(runs))" eval '[ "$(runs)" -eq 3 ]'
t_check "... each one exited 100" eval 'in_root ubus call service list "{\"name\":\"nuvol\"}" | grep -q "\"exit_code\": 100"'

if [ "$T_FAILED" -gt 0 ]; then
	echo "--- procd:"; tail -20 "$WORK/procd.log"
	echo "--- syslog:"; tail -20 "$R/var/log/messages"
fi
t_done
