#!/usr/bin/env bash
# tests/run.sh: the one test entry point (CI runs it through .ci/run).
#
# 1. installs what the tests need, idempotently: the Debian packages listed
#    in tests/deps.d/*.apt, then the build tools (rust-src, zig,
#    cargo-zigbuild, qemu-user-static) through ./build.sh tools;
# 2. cargo fmt --check, clippy with warnings denied, cargo test, all over the
#    workspace;
# 3. cross-builds the test boards with ./build.sh (armv7, mipsel, aarch64 and
#    i586 by default, i586 twice: galileo is alix's binary without LOCK
#    prefixes; NUVOL_TEST_BOARDS="..." or "all" to change) and checks
#    each binary: statically linked, `nuvol --version` under its board's CPU;
# 4. runs every executable tests/suite/*.sh: exit 0 pass, 77 skipped (its
#    reason is printed), anything else fail.
#
# Ends with one line "N passed, N failed, N skipped" and exits 1 if anything
# failed. Works without a terminal (CI=true, stdin closed). Logs of every
# step are in .cache/test-logs/.

set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
LOGS=$ROOT/.cache/test-logs
mkdir -p "$LOGS"
PASSED=0 FAILED=0 SKIPPED=0
FAILURES=()
T0=$SECONDS

# step NAME TIMEOUT CMD...: one counted result; output in .cache/test-logs/NAME.log.
step() {
	local name=$1 limit=$2 t=$SECONDS rc
	shift 2
	local log=$LOGS/$name.log
	printf '%-40s ' "$name"
	# Through bash -c so a step can be a function of this file (exported).
	timeout --kill-after=30 "$limit" bash -c '"$@"' step "$@" </dev/null >"$log" 2>&1
	rc=$?
	case $rc in
	0)
		PASSED=$((PASSED + 1))
		printf 'pass  %4ss\n' "$((SECONDS - t))"
		;;
	77)
		SKIPPED=$((SKIPPED + 1))
		printf 'skip  %4ss  %s\n' "$((SECONDS - t))" "$(grep -m1 -i 'skip' "$log" || tail -n 1 "$log")"
		;;
	*)
		FAILED=$((FAILED + 1))
		FAILURES+=("$name")
		[ "$rc" -eq 124 ] && echo "(timed out after $limit)" >>"$log"
		printf 'FAIL  %4ss  (exit %s, log: %s)\n' "$((SECONDS - t))" "$rc" "${log#"$ROOT"/}"
		# What failed first, with its message: a backtrace or later output
		# can push it out of the tail (CI once showed only a backtrace).
		grep -m 5 -A 4 -e 'panicked at' -e '^FAIL' "$log" | head -n 40 | sed 's/^/    ! /'
		tail -n 15 "$log" | sed 's/^/    | /'
		;;
	esac
}

# -------------------------------------------------------------- installs --

install_apt_deps() {
	local -a want=() missing=()
	local f p
	for f in "$ROOT"/tests/deps.d/*.apt; do
		[ -f "$f" ] || continue
		while read -r p; do
			p=${p%%#*}
			p=${p//[[:space:]]/}
			[ -n "$p" ] && want+=("$p")
		done <"$f"
	done
	for p in "${want[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -gt 0 ] || {
		echo "all ${#want[@]} Debian packages already installed"
		return 0
	}
	echo "installing: ${missing[*]}"
	[ "$(id -u)" = 0 ] || {
		echo "not root: cannot apt-get install ${missing[*]}"
		return 1
	}
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends "${missing[@]}" ||
		{ apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; }
}

main() {
	export ROOT
	export -f install_apt_deps
	echo "nuvol tests: $(date -u '+%Y-%m-%d %H:%M UTC'), logs in ${LOGS#"$ROOT"/}/"
	step install-debian-packages 20m install_apt_deps
	step install-build-tools 30m ./build.sh tools
	# OpenWRT's own programs (apk, opkg, procd, ubus, uci, uhttpd, usign),
	# built once per set of pinned tarballs into .cache/upstream.
	step build-upstream-openwrt 20m tests/lib/upstream.sh

	# The tools build.sh installed into .cache/tools (zig) must be on PATH for
	# the cargo steps too.
	[ -d "$ROOT/.cache/tools/bin" ] && PATH=$ROOT/.cache/tools/bin:$PATH

	# ----------------------------------------------------------------- cargo --

	step cargo-fmt 5m cargo fmt --all --check
	step cargo-clippy 40m nice -n 10 cargo clippy --workspace --all-targets -- -D warnings
	step cargo-test 40m nice -n 10 cargo test --workspace
	# The heavier-node extension (federation) is a feature of the agent only.
	step cargo-clippy-heavy 20m nice -n 10 cargo clippy -p nuvol --features heavy --all-targets -- -D warnings
	step cargo-test-heavy 20m nice -n 10 cargo test -p nuvol --features heavy --bins --test federation
	# The feed must build with OpenWRT 24.10's Rust (rust-version).
	step msrv 30m tests/lib/msrv.sh
	# The pure cores stay no_std + alloc: built for a bare-metal target, whose
	# core and alloc come from rust-src (no std exists there to lean on).
	step no-std-cores 15m env RUSTC_BOOTSTRAP=1 nice -n 10 cargo build -p nuvol-gossip -p nuvol-supervise \
		--target thumbv7em-none-eabihf -Zbuild-std=core,alloc

	# ---------------------------------------------------------- cross builds --

	BOARDS=${NUVOL_TEST_BOARDS:-turris-omnia ramips turris-mox alix galileo}
	[ "$BOARDS" = all ] && BOARDS=$(./build.sh list | tr '\n' ' ')
	# The budget is its own result below, so a size overrun and a broken
	# build read differently in the summary.
	# shellcheck disable=SC2086 # one word per board
	step "cross-build" 60m env NUVOL_BUDGET=warn ./build.sh $BOARDS

	check_board() {
		local board=$1 bin=$ROOT/dist/$1/nuvol out
		# shellcheck disable=SC1090
		. "$ROOT/boards/$board.conf"
		[ -x "$bin" ] || {
			echo "no $bin: the cross build did not produce it"
			return 1
		}
		file "$bin"
		file -b "$bin" | grep -q 'statically linked' || return 1
		out=$(timeout 60 "qemu-$QEMU_USER_ARCH-static" -cpu "$QEMU_USER_CPU" "$bin" --version 2>&1)
		echo "qemu-$QEMU_USER_ARCH-static -cpu $QEMU_USER_CPU: $out"
		[[ $out == "nuvol "* ]]
	}
	# within_budget BOARD: the stripped binary fits SIZE_BUDGET_KIB (budgets
	# are a ratchet: measured size plus a few per cent, only ever lowered).
	within_budget() {
		# shellcheck disable=SC1090
		. "$ROOT/boards/$1.conf"
		local bytes budget=$((SIZE_BUDGET_KIB * 1024))
		bytes=$(stat -c %s "$ROOT/dist/$1/nuvol") || return 1
		echo "$1: $bytes bytes, budget $budget bytes ($SIZE_BUDGET_KIB KiB)"
		[ "$bytes" -le "$budget" ] || {
			echo "$1: OVER BUDGET by $((bytes - budget)) bytes"
			return 1
		}
	}
	export -f check_board within_budget
	for b in $BOARDS; do
		step "static-and-runs-on-cpu:$b" 2m check_board "$b"
		step "size-budget:$b" 1m within_budget "$b"
	done

	# ---------------------------------------------------------------- suites --

	for s in "$ROOT"/tests/suite/*.sh; do
		[ -x "$s" ] || continue
		n=${s##*/}
		step "suite:${n%.sh}" 30m "$s"
	done

	echo
	echo "total time $((SECONDS - T0)) s"
	[ ${#FAILURES[@]} -eq 0 ] || echo "failed: ${FAILURES[*]}"
	echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
	[ "$FAILED" -eq 0 ]
}

# One line: bash has read all of it before running, so editing this file
# during a run cannot change what the run executes.
main "$@"; exit $?
