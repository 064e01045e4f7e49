#!/usr/bin/env bash
# Headless Chromium (Debian's chromium + chromium-driver) against the page's
# built-in server and a fake agent: log in, load the search page and save
# screenshots (desktop and phone width), then click install -> start ->
# publish of the offline app template; the fake agent's request log must show
# exactly those three changes.
#
# Screenshots go to $NUVOL_ARTIFACTS/page (default target/artifacts/page).
# PAGE_TEMPLATE names the template to click (default: website, the offline template shipped by nuvol-lxc).
# PAGE_URL + PAGE_PASSWORD point the same browser run at an already running
# page (a real `nuvol agent --http`); then no fake agent is started and the
# request-log check is skipped.
# Exit: 0 pass, 1 fail, 77 skipped (no chromium, chromedriver or python3).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
for tool in chromium chromedriver python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "skipped: $tool is not installed"; exit 77; }
done
WORK=$(mktemp -d /tmp/nuvol-page-browser.XXXXXX)
OUT=${NUVOL_ARTIFACTS:-$ROOT/target/artifacts}/page
mkdir -p "$OUT"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$WORK" 2>/dev/null
}
trap cleanup EXIT

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
(cd "$ROOT" && nice cargo build -q -p nuvol-page --examples) || { echo "FAIL: cannot build the page examples"; exit 1; }
free_port() { python3 "$ROOT/tests/lib/free-port.py"; }
PAGE_PORT=$(free_port)
DRIVER_PORT=$(free_port)
SOCK=$WORK/nuvol.sock
LOG=$WORK/requests.log
URL=${PAGE_URL:-http://127.0.0.1:$PAGE_PORT}
PASSWORD=${PAGE_PASSWORD:-browser-pw}
if [ -z "${PAGE_URL:-}" ]; then
    "$TARGET/debug/examples/fake-agent" "$SOCK" --log "$LOG" > "$WORK/fake.out" 2>&1 &
    PIDS+=($!)
    "$TARGET/debug/examples/page-serve" "127.0.0.1:$PAGE_PORT" "$SOCK" "$PASSWORD" > "$WORK/page.out" 2>&1 &
    PIDS+=($!)
fi
chromedriver --port="$DRIVER_PORT" --allowed-ips=127.0.0.1 > "$WORK/driver.out" 2>&1 &
PIDS+=($!)
# Bounded, and generous: on a loaded CI machine the servers start slowly.
ready=
for _ in $(seq 300); do
    curl -s -o /dev/null "$URL/login" && curl -s -o /dev/null "http://127.0.0.1:$DRIVER_PORT/status" && { ready=1; break; }
    sleep 0.1
done
[ -n "$ready" ] || { echo "FAIL: the page or chromedriver did not start in 30 s"; tail -n 5 "$WORK"/*.out; exit 1; }

# The browser profile goes under $WORK (TMPDIR), so cleanup removes this
# run's profile and never another run's.
if ! TMPDIR=$WORK timeout 300 python3 "$ROOT/agent/page/tests/browser/clickthrough.py" \
        "$URL" "$PASSWORD" "$DRIVER_PORT" "$OUT" "${PAGE_TEMPLATE:-website}"; then
    echo "page-browser: FAIL"; tail -5 "$WORK/driver.out"; exit 1
fi
if [ -n "${PAGE_URL:-}" ]; then
    echo "page-browser: passed against $URL; screenshots in $OUT"; exit 0
fi
CHANGES=$(grep -E '^(AppInstall|AppControl)' "$LOG")
EXPECTED='AppInstall { template: "website", name: "website" }
AppControl { name: "website", action: Start }
AppControl { name: "website", action: Publish }'
if [ -z "${PAGE_TEMPLATE:-}" ] && [ "$CHANGES" != "$EXPECTED" ]; then
    echo "FAIL: the agent saw other changes than install, start, publish:"; echo "$CHANGES"; exit 1
fi
echo "page-browser: passed; screenshots in $OUT"
exit 0
