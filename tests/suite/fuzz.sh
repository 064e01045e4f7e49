#!/bin/sh
# Short fuzz run of every decoder of untrusted input (cargo-fuzz, libFuzzer):
# the gossip wire (agent/gossip/fuzz) and the control protocol's frames
# (agent/control/fuzz).
#
# Each target gets an equal share of FUZZ_SECONDS (default 90 s in all),
# starting from the golden vectors in <crate>/fuzz/seeds. A crash fails the
# suite and leaves its input in <crate>/fuzz/artifacts/<target>/: turn it
# into a regression test of that crate. Exit codes: 0 pass, 1 fail, 77 skipped.
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
total=${FUZZ_SECONDS:-90}
crates="gossip control"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "skipped: no nightly toolchain (cargo +nightly) for cargo-fuzz"
    exit 77
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz missing; installing it from crates.io"
    if ! timeout 900 cargo install cargo-fuzz --locked >/dev/null 2>&1; then
        echo "skipped: cargo-fuzz is not installed and could not be installed"
        exit 77
    fi
fi

# targets CRATE: the fuzz target names of agent/CRATE/fuzz.
targets() {
    sed -n 's/^name = "\([a-z_]*\)"$/\1/p' "$here/agent/$1/fuzz/Cargo.toml"
}
count=0
for c in $crates; do count=$((count + $(targets "$c" | wc -w))); done
each=$((total / count))
[ "$each" -lt 3 ] && each=3

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
failed=0
for c in $crates; do
    fuzz="$here/agent/$c/fuzz"
    echo "building the $c fuzz targets"
    if ! (cd "$fuzz" && CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$fuzz/target}" \
        nice cargo +nightly fuzz build -O) >"$work/build-$c.log" 2>&1; then
        tail -30 "$work/build-$c.log"
        echo "FAIL: the $c fuzz targets do not build"
        failed=1
        continue
    fi
    for t in $(targets "$c"); do
        mkdir -p "$work/$c-$t"
        # First directory collects new inputs (thrown away); seeds are read only.
        if (cd "$fuzz" && CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$fuzz/target}" \
            nice cargo +nightly fuzz run -O "$t" "$work/$c-$t" "seeds/$t" -- \
            -max_total_time="$each" -rss_limit_mb=1024 -max_len=65536 \
            -print_final_stats=1) >"$work/$c-$t.log" 2>&1; then
            runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$c-$t.log")
            echo "ok: $c/$t ($each s, ${runs:-?} runs)"
        else
            failed=1
            tail -40 "$work/$c-$t.log"
            echo "FAIL: $c/$t (input saved under agent/$c/fuzz/artifacts/$t/)"
        fi
    done
done
[ "$failed" -eq 0 ] || exit 1
echo "fuzz: all $count targets clean"
exit 0
