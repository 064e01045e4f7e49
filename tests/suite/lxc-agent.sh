#!/usr/bin/env bash
# Apps through the real agent, end to end: two `nuvol agent`s gossip on
# loopback; on node a, `nuvol app install website` creates the container
# (offline busybox template), the supervisor starts it and publishes it once
# its health check passes; node b finds the record with `nuvol search`; the
# page answers through the published (DNAT) address; `app stop` withdraws the
# record everywhere; `app uninstall` leaves nothing in the lxcpath.
#
# Runs inside its own network + mount namespaces (re-executed under
# `unshare -n -m`), with its own bridge, lxcpath and nftables table: the
# host's network and containers are never touched.
# NUVOL_BIN may name the binary; by default `cargo build -p nuvol` is used.
# Exit: 0 pass, 1 fail, 77 skipped (not root, or LXC cannot run here).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

if [ -z "${NUVOL_LXC_IN_NS:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "skipped: needs root (containers, namespaces)"; exit 77; }
    for tool in lxc-create lxc-start lxc-stop lxc-destroy lxc-info lxc-attach lxc-wait nft ip busybox unshare; do
        command -v "$tool" >/dev/null 2>&1 || { echo "skipped: $tool is not installed"; exit 77; }
    done
    [ -x /usr/share/lxc/templates/lxc-busybox ] || { echo "skipped: lxc-templates is not installed"; exit 77; }
    if [ -z "${NUVOL_BIN:-}" ]; then
        (cd "$ROOT" && nice cargo build -q -p nuvol) || { echo "FAIL: cannot build nuvol"; exit 1; }
        NUVOL_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/nuvol
    fi
    export NUVOL_BIN NUVOL_LXC_IN_NS=1
    exec unshare -n -m "$0" "$@"
fi

WORK=$(mktemp -d /tmp/nuvol-lxc-agent.XXXXXX)
PIDS=()
fail() { echo "FAIL: $*"; for f in "$WORK"/*.log; do echo "--- $f"; tail -20 "$f"; done; exit 1; }
cleanup() {
    for d in "$WORK"/lxc/*/; do [ -d "$d" ] || continue; n=${d%/}; n=${n##*/}; lxc-destroy -n "$n" -P "$WORK/lxc" -f >/dev/null 2>&1; done
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    umount /sys/class/net /sys/devices/virtual/net 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

# A sysfs of this namespace (LXC checks bridges there) and the bridge nvbr0.
. "$ROOT/agent/lxc/tests/private-net.sh"
why=$(private_net "$WORK") || fail "private network: $why"

N="$NUVOL_BIN"
cat > "$WORK/a.conf" <<CONF
config agent
	option name 'a'
	option microcloud 'test'
	option bind '127.0.0.1:17946'
	option state '$WORK/a'
	option control '$WORK/a.sock'
	option http ''

config app
	option lxcpath '$WORK/lxc'
	option templates '$ROOT/agent/lxc/templates'
	option network 'bridge'
	option bridge 'nvbr0'
	option subnet '10.213.0.0/24'
	option forward '1'
	option nft_table 'nuvole2e'
	option stop_timeout '5'
CONF
cat > "$WORK/b.conf" <<CONF
config agent
	option name 'b'
	option microcloud 'test'
	option bind '127.0.0.1:17947'
	list join '127.0.0.1:17946'
	option state '$WORK/b'
	option control '$WORK/b.sock'
	option http ''
CONF
"$N" agent --config "$WORK/a.conf" > "$WORK/a.log" 2>&1 & A_PID=$!; PIDS+=("$A_PID")
"$N" agent --config "$WORK/b.conf" > "$WORK/b.log" 2>&1 & PIDS+=($!)

A() { "$N" --control "$WORK/a.sock" "$@"; }
B() { "$N" --control "$WORK/b.sock" "$@"; }
# until SECONDS CMD...: retry CMD every 0.2 s.
until_ok() { local end=$((SECONDS + $1)); shift; until "$@" >/dev/null 2>&1; do [ $SECONDS -lt $end ] || return 1; sleep 0.2; done; }
found_on_b() { B search --type http | grep -q 8080; }
gone_on_b() { ! B search --type http | grep -q 8080; }
page() { timeout 3 busybox wget -q -O - http://10.213.0.1:8080/ | grep -q "Hello from nuvol"; }

until_ok 10 B members || fail "agent b does not answer"
until_ok 10 sh -c "\"$N\" --control \"$WORK/b.sock\" members | grep -q '\\ba\\b'" || fail "b never saw a"
A app templates | grep -q website || fail "templates: no website"

t0=$(date +%s%N)
A app install website --name web1 > "$WORK/install.out" 2>&1 || fail "install: $(cat "$WORK/install.out")"
until_ok 30 page || fail "the page never answered on the published address"
t1=$(date +%s%N)
until_ok 30 found_on_b || fail "b never found the record"
t2=$(date +%s%N)
A app status web1 | grep -q RUNNING || fail "status: $(A app status web1)"

# The agent on a crashes and comes back: the container keeps running, the
# new agent adopts it (same init pid) and the app is still published.
init1=$(lxc-info -n web1 -P "$WORK/lxc" -pH)
kill -KILL "$A_PID"; wait "$A_PID" 2>/dev/null
[ "$(lxc-info -n web1 -P "$WORK/lxc" -pH)" = "$init1" ] || fail "the container died with the agent"
"$N" agent --config "$WORK/a.conf" >> "$WORK/a.log" 2>&1 & A_PID=$!; PIDS+=("$A_PID")
until_ok 10 A info || fail "agent a did not come back"
until_ok 30 sh -c "\"$N\" --control \"$WORK/a.sock\" services | grep -q 8080" || fail "not published after the agent restart"
[ "$(lxc-info -n web1 -P "$WORK/lxc" -pH)" = "$init1" ] || fail "the agent restart restarted the container"
page || fail "the page stopped answering across the agent restart"
# Wait for the new supervisor's own verdict (healthy, published) before
# stopping: the agent restores its records from its state file at start,
# and a stop before the first health verdict would leave that record behind.
until_ok 30 sh -c "\"$N\" --control \"$WORK/a.sock\" service status app-web1 | grep -q 'healthy .* yes'" ||
    fail "the adopted app never became healthy and published: $(A service status app-web1)"
A --json app list | grep -q '"name"' || fail "json list"

A app stop web1 >/dev/null || fail "stop"
until_ok 30 gone_on_b || fail "the record stayed on b after stop"
page && fail "the page still answers after stop"
[ "$(lxc-info -n web1 -P "$WORK/lxc" -sH)" = STOPPED ] || fail "container not stopped"

A app uninstall web1 >/dev/null || fail "uninstall"
[ -z "$(ls -A "$WORK/lxc")" ] || fail "uninstall left: $(ls -A "$WORK/lxc")"
A app list | grep -q web1 && fail "still listed"
nft list table ip nuvole2e >/dev/null 2>&1 && fail "forward table left behind"

echo "measured: install→page $(( (t1 - t0) / 1000000 )) ms, page→found on b $(( (t2 - t1) / 1000000 )) ms"
echo "PASS: app install/search/stop/uninstall through two agents"
exit 0
