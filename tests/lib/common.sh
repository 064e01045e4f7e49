# shellcheck shell=bash
# Helpers shared by tests/run.sh and the tests/suite/*.sh scripts. Source it:
#   . "$(dirname "$0")/../lib/common.sh"
# It sets ROOT (the repository) and gives:
#   t_skip REASON          print "skipped: REASON" and exit 77
#   t_check NAME CMD...    run CMD, print "ok NAME" or "FAIL NAME", count
#   t_fail MESSAGE         record a failure with a message
#   t_done                 exit 0 if nothing failed, 1 otherwise
#   t_board BOARD          load boards/BOARD.conf into the shell
#   t_wait SECONDS CMD...  retry CMD every 0.2 s until it succeeds (bounded)
#   t_port                 a port on 127.0.0.1 free for UDP and TCP, below the ephemeral range
#   t_tmpdir VAR NAME      set VAR to a fresh temp dir, removed at exit
#   t_agent_exists CMD...  whether CMD (a nuvol, maybe under qemu) has the agent yet

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
T_FAILED=0
T_TMP=()
T_PIDS=()

t_cleanup() {
	local p
	for p in "${T_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${T_PIDS[@]}"; do
		# Bounded: an agent leaves within ~3 s; then it is killed.
		t_wait 5 t_gone "$p" || kill -KILL "$p" 2>/dev/null
	done
	[ ${#T_TMP[@]} -eq 0 ] || rm -rf "${T_TMP[@]}"
}
trap t_cleanup EXIT

t_gone() { ! kill -0 "$1" 2>/dev/null; }

t_skip() {
	echo "skipped: $*"
	exit 77
}

t_fail() {
	echo "FAIL $*"
	T_FAILED=$((T_FAILED + 1))
}

t_check() {
	local name=$1
	shift
	if "$@"; then
		echo "ok   $name"
	else
		t_fail "$name"
	fi
}

t_done() {
	[ "$T_FAILED" -eq 0 ] || {
		echo "$T_FAILED check(s) failed"
		exit 1
	}
	exit 0
}

t_board() {
	local f=$ROOT/boards/$1.conf
	[ -f "$f" ] || return 1
	# shellcheck disable=SC1090 # plain KEY="value" lines
	. "$f"
}

t_wait() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 5; i++)); do
		"$@" && return 0
		sleep 0.2
	done
	"$@"
}

# A port free for UDP and TCP, below the kernel's ephemeral range (why: see
# tests/lib/free-port.py); extra arguments as that script's (--also 10 ...).
t_port() {
	python3 "$ROOT/tests/lib/free-port.py" "$@"
}

t_tmpdir() {
	local __t_dir
	__t_dir=$(mktemp -d "/tmp/nuvol-$2.XXXXXX") || return 1
	T_TMP+=("$__t_dir")
	printf -v "$1" '%s' "$__t_dir"
}

t_agent_exists() {
	"$@" agent --help >/dev/null 2>&1
}
