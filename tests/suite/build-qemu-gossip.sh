#!/usr/bin/env bash
# The cross-built agents gossiping with each other, each under qemu-user with
# its board's exact CPU: one agent per board found in dist/ (different CPU
# families and byte orders in one microcloud, on loopback), all must see all
# alive, every packet encrypted under one cluster key; then one leaves on
# SIGTERM and the others must see it "left".
# The joiners name the seed by a host name that /etc/hosts (their own copy,
# bind-mounted in a mount namespace) maps to ::1 first and 127.0.0.1 second:
# musl's getaddrinfo sorts two answers with qsort (the agent's own, see
# agent/src/libc_shim.rs) and the agent must pick the IPv4 one for its IPv4
# socket.
# This catches an instruction a board lacks anywhere on the agent's hot path,
# and any wire-format dependence on word size or endianness.
#
# NUVOL_TEST_GOSSIP_BOARDS picks the boards (default: every board with a
# binary in dist/, one per Rust target).
set -u
. "$(dirname "$0")/../lib/common.sh"
cd "$ROOT" || exit 1

declare -A seen=()
boards=()
for b in ${NUVOL_TEST_GOSSIP_BOARDS:-$(./build.sh list)}; do
	[ -x "dist/$b/nuvol" ] || continue
	OMIT_LOCK_PREFIX=""
	t_board "$b" || continue
	# One agent per distinct binary: a target, or a target patched for a CPU
	# erratum (galileo: the i586 binary without LOCK prefixes).
	[ -z "${seen[$RUST_TARGET/$OMIT_LOCK_PREFIX]:-}" ] || continue
	command -v "qemu-$QEMU_USER_ARCH-static" >/dev/null || continue
	t_agent_exists "qemu-$QEMU_USER_ARCH-static" -cpu "$QEMU_USER_CPU" "dist/$b/nuvol" || continue
	seen[$RUST_TARGET/$OMIT_LOCK_PREFIX]=1
	boards+=("$b")
done
[ ${#boards[@]} -ge 2 ] || t_skip "fewer than two cross-built agents in dist/ (have: ${boards[*]:-none}); run ./build.sh first"
echo "boards: ${boards[*]}"
no_lock_left() { [ "$(objdump -d -w "$1" | grep -c $'\tlock ')" -eq 0 ]; }
for b in "${boards[@]}"; do
	OMIT_LOCK_PREFIX=""
	t_board "$b"
	[ "$OMIT_LOCK_PREFIX" = yes ] || continue
	t_check "$b: no LOCK-prefixed instruction left in dist/$b/nuvol" no_lock_left "dist/$b/nuvol"
done

t_tmpdir W gossip
# One cluster key for all: the packets are sealed on one CPU, opened on another.
printf "config key\n\toption secret '%s'\n\toption primary '1'\n" "$(head -c 32 /dev/urandom | base64)" >"$W/nuvol.conf"
printf '::1 nuvol-seed\n127.0.0.1 nuvol-seed\n' >"$W/hosts"
# A command prefix, not a function: the background job must be the agent
# itself (it gets the SIGTERM below).
own_hosts=(unshare -m sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$W/hosts")
if "${own_hosts[@]}" true 2>/dev/null; then
	seed_host=nuvol-seed
else
	echo "note: no mount namespace here; joiners name the seed 127.0.0.1"
	own_hosts=(env)
	seed_host=127.0.0.1
fi
declare -A run=() pid=()
first=""
for b in "${boards[@]}"; do
	t_board "$b"
	run[$b]="qemu-$QEMU_USER_ARCH-static -cpu $QEMU_USER_CPU $ROOT/dist/$b/nuvol"
	port=$(t_port)
	args=(agent --config "$W/nuvol.conf" --name "$b" --bind "127.0.0.1:$port" --control "$W/$b.sock"
		--state "$W/$b" --beacon-port 0)
	if [ -z "$first" ]; then
		# shellcheck disable=SC2086 # run[] is a command line
		${run[$b]} "${args[@]}" </dev/null >"$W/$b.log" 2>&1 &
		first=$seed_host:$port
	else
		# shellcheck disable=SC2086
		"${own_hosts[@]}" ${run[$b]} "${args[@]}" --join "$first" </dev/null >"$W/$b.log" 2>&1 &
	fi
	pid[$b]=$!
	T_PIDS+=("${pid[$b]}")
	# Each agent must be up before the next joins it.
	# shellcheck disable=SC2086
	t_wait 30 ${run[$b]} --control "$W/$b.sock" info >/dev/null 2>&1 || {
		cat "$W/$b.log"
		t_fail "$b agent did not start"
		t_done
	}
done
n=${#boards[@]}
count_state() {
	# shellcheck disable=SC2086
	${run[$1]} --control "$W/$1.sock" members 2>/dev/null | awk -v s="$2" '$3==s' | wc -l
}
all_see_all() {
	local b
	for b in "${boards[@]}"; do [ "$(count_state "$b" alive)" -eq "$n" ] || return 1; done
}
t_check "all $n agents (${boards[*]}) see $n alive members" t_wait 60 all_see_all

last=${boards[$((n - 1))]}
kill -TERM "${pid[$last]}"
others_see_left() {
	local b
	for b in "${boards[@]}"; do
		[ "$b" = "$last" ] && continue
		[ "$(count_state "$b" left)" -eq 1 ] || return 1
	done
}
t_check "$last leaves on SIGTERM and every other agent marks it left" t_wait 30 others_see_left
t_check "$last exits 0 after leaving" bash -c "for i in \$(seq 50); do kill -0 ${pid[$last]} 2>/dev/null || exit 0; sleep 0.2; done; exit 1"
wait "${pid[$last]}" 2>/dev/null
t_check "$last exit status 0" [ $? -eq 0 ]
for b in "${boards[@]}"; do
	# shellcheck disable=SC2086
	echo "--- $b: $(${run[${boards[0]}]} --version)"; head -n 3 "$W/$b.log"
done
t_done
