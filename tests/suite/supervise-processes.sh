#!/usr/bin/env bash
# The supervisor with real processes, then through the real agent.
#
# 1. `cargo test -p nuvol-supervise --features os`: restarts then failed,
#    SIGTERM ignored -> SIGKILL after term_timeout, nofile rlimit and user
#    nobody seen from inside the child, TCP and HTTP health checks flipping
#    publish/unpublish, re-adoption after a detach and after kill -9 of a
#    helper agent process, bad definitions reported with name and line,
#    cgroup memory limit when writable, config apply.
# 2. Two real agents on loopback (A supervises a python3 HTTP server with an
#    HTTP health check and a publish block; B joins A):
#    - the record appears in B's search once A's check passes;
#    - SIGSTOP of the server (health probe times out) removes it from B,
#      SIGCONT brings it back, without a restart;
#    - kill -9 of agent A and a restart re-adopt the running server: same
#      pid, started once;
#    - `nuvol service stop` removes the record from B.
#    NUVOL_BIN may name the agent binary; by default it is built.
# Exit: 0 pass, 1 fail, 77 skipped (no cargo / python3).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
command -v cargo >/dev/null 2>&1 || { echo "skipped: cargo is not installed"; exit 77; }

fail() { echo "FAIL: $*"; exit 1; }

echo "== supervise: real-process tests"
(cd "$ROOT" && nice cargo test -q -p nuvol-supervise --features os) || fail "cargo test -p nuvol-supervise --features os"

command -v python3 >/dev/null 2>&1 || { echo "skipped (agent part): python3 is not installed"; exit 77; }

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [ -z "${NUVOL_BIN:-}" ]; then
    (cd "$ROOT" && nice cargo build -q -p nuvol) || fail "cannot build the nuvol binary"
    NUVOL_BIN=$TARGET/debug/nuvol
fi
"$NUVOL_BIN" --help 2>&1 | grep -q "service list" || { echo "skipped (agent part): $NUVOL_BIN has no 'service' commands"; exit 77; }

WORK=$(mktemp -d /tmp/nuvol-supervise-e2e.XXXXXX)
AGENT_A=""
AGENT_B=""
PID=""
cleanup() {
    # TERM lets an agent stop its services; then make sure nothing is left.
    for p in $AGENT_A $AGENT_B; do kill "$p" 2>/dev/null; done
    for _ in $(seq 50); do
        # shellcheck disable=SC2086 # unset agents vanish from the list
        kill -0 $AGENT_A $AGENT_B 2>/dev/null || break
        sleep 0.1
    done
    for p in $AGENT_A $AGENT_B $PID; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

# Three ports in a row, free now and below the kernel's ephemeral range
# (tests/lib/free-port.py says why: ports from the pid landed in it).
BASE=$(python3 "$ROOT/tests/lib/free-port.py" --also 1 --also 2) || fail "no free loopback ports"
PA=$BASE; PB=$((BASE + 1)); SP=$((BASE + 2))
mkdir -p "$WORK/www" "$WORK/a" "$WORK/b"
echo hello > "$WORK/www/index.html"

cat > "$WORK/a.conf" <<EOF
config agent 'main'
	option name 'node-a'
	option bind '127.0.0.1:$PA'
	option state '$WORK/a/state'
	option control '$WORK/a.sock'
	option beacon_port '0'

config service 'web'
	list command 'python3'
	list command '-m'
	list command 'http.server'
	list command '--bind'
	list command '127.0.0.1'
	list command '$SP'
	option dir '$WORK/www'
	option health_type 'http'
	option health_port '$SP'
	option health_interval '1'
	option health_timeout '1'
	option health_failures '1'
	option publish_type 'http'
	option publish_port '$SP'
	option publish_description 'e2e web'
EOF
cat > "$WORK/b.conf" <<EOF
config agent 'main'
	option name 'node-b'
	option bind '127.0.0.1:$PB'
	option state '$WORK/b/state'
	option control '$WORK/b.sock'
	option beacon_port '0'
	list join '127.0.0.1:$PA'
EOF

A() { "$NUVOL_BIN" --control "$WORK/a.sock" "$@"; }
B() { "$NUVOL_BIN" --control "$WORK/b.sock" "$@"; }
start_a() { "$NUVOL_BIN" agent --config "$WORK/a.conf" >>"$WORK/a.log" 2>&1 & AGENT_A=$!; }

# wait_for SECONDS CMD...: polls CMD every 0.2 s, bounded.
wait_for() {
    local limit=$1; shift
    local end=$((SECONDS + limit))
    while [ $SECONDS -lt $end ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    "$@" >/dev/null 2>&1
}
on_b() { B --json search --type http 2>/dev/null | grep -q 'e2e web'; }
not_on_b() { B --json search --type http >/dev/null 2>&1 && ! on_b; }
web_field() { A --json service status web | python3 -c "import json,sys; d=json.load(sys.stdin); d=d[0] if isinstance(d,list) else d; print(d.get('$1'))"; }
servers() { pgrep -f "http.server --bind 127.0.0.1 $SP" | wc -l; }
a_pid_is() { [ "$(web_field pid 2>/dev/null)" = "$1" ]; }
servers_are() { [ "$(servers)" = "$1" ]; }

echo "== supervise: two agents, a health-checked service"
start_a
"$NUVOL_BIN" agent --config "$WORK/b.conf" >"$WORK/b.log" 2>&1 & AGENT_B=$!
T0=$SECONDS
wait_for 20 on_b || { tail -n 20 "$WORK/a.log" "$WORK/b.log"; fail "the record never appeared on node-b"; }
echo "record on node-b after $((SECONDS - T0)) s"
[ "$(web_field state)" = running ] || fail "web is not running on node-a"
[ "$(web_field published)" = True ] || fail "web is not published on node-a"
PID=$(web_field pid)

kill -STOP "$PID"
T0=$SECONDS
wait_for 20 not_on_b || fail "an unhealthy service stayed in node-b's search"
echo "unhealthy -> gone from node-b after $((SECONDS - T0)) s"
kill -CONT "$PID"
T0=$SECONDS
wait_for 20 on_b || fail "the record did not come back once healthy"
echo "healthy again -> back on node-b after $((SECONDS - T0)) s"
[ "$(web_field pid)" = "$PID" ] || fail "a health flip restarted the service"

echo "== supervise: kill -9 of the agent does not duplicate the service"
kill -9 "$AGENT_A"; wait "$AGENT_A" 2>/dev/null
kill -0 "$PID" 2>/dev/null || fail "the service died with its agent"
start_a
wait_for 20 a_pid_is "$PID" || fail "the restarted agent did not adopt pid $PID (now: $(web_field pid 2>&1))"
sleep 2
[ "$(servers)" = 1 ] || fail "$(servers) servers run after the agent restart"
[ "$(web_field pid)" = "$PID" ] || fail "the adopted service was replaced"

echo "== supervise: stop withdraws the record"
wait_for 30 on_b || fail "the record is not on node-b after node-a's restart"
A service stop web >/dev/null || fail "nuvol service stop web"
T0=$SECONDS
wait_for 20 not_on_b || fail "a stopped service stayed in node-b's search"
echo "stopped -> gone from node-b after $((SECONDS - T0)) s"
wait_for 10 servers_are 0 || fail "the server outlived its stop"
if [ -n "${SUPERVISE_E2E_LOG:-}" ]; then cat "$WORK/a.log"; fi
echo "PASS"
exit 0
