#!/usr/bin/env bash
# qemu/run.sh SCENARIO [BOARD...]: boot emulated boards and prove nuvol works
# on them. Exit 0 only if every check of the scenario held.
#
#   boot BOARD            boot one board (default mipsel), see `nuvol --version`
#                         and the agent's first log line on its console, print
#                         the agent's RSS, power off.
#   cluster [BOARD...]    boot several boards (default mipsel armv7 aarch64) on
#                         one private network, wait until every agent sees every
#                         other, publish a service on one, find it from another
#                         with the CLI and through the CGI page of a third over
#                         the virtual network, pull the plug on one VM and check
#                         that the others mark it failed, print nuvol's RSS in
#                         each VM.
#
# BOARD is mipsel, armv7, aarch64 or the name of a file in boards/. Parts are
# fetched once by qemu/fetch.sh; nuvol comes from dist/BOARD/nuvol (see
# qemu/initramfs.sh). Every VM started here is stopped on exit, error or
# Ctrl-C, and the network namespace of a cluster is deleted. Consoles and qemu
# logs stay in .cache/qemu/runs/ for a post-mortem.
#
# The host drives each VM through its serial console: a qemu pipe chardev
# (con.in / con.out fifos) that a shell in the VM's /init reads commands from.
#
# Environment: NUVOL_QEMU_BOOT_TIMEOUT (s, default 120) bounds each boot.
set -euo pipefail
# shellcheck source=qemu/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BOOT_TIMEOUT=${NUVOL_QEMU_BOOT_TIMEOUT:-120}
JOIN_TIMEOUT=${NUVOL_QEMU_JOIN_TIMEOUT:-120}
FAIL_TIMEOUT=${NUVOL_QEMU_FAIL_TIMEOUT:-90}
SUBNET=10.77.0
PAGE_USER=root
PAGE_PASS=nuvol

VM_PID=() VM_DIR=() VM_BOARD=() VM_RAM=() VM_READER=() VM_IP=() VM_NAME=()
NETNS=""
RUN_DIR=""
CMD_SEQ=0
FAILURES=0
START=$SECONDS

progress() { printf '[%4ds] %s\n' $((SECONDS - START)) "$*"; }
check() {
	# check OK|FAIL MESSAGE: one line per scenario check.
	if [ "$1" = OK ]; then
		progress "ok    $2"
	else
		progress "FAIL  $2"
		FAILURES=$((FAILURES + 1))
	fi
}

cleanup() {
	local rc=$? i
	trap - EXIT INT TERM
	for i in "${!VM_PID[@]}"; do
		kill "${VM_PID[$i]}" 2>/dev/null || true
	done
	for i in "${!VM_PID[@]}"; do
		# qemu exits within a moment of SIGTERM; give it 5 s, then SIGKILL.
		local n=0
		while kill -0 "${VM_PID[$i]}" 2>/dev/null && [ $n -lt 50 ]; do
			sleep 0.1
			n=$((n + 1))
		done
		kill -9 "${VM_PID[$i]}" 2>/dev/null || true
		kill "${VM_READER[$i]}" 2>/dev/null || true
	done
	if [ -n "$NETNS" ]; then
		ip netns delete "$NETNS" 2>/dev/null || true
	fi
	[ -n "$RUN_DIR" ] && printf '[qemu] consoles and logs: %s\n' "$RUN_DIR" >&2
	exit "$rc"
}

# vm_start IDX BOARD NET: boot BOARD as VM IDX with address $SUBNET.(IDX+1).
# NET is `alone` (a NIC on a hub of its own) or `bridge` (a tap on the bridge
# of $NETNS).
vm_start() {
	local i=$1 net=$3
	machine_for "$2"
	local board=$M_BOARD
	local dir=$RUN_DIR/vm$i-$board
	local ip=$SUBNET.$((i + 1))
	local name=n$((i + 1))-$board
	mkdir -p "$dir"
	mkfifo "$dir/con.in" "$dir/con.out"
	# Reading con.out continuously keeps qemu from blocking on a full pipe.
	cat "$dir/con.out" >"$dir/console.log" &
	VM_READER[i]=$!
	local join="" j
	for j in "${!VM_BOARDS[@]}"; do
		join+="${join:+,}$SUBNET.$((j + 1)):7946"
	done
	# This VM's settings ride in a second cpio appended to the board's
	# initramfs (the kernel unpacks concatenated archives in turn).
	mkdir -p "$dir/vm/etc"
	cat >"$dir/vm/etc/nuvol-vm.conf" <<-EOF
		name=$name
		ip=$ip/24
		cloud=qemu
		join=$join
		key=${CLUSTER_KEY:-}
		pagepass=$PAGE_PASS
	EOF
	(cd "$dir/vm" && printf '%s\n' etc etc/nuvol-vm.conf | cpio --quiet -o -H newc --owner=0:0) | gzip >"$dir/vm.cpio.gz"
	cat "$CACHE/out/$board/initramfs.cpio.gz" "$dir/vm.cpio.gz" >"$dir/initramfs.cpio.gz"
	local netdev prefix=()
	case $net in
	alone) netdev=(-netdev "hubport,id=n0,hubid=0") ;;
	bridge)
		ip -n "$NETNS" tuntap add dev "nvtap$i" mode tap
		ip -n "$NETNS" link set "nvtap$i" master nvbr0 up
		netdev=(-netdev "tap,id=n0,ifname=nvtap$i,script=no,downscript=no")
		prefix=(ip netns exec "$NETNS")
		;;
	esac
	local qemu
	qemu=$(qemu_bin "$M_QEMU")
	qemu_env
	# TCG is CPU heavy and the machine is shared: run the VMs niced.
	nice -n 5 "${prefix[@]}" "$qemu" "${M_MACHINE[@]}" -m "$M_RAM" \
		-nodefaults -display none -no-reboot -L "$CACHE/host/usr/share/qemu" \
		-kernel "$M_PARTS/kernel" -initrd "$dir/initramfs.cpio.gz" \
		-append "console=$M_CONSOLE panic=-1" \
		-chardev "pipe,id=con,path=$dir/con" -serial chardev:con \
		"${netdev[@]}" -device "$M_NIC,netdev=n0,mac=52:54:00:77:00:$(printf %02x $((i + 1)))" \
		</dev/null >"$dir/qemu.log" 2>&1 &
	VM_PID[i]=$!
	VM_DIR[i]=$dir
	VM_BOARD[i]=$board
	VM_RAM[i]=$M_RAM
	VM_IP[i]=$ip
	VM_NAME[i]=$name
}

vm_alive() { kill -0 "${VM_PID[$1]}" 2>/dev/null; }

# vm_wait IDX REGEX SECONDS: wait until the console shows a line matching
# REGEX; false on timeout or if the VM died.
vm_wait() {
	local i=$1 re=$2 end=$((SECONDS + $3))
	while [ $SECONDS -lt $end ]; do
		grep -aqE "$re" "${VM_DIR[$i]}/console.log" && return 0
		vm_alive "$i" || return 1
		sleep 0.3
	done
	return 1
}

# console_line IDX REGEX: the first console line matching REGEX, without \r.
console_line() {
	grep -aE "$2" "${VM_DIR[$1]}/console.log" | head -n1 | tr -d '\r'
}

# vm_cmd IDX SECONDS COMMAND: run COMMAND in the VM's shell; its output (stdout
# and stderr) lands in OUT and its exit code is returned (124 on timeout).
vm_cmd() {
	local i=$1 t=$2
	shift 2
	CMD_SEQ=$((CMD_SEQ + 1))
	# BASHPID keeps markers unique even if a caller runs this in a subshell,
	# where the CMD_SEQ increment would be lost.
	local n=${BASHPID}x$CMD_SEQ log=${VM_DIR[$i]}/console.log
	OUT=""
	vm_alive "$i" || return 125
	# `1<>` opens the fifo read-write, which never blocks: a plain `>` would
	# wait forever for a reader if qemu died a moment ago.
	# The markers are built by the VM's shell, so its output, never the
	# command text, is what matches. The extra `echo` makes the end marker
	# start a line even if the output did not end with a newline.
	# The blank lines after it are padding: qemu's PL011 hands the guest its
	# receive FIFO only when enough bytes have arrived, so the tail of the last
	# write waits in the FIFO until more input comes; the blank lines are that.
	{
		printf '%s\n' "echo @@B$n; ( $* ) </dev/null 2>&1; echo \"
@@E$n \$?\""
		printf '\n%.0s' {1..32}
	} 1<>"${VM_DIR[$i]}/con.in"
	local end=$((SECONDS + t))
	until grep -aq "^@@E$n " "$log"; do
		if [ $SECONDS -ge $end ] || ! vm_alive "$i"; then
			return 124
		fi
		sleep 0.2
	done
	# $(...) drops the trailing newlines, the padding `echo` among them.
	OUT=$(tr -d '\r' <"$log" | sed -n "/^@@B$n\$/,/^@@E$n /p" | sed '1d;$d')
	local rc
	rc=$(tr -d '\r' <"$log" | sed -n "s/^@@E$n \([0-9]*\).*/\1/p" | head -n1)
	return "${rc:-1}"
}

# vm_boot_checks IDX: wait for the boot markers of VM IDX and check them.
# Sets AGENT[IDX]=1 when the agent is running.
declare -A AGENT=()
vm_boot_checks() {
	local i=$1 b=${VM_BOARD[$1]}
	if vm_wait "$i" '^nuvol-version: ' "$BOOT_TIMEOUT"; then
		check OK "$b: $(console_line "$i" '^nuvol-version: ')"
	elif ! vm_alive "$i"; then
		check FAIL "$b: qemu exited before nuvol ran: $(tail -n 3 "${VM_DIR[$i]}/qemu.log" | tr '\n' ' ')"
		return 1
	else
		check FAIL "$b: no 'nuvol --version' on the console within ${BOOT_TIMEOUT}s (see console.log)"
		return 1
	fi
	vm_wait "$i" '^nuvol-ready: ' 30 || {
		check FAIL "$b: /init did not reach its command shell"
		return 1
	}
	if grep -aq '^nuvol-agent: unsupported' "${VM_DIR[$i]}/console.log"; then
		progress "note  $b: this nuvol build has no 'agent' subcommand yet; agent checks skipped"
		return 0
	fi
	if vm_wait "$i" '^nuvol-log: ' 30; then
		check OK "$b: agent's first log line: $(console_line "$i" '^nuvol-log: ' | cut -c12-)"
	else
		check FAIL "$b: the agent logged nothing within 30s"
		return 1
	fi
	# Give a crashing agent a moment to crash before calling it running.
	sleep 2
	if vm_cmd "$i" 20 'kill -0 $(cat /var/run/nuvol.pid)'; then
		AGENT[$i]=1
		check OK "$b: agent running"
	else
		vm_cmd "$i" 20 'tail -n 5 /tmp/nuvol.log' || true
		check FAIL "$b: agent exited: $OUT"
		return 1
	fi
}

# vm_rss IDX: print the agent's resident memory inside the VM.
vm_rss() {
	local i=$1
	if vm_cmd "$i" 20 'grep -E "^Vm(RSS|HWM)" /proc/$(cat /var/run/nuvol.pid)/status | tr -s " \t" " " | tr "\n" " " | sed "s/ $//"'; then
		progress "rss   ${VM_BOARD[$i]} (${VM_RAM[$i]} MB VM): $OUT"
	else
		progress "rss   ${VM_BOARD[$i]}: unavailable ($OUT)"
	fi
}

# vm_poweroff IDX: orderly power-off, then make sure qemu is gone.
vm_poweroff() {
	local i=$1 n=0
	{
		printf 'poweroff -f\n'
		printf '\n%.0s' {1..32}
	} 1<>"${VM_DIR[$i]}/con.in" 2>/dev/null || true
	# virt's PSCI ends qemu; malta only halts the CPU after "Power down".
	while vm_alive "$i" && [ $n -lt 100 ] && ! grep -aq 'reboot: Power down' "${VM_DIR[$i]}/console.log"; do
		sleep 0.1
		n=$((n + 1))
	done
	kill "${VM_PID[$i]}" 2>/dev/null || true
}

prepare() {
	local b
	"$QEMU_DIR/fetch.sh" "$@"
	for b in "$@"; do
		progress "initramfs for $b"
		"$QEMU_DIR/initramfs.sh" "$b" >/dev/null
	done
	RUN_DIR=$CACHE/runs/$SCENARIO-$(date +%Y%m%d-%H%M%S)-$$
	mkdir -p "$RUN_DIR"
	# Keep the last 10 runs for post-mortems, not every run ever.
	find "$CACHE/runs" -mindepth 1 -maxdepth 1 -type d -printf '%T@ %p\n' | sort -rn |
		tail -n +11 | cut -d' ' -f2- | while read -r old; do rm -rf "$old"; done
}

scenario_boot() {
	[ $# -le 1 ] || die "usage: qemu/run.sh boot [BOARD]"
	local board=${1:-mipsel}
	VM_BOARDS=("$board")
	prepare "$board"
	local t0=$SECONDS
	progress "booting $board"
	vm_start 0 "$board" alone
	if vm_boot_checks 0; then
		progress "booted $board in $((SECONDS - t0))s"
		if vm_cmd 0 20 'echo "$(uname -m), kernel $(uname -r), $(grep -m1 -iE "^(cpu model|model name|cpu part)" /proc/cpuinfo | cut -d: -f2), $(grep MemTotal /proc/meminfo | tr -s " ")"'; then
			check OK "console command channel: $OUT"
		else
			check FAIL "console command channel: no answer ($OUT)"
		fi
		if [ -n "${AGENT[0]:-}" ]; then
			vm_rss 0
			# The page as a router owner gets it: busybox httpd runs nuvol as CGI.
			if vm_cmd 0 40 "timeout 30 wget -q -O - 'http://$PAGE_USER:$PAGE_PASS@127.0.0.1/cgi-bin/nuvol?format=json'" &&
				grep -q "${VM_NAME[0]}" <<<"$OUT"; then
				check OK "CGI page through busybox httpd answers ($(wc -c <<<"$OUT") bytes of JSON naming ${VM_NAME[0]})"
			else
				check FAIL "CGI page through busybox httpd: $(head -c 300 <<<"$OUT")"
			fi
		fi
	fi
	vm_poweroff 0
}

# cluster_members IDX: "ALIVE FAILED" counts of `nuvol members` on VM IDX,
# and MEMBERS holds the JSON.
cluster_members() {
	local i=$1
	vm_cmd "$i" 20 'nuvol --json members' || return 1
	MEMBERS=$OUT
	ALIVE=$(grep -oE '"state": *"alive"' <<<"$OUT" | wc -l)
}

# member_state IDX NAME: sets STATE to NAME's state in VM IDX's member list.
member_state() {
	STATE=""
	vm_cmd "$1" 20 'nuvol --json members' || return 1
	MEMBERS=$OUT
	# Split on `{`: name and state come before a member's tags object.
	STATE=$(tr '{' '\n' <<<"$OUT" | grep -F "\"name\":\"$2\"" | sed -nE 's/.*"state": *"([a-z]+)".*/\1/p' | head -n1)
}

scenario_cluster() {
	local boards=("$@")
	[ ${#boards[@]} -gt 0 ] || boards=(mipsel armv7 aarch64)
	[ ${#boards[@]} -ge 3 ] || die "cluster needs at least 3 boards (publisher, CLI finder, page server)"
	VM_BOARDS=("${boards[@]}")
	local n=${#boards[@]} i
	prepare "${boards[@]}"
	CLUSTER_KEY=$(head -c 32 /dev/urandom | base64)

	NETNS=nuvol-qemu-$$
	ip netns add "$NETNS" || die "cannot create a network namespace (needs root): the cluster's private network lives in one"
	ip -n "$NETNS" link set lo up
	ip -n "$NETNS" link add nvbr0 type bridge
	ip -n "$NETNS" addr add "$SUBNET.254/24" dev nvbr0
	ip -n "$NETNS" link set nvbr0 up
	progress "private network $SUBNET.0/24 on a bridge in netns $NETNS"

	local t0=$SECONDS
	for i in "${!boards[@]}"; do
		progress "booting ${boards[$i]} as $SUBNET.$((i + 1)) (n$((i + 1)))"
		vm_start "$i" "${boards[$i]}" bridge
	done
	for i in "${!boards[@]}"; do
		vm_boot_checks "$i" || true
	done
	progress "all VMs booted in $((SECONDS - t0))s"
	for i in "${!boards[@]}"; do
		[ -n "${AGENT[$i]:-}" ] || {
			check FAIL "cluster needs the agent running on every VM"
			return
		}
	done

	# 1. Every agent sees every member alive.
	t0=$SECONDS
	local end=$((SECONDS + JOIN_TIMEOUT)) joined=0
	while [ $SECONDS -lt $end ]; do
		joined=0
		for i in "${!boards[@]}"; do
			cluster_members "$i" && [ "$ALIVE" -ge "$n" ] && joined=$((joined + 1))
		done
		[ "$joined" -eq "$n" ] && break
		sleep 2
	done
	if [ "$joined" -eq "$n" ]; then
		check OK "all $n agents see $n alive members ($((SECONDS - t0))s)"
	else
		for i in "${!boards[@]}"; do
			cluster_members "$i" || true
			progress "      ${VM_NAME[$i]} sees: $MEMBERS"
		done
		check FAIL "only $joined of $n agents saw everyone alive within ${JOIN_TIMEOUT}s"
		return
	fi

	# 2. Publish on VM 0, find it from VM 1 (CLI) and through VM 2's page.
	local desc="qemu-demo-$$"
	if vm_cmd 0 20 "nuvol publish --type http --port 8080 --description $desc --txt path=/demo"; then
		check OK "${VM_NAME[0]} published http:8080 '$desc'"
	else
		check FAIL "publish on ${VM_NAME[0]}: $OUT"
	fi
	t0=$SECONDS
	end=$((SECONDS + 60))
	local found=""
	while [ $SECONDS -lt $end ]; do
		if vm_cmd 1 20 "nuvol --json search --type http" && grep -q "$desc" <<<"$OUT"; then
			found=1
			break
		fi
		sleep 1
	done
	if [ -n "$found" ]; then
		check OK "${VM_NAME[1]} finds it with 'nuvol search' after $((SECONDS - t0))s"
	else
		check FAIL "${VM_NAME[1]} did not find '$desc' with 'nuvol search' within 60s: $OUT"
	fi
	local url="http://$PAGE_USER:$PAGE_PASS@${VM_IP[2]}/cgi-bin/nuvol/search?scope=microcloud&type=http"
	found=""
	end=$((SECONDS + 60))
	while [ $SECONDS -lt $end ]; do
		if vm_cmd 1 40 "timeout 30 wget -q -O - '$url&format=json'" && grep -q "$desc" <<<"$OUT"; then
			found=1
			break
		fi
		sleep 1
	done
	if [ -n "$found" ]; then
		check OK "${VM_NAME[1]} finds it on ${VM_NAME[2]}'s page (GET /cgi-bin/nuvol/search over the virtual network)"
	else
		check FAIL "${VM_NAME[2]}'s page did not list '$desc': $(head -c 300 <<<"$OUT")"
	fi
	if vm_cmd 1 40 "timeout 30 wget -q -O - '$url'" && grep -q "$desc" <<<"$OUT" && grep -qi '<html' <<<"$OUT"; then
		check OK "the HTML page lists it too ($(wc -c <<<"$OUT") bytes)"
	else
		check FAIL "the HTML search page did not list '$desc'"
	fi

	# 3. RSS of every agent, while the cluster is whole.
	for i in "${!boards[@]}"; do
		vm_rss "$i"
	done

	# 4. Pull the plug on the last VM; the others must mark it failed.
	local victim=$((n - 1))
	progress "powering off ${VM_NAME[$victim]} (qemu killed: a power cut, no graceful leave)"
	kill -9 "${VM_PID[$victim]}"
	wait "${VM_PID[$victim]}" 2>/dev/null || true
	t0=$SECONDS
	end=$((SECONDS + FAIL_TIMEOUT))
	local marked=0
	while [ $SECONDS -lt $end ]; do
		marked=0
		for ((i = 0; i < victim; i++)); do
			member_state "$i" "${VM_NAME[$victim]}" || true
			[ "$STATE" = failed ] && marked=$((marked + 1))
		done
		[ "$marked" -eq "$victim" ] && break
		sleep 1
	done
	if [ "$marked" -eq "$victim" ]; then
		check OK "every other agent marks ${VM_NAME[$victim]} failed ($((SECONDS - t0))s after the power cut)"
	else
		for ((i = 0; i < victim; i++)); do
			member_state "$i" "${VM_NAME[$victim]}" || true
			progress "      ${VM_NAME[$i]} sees: $MEMBERS"
		done
		check FAIL "only $marked of $victim agents marked ${VM_NAME[$victim]} failed within ${FAIL_TIMEOUT}s"
	fi
	for ((i = 0; i < victim; i++)); do
		vm_poweroff "$i"
	done
}

main() {
	[ $# -ge 1 ] || die "usage: qemu/run.sh boot [BOARD] | cluster [BOARD...]"
	SCENARIO=$1
	shift
	trap cleanup EXIT
	trap 'progress "interrupted"; exit 130' INT
	trap 'exit 143' TERM
	case $SCENARIO in
	boot) scenario_boot "$@" ;;
	cluster) scenario_cluster "$@" ;;
	*) die "unknown scenario '$SCENARIO' (boot, cluster)" ;;
	esac
	if [ "$FAILURES" -eq 0 ]; then
		progress "PASS  $SCENARIO"
	else
		progress "FAILED $SCENARIO: $FAILURES check(s) failed"
		exit 1
	fi
}

# Sourcing this file (for debugging) defines the functions without running.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	main "$@"
fi
