#!/usr/bin/env bash
# tests/lib/msrv.sh: builds the workspace with the oldest Rust it promises
# to build with (rust-version in Cargo.toml: the Rust of OpenWRT 24.10), so
# a language feature, std API or dependency newer than that fails here and
# not in an OpenWRT SDK. The toolchain comes from rustup (installed once,
# minimal profile); its own target dir keeps the pinned toolchain's cache.
#
#   tests/lib/msrv.sh     cargo check, all targets, default and heavy features
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
MSRV=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml | head -1)
[ -n "$MSRV" ] || {
	echo "msrv.sh: no rust-version in Cargo.toml" >&2
	exit 1
}
if ! rustup run "$MSRV" rustc --version >/dev/null 2>&1; then
	echo "==> msrv: installing Rust $MSRV (rustup, minimal profile)" >&2
	rustup toolchain install "$MSRV" --profile minimal >&2
fi
echo "==> msrv: $(rustup run "$MSRV" rustc --version)" >&2
export CARGO_TARGET_DIR=$ROOT/target-msrv
# The pinned rust-toolchain.toml would win over a bare cargo: name it.
nice -n 10 cargo "+$MSRV" check --workspace --all-targets
nice -n 10 cargo "+$MSRV" check -p nuvol --features heavy --all-targets
