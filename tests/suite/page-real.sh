#!/usr/bin/env bash
# The page's click-through against REAL agents: a 3-agent microcloud of
# `nuvol agent` processes (a, b, c) on loopback, a and b serving the page
# themselves (`--http`, login with `option password_hash`), a running apps in
# LXC on a private bridge with nftables forwards. Headless Chromium, on a's
# page: Install the offline `website` template, Stop + Start it, Unpublish +
# Publish it; b's `nuvol --json search` must lose and then find the record,
# and b's own search page must show it. Screenshots (page-real-search.png
# from b, page-real-apps.png from a) go to $NUVOL_ARTIFACTS/page (default
# target/artifacts/page).
#
# Runs in its own network + mount namespaces (re-executed under
# `unshare -n -m`): bridge, nftables table, ports and containers never touch
# the host. NUVOL_BIN may name the binary (default: `cargo build -p nuvol`).
# Exit: 0 pass, 1 fail, 77 skipped (not root, or no LXC/chromium here).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LIMIT=${PAGE_REAL_LIMIT:-400}   # seconds for the whole browser run

if [ -z "${NUVOL_PAGE_REAL_IN_NS:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "skipped: needs root (containers, namespaces)"; exit 77; }
    for tool in lxc-create lxc-start lxc-stop lxc-destroy lxc-info lxc-attach lxc-wait nft ip busybox unshare setsid chromium chromedriver python3 curl; do
        command -v "$tool" >/dev/null 2>&1 || { echo "skipped: $tool is not installed"; exit 77; }
    done
    [ -x /usr/share/lxc/templates/lxc-busybox ] || { echo "skipped: lxc-templates is not installed"; exit 77; }
    grep -qw memory /proc/cgroups || { echo "skipped: the kernel has no memory cgroup"; exit 77; }
    if [ -z "${NUVOL_BIN:-}" ]; then
        (cd "$ROOT" && nice cargo build -q -p nuvol) || { echo "FAIL: cannot build nuvol"; exit 1; }
        NUVOL_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/nuvol
    fi
    OUT=${NUVOL_ARTIFACTS:-$ROOT/target/artifacts}/page
    mkdir -p "$OUT" || { echo "FAIL: cannot create $OUT"; exit 1; }
    export NUVOL_BIN OUT NUVOL_PAGE_REAL_IN_NS=1
    exec unshare -n -m "$0" "$@"
fi

WORK=$(mktemp -d /tmp/nuvol-page-real.XXXXXX)
PIDS=()
GROUPS_TO_KILL=()
cleanup() {
    for g in "${GROUPS_TO_KILL[@]}"; do kill -- "-$g" 2>/dev/null; done
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    for d in "$WORK"/lxc/*/; do [ -d "$d" ] || continue; n=${d%/}; n=${n##*/}; lxc-destroy -n "$n" -P "$WORK/lxc" -f >/dev/null 2>&1; done
    nft delete table ip nuvolpage 2>/dev/null
    umount /sys/class/net /sys/devices/virtual/net 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -15 "$f"; }; done
    exit 1
}

# A sysfs of this namespace (LXC checks bridges there) and the bridge nvbr0.
. "$ROOT/agent/lxc/tests/private-net.sh"
why=$(private_net "$WORK") || fail "private network: $why"

PASSWORD=real-click-pw
HASH=$(echo "$PASSWORD" | "$NUVOL_BIN" page-passwd) || fail "nuvol page-passwd"

N=$NUVOL_BIN
# agent_conf NAME GOSSIP_PORT [JOIN_PORT]: writes NAME.conf (each with its own
# lxcpath). Agents gossip on the bridge's address, so records carry it and
# the page's "Open" link reaches the app through the DNAT forward.
agent_conf() {
    local name=$1 port=$2 join=${3:-}
    {
        printf 'config agent\n\toption name %s\n\toption microcloud test\n' "$name"
        printf "\toption bind '10.213.0.1:%s'\n" "$port"
        [ -n "$join" ] && printf "\tlist join '10.213.0.1:%s'\n" "$join"
        printf "\toption state '%s'\n\toption control '%s'\n\toption beacon_port '0'\n\n" "$WORK/$name" "$WORK/$name.sock"
        printf "config page 'page'\n\toption password_hash '%s'\n\n" "$HASH"
        printf "config app\n\toption lxcpath '%s'\n\toption templates '%s'\n" "$WORK/lxc-$name" "$ROOT/agent/lxc/templates"
    } > "$WORK/$name.conf"
}
agent_conf a 17946
agent_conf b 17947 17946
agent_conf c 17948 17946
# Only a runs apps: on the private bridge, published through DNAT on the
# node's own addresses.
sed -i "s|'$WORK/lxc-a'|'$WORK/lxc'|" "$WORK/a.conf"
cat >> "$WORK/a.conf" <<CONF
	option network 'bridge'
	option bridge 'nvbr0'
	option subnet '10.213.0.0/24'
	option forward '1'
	option nft_table 'nuvolpage'
	option stop_timeout '5'
CONF

t_start=$(date +%s%N)
"$N" agent --config "$WORK/a.conf" --http 127.0.0.1:18080 > "$WORK/a.log" 2>&1 & PIDS+=($!)
"$N" agent --config "$WORK/b.conf" --http 127.0.0.1:18081 > "$WORK/b.log" 2>&1 & PIDS+=($!)
"$N" agent --config "$WORK/c.conf" > "$WORK/c.log" 2>&1 & PIDS+=($!)

# until SECONDS CMD...: retry CMD every 0.2 s.
until_ok() { local end=$((SECONDS + $1)); shift; until "$@" >/dev/null 2>&1; do [ $SECONDS -lt $end ] || return 1; sleep 0.2; done; }
three_alive() { [ "$("$N" --control "$WORK/$1.sock" --json members | grep -o '"state":"alive"' | wc -l)" = 3 ]; }
for n in a b c; do
    until_ok 30 three_alive "$n" || fail "agent $n does not see 3 alive members: $("$N" --control "$WORK/$n.sock" members 2>&1)"
done
until_ok 10 curl -sf -o /dev/null http://127.0.0.1:18080/login || fail "a's page does not answer"
until_ok 10 curl -sf -o /dev/null http://127.0.0.1:18081/login || fail "b's page does not answer"
t_ready=$(date +%s%N)

# chromedriver and the Chromium it starts in a process group of their own,
# so cleanup can end all of them by that group.
setsid chromedriver --port=19515 --allowed-ips=127.0.0.1 > "$WORK/driver.log" 2>&1 &
DRIVER=$!; GROUPS_TO_KILL+=("$DRIVER")
until_ok 10 curl -sf -o /dev/null http://127.0.0.1:19515/status || fail "chromedriver did not start"

TMPDIR=$WORK timeout "$LIMIT" python3 "$ROOT/agent/page/tests/browser/real_clickthrough.py" \
    http://127.0.0.1:18080 http://127.0.0.1:18081 "$PASSWORD" 19515 "$OUT" "$N" "$WORK/b.sock" website \
    > "$WORK/browser.log" 2>&1
rc=$?
cat "$WORK/browser.log"
[ $rc = 0 ] || fail "the browser run (exit $rc)"
t_done=$(date +%s%N)

# The record, as the third agent sees it too.
until_ok 15 sh -c "\"$N\" --control \"$WORK/c.sock\" --json search --type http | grep -q '\"app\":\"website\"'" ||
    fail "c does not find the record"

echo "measured: agents up and joined $(( (t_ready - t_start) / 1000000 )) ms, browser run $(( (t_done - t_ready) / 1000000 )) ms"
echo "PASS: page click-through on real agents; screenshots in $OUT"
exit 0
