#!/bin/sh
# Short fuzz run of every nuvol-gossip decoder (cargo-fuzz, libFuzzer).
#
# Each target in agent/gossip/fuzz gets an equal share of FUZZ_SECONDS
# (default 60 s in total), starting from the golden vectors in
# agent/gossip/fuzz/seeds. A crash fails the suite and leaves its input in
# agent/gossip/fuzz/artifacts/<target>/: turn it into a regression test in
# agent/gossip/tests/wire.rs. Exit codes: 0 pass, 1 fail, 77 skipped.
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
fuzz="$here/agent/gossip/fuzz"
total=${FUZZ_SECONDS:-60}

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

targets=$(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' "$fuzz/Cargo.toml" | grep -v '^nuvol-gossip-fuzz$')
count=$(echo "$targets" | wc -w)
each=$((total / count))
[ "$each" -lt 3 ] && each=3

cd "$fuzz" || exit 1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$fuzz/target}"
echo "building $count fuzz targets"
if ! nice cargo +nightly fuzz build -O >build.log 2>&1; then
    tail -30 build.log
    echo "FAIL: fuzz targets do not build"
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
failed=0
for t in $targets; do
    mkdir -p "$work/$t"
    # First directory collects new inputs (thrown away); seeds are read only.
    if nice cargo +nightly fuzz run -O "$t" "$work/$t" "seeds/$t" -- \
        -max_total_time="$each" -rss_limit_mb=1024 -max_len=65536 \
        -print_final_stats=1 >"$work/$t.log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")
        echo "ok: $t ($each s, ${runs:-?} runs)"
    else
        failed=1
        tail -40 "$work/$t.log"
        echo "FAIL: $t (input saved under agent/gossip/fuzz/artifacts/$t/)"
    fi
done
rm -f build.log
[ "$failed" -eq 0 ] || exit 1
echo "gossip fuzz: all $count targets clean"
exit 0
