#!/usr/bin/env bash
# ./build.sh demo for real: three agents on loopback (on free ports, not the
# demo's defaults, so a running demo is left alone), all three see each other,
# n2's published record is found from n3, the page answers over HTTP and lets
# the demo password in, and `./build.sh demo stop` ends every agent.
set -u
. "$(dirname "$0")/../lib/common.sh"
cd "$ROOT" || exit 1

t_tmpdir D demo
export NUVOL_DEMO_DIR=$D/run
# Three gossip ports 10 apart and one HTTP port, all free now.
base=$(t_port --also 10 --also 20) && http=$(t_port) || t_skip "no free loopback ports"
export NUVOL_DEMO_PORT=$base NUVOL_DEMO_HTTP=127.0.0.1:$http
stop_demo() { ./build.sh demo stop >/dev/null 2>&1; }
trap 'stop_demo; t_cleanup' EXIT

out=$(./build.sh demo 2>&1 </dev/null)
rc=$?
printf '%s\n' "$out"
if [ "$rc" -ne 0 ] && grep -q "has no agent yet" <<<"$out"; then
	t_skip "this nuvol has no agent command yet"
fi
t_check "demo exits 0" [ "$rc" -eq 0 ]
t_check "demo reports all three agents joined" grep -q "all three agents see each other" <<<"$out"
t_check "demo prints what to open and how to stop" \
	bash -c 'grep -q "open *http://'"$NUVOL_DEMO_HTTP"'/" <<<"$1" && grep -q "./build.sh demo stop" <<<"$1"' _ "$out"

NUVOL=${CARGO_TARGET_DIR:-$ROOT/target}/release/nuvol
three_alive() { [ "$("$NUVOL" --control "$NUVOL_DEMO_DIR/$1.sock" members 2>/dev/null | grep -cw alive)" -eq 3 ]; }
n1_and_n3_see_three() { three_alive n1 && three_alive n3; }
t_check "n1 and n3 each list three alive members" t_wait 10 n1_and_n3_see_three
found_from_n3() { "$NUVOL" --control "$NUVOL_DEMO_DIR/n3.sock" search 2>/dev/null | grep -q "the demo page"; }
t_check "n2's published record is found from n3" t_wait 15 found_from_n3

if command -v curl >/dev/null; then
	password=$(sed -n 's/.*(password: \(.*\))$/\1/p' <<<"$out")
	login() {
		local jar=$D/jar page csrf
		page=$(curl -s -c "$jar" -b "$jar" "http://$NUVOL_DEMO_HTTP/")
		csrf=$(sed -n 's/.*name=csrf value="\([^"]*\)".*/\1/p' <<<"$page" | head -n 1)
		curl -s -o /dev/null -c "$jar" -b "$jar" --data-urlencode "csrf=$csrf" \
			--data-urlencode "password=$password" "http://$NUVOL_DEMO_HTTP/login"
		curl -s -b "$jar" "http://$NUVOL_DEMO_HTTP/members" | grep -q '>n3<'
	}
	t_check "the page lets the demo password in and lists n3" login
else
	echo "note: no curl, page login left out"
fi

./build.sh demo stop
pids_gone() { ! pgrep -f -- "--control $NUVOL_DEMO_DIR/" >/dev/null; }
t_check "demo stop ends every agent" t_wait 10 pids_gone
t_done
