#!/usr/bin/env bash
# The page as a CGI program under OpenWRT's real uhttpd (built from the
# pinned sources by tests/lib/upstream.sh), with basic auth from realm lines
# in its -c file as in /etc/httpd.conf, against a fake agent that records
# every request it gets. (tests/suite/openwrt-uhttpd.sh runs the installed
# page with the real agent under uhttpd's own init script.)
#
# Checks: every view answers 200 with its rows (HTML and ?format=json); a
# peer's <script> and quotes come out escaped; POSTs without or with a wrong
# CSRF token change nothing; with the right token they do and redirect (303);
# no credentials -> 401 (the server), a user not in allowed_user -> 403 (the
# page); an oversized body -> 413; the agent down -> a 503 page that says so.
#
# NUVOL_PAGE_CGI may name the CGI binary to test (the real `nuvol`, once it
# runs as CGI); by default the crate's page-cgi example is built and used.
# Exit: 0 pass, 1 fail, 77 skipped (no curl, uhttpd did not build).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
command -v curl >/dev/null 2>&1 || { echo "skipped: curl is not installed"; exit 77; }
PREFIX=$("$ROOT/tests/lib/upstream.sh") || { echo "skipped: the upstream OpenWRT programs did not build"; exit 77; }
UHTTPD=$PREFIX/bin/uhttpd

WORK=$(mktemp -d /tmp/nuvol-page-cgi.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if ! (cd "$ROOT" && nice cargo build -q -p nuvol-page --examples); then
    echo "FAIL: cannot build the page examples"; exit 1
fi
CGI=${NUVOL_PAGE_CGI:-$TARGET/debug/examples/page-cgi}
FAKE=$TARGET/debug/examples/fake-agent

mkdir -p "$WORK/www/cgi-bin" "$WORK/state"
SOCK=$WORK/nuvol.sock
LOG=$WORK/requests.log
: > "$LOG"
"$FAKE" "$SOCK" --log "$LOG" > "$WORK/fake.out" 2>&1 &
PIDS+=($!)

cat > "$WORK/nuvol.conf" <<CONF
config page 'page'
	list allowed_user 'root'
	option secret_file '$WORK/state/page.secret'
CONF
# uhttpd gives a CGI a clean environment (PATH only): a wrapper points the
# page at the fake agent and this config, as /etc/config/nuvol does on a router.
cat > "$WORK/www/cgi-bin/nuvol" <<WRAP
#!/bin/sh
NUVOL_CONTROL='$SOCK' NUVOL_CONFIG='$WORK/nuvol.conf' NUVOL_STATE='$WORK/state' exec '$CGI' "\$@"
WRAP
chmod 755 "$WORK/www/cgi-bin/nuvol"
# Realm lines as in /etc/httpd.conf, with fixed passwords instead of $p$root.
printf '/cgi-bin/nuvol:root:rootpw\n/cgi-bin/nuvol:guest:guestpw\n' > "$WORK/httpd.conf"
PORT=$(python3 "$ROOT/tests/lib/free-port.py" 2>/dev/null || echo $((20000 + RANDOM % 10000)))
"$UHTTPD" -f -p "127.0.0.1:$PORT" -h "$WORK/www" -x /cgi-bin -c "$WORK/httpd.conf" -r nuvol -t 60 \
    > "$WORK/uhttpd.out" 2>&1 &
PIDS+=($!)

BASE=http://127.0.0.1:$PORT/cgi-bin/nuvol
# Bounded, and generous: on a loaded CI machine the servers start slowly.
for _ in $(seq 300); do
    [ -S "$SOCK" ] && curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
    sleep 0.1
done
[ -S "$SOCK" ] || { echo "FAIL: fake agent did not start"; cat "$WORK/fake.out"; exit 1; }

FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
# req USER:PW METHOD PATH [BODY] -> status in $STATUS, body in $WORK/body, headers in $WORK/head
req() {
    local auth=$1 method=$2 path=$3 body=${4-}
    local args=(-s -o "$WORK/body" -D "$WORK/head" -w '%{http_code}' --max-time 20 -X "$method")
    [ -n "$auth" ] && args+=(-u "$auth")
    [ "$method" = POST ] && args+=(-H 'Content-Type: application/x-www-form-urlencoded' --data-binary "$body")
    STATUS=$(curl "${args[@]}" "$BASE$path")
}
has() { grep -qF -- "$1" "$WORK/body" || fail "$2 lacks: $1"; }
changes() { grep -cE '^(Publish|Unpublish|Event|Query|Join|Leave|ServiceControl|AppInstall|AppControl|Keys)' "$LOG"; }

# (a) every view, HTML and JSON
check_view() {
    local path=$1; shift
    req root:rootpw GET "$path"
    [ "$STATUS" = 200 ] || { fail "GET $path -> $STATUS"; return; }
    for row in "$@"; do has "$row" "GET $path"; done
}
check_view /            'alpha in gracia' 'turris-omnia' '2 alive of 3'
check_view /members     '>beta</td>' '>gamma</td>' 'suspect' '12 ms'
check_view /search      'Community wiki' 'Shell on beta' 'href="http://10.0.0.2:80/"'
check_view '/search?scope=global&type=http' 'Sants map tiles' 'class=on>http</a>'
check_view /services    'tileserver' 'error: port 8000 in use' 'alpha status page'
check_view /apps        'Static web site (busybox httpd)' 'not for this board'
check_view /events      'Send an event' 'Ask a query'
for v in / /members /search /services /apps /events; do
    req root:rootpw GET "$v?format=json"
    [ "$STATUS" = 200 ] || fail "GET $v?format=json -> $STATUS"
    grep -qi '^Content-Type: application/json' "$WORK/head" || fail "$v?format=json is not JSON"
done
req root:rootpw GET '/members?format=json'
[ "$(grep -o '"state":' "$WORK/body" | wc -l)" = 3 ] || fail "members JSON does not have 3 members"

# (b) escaping of a peer's markup and quotes
req root:rootpw GET /search
grep -q '<script>' "$WORK/body" && fail "raw <script> on the search page"
grep -q 'javascript' "$WORK/body" && fail "peer-supplied scheme on the search page"
has '&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; it&#39;s &quot;quoted&quot;' "escaped search"

# (b) CSRF: none and wrong change nothing; right one does
req root:rootpw GET /apps
TOKEN=$(grep -o 'name=csrf value="[^"]*"' "$WORK/body" | head -1 | sed 's/.*value="//; s/"$//')
[ -n "$TOKEN" ] || fail "no CSRF token on /apps"
BEFORE=$(changes)
req root:rootpw POST /install 'template=website&name='
[ "$STATUS" = 403 ] || fail "POST without token -> $STATUS"
case $TOKEN in *0) WRONG=${TOKEN%?}1 ;; *) WRONG=${TOKEN%?}0 ;; esac
req root:rootpw POST /install "template=website&name=&csrf=$WRONG"
[ "$STATUS" = 403 ] || fail "POST with wrong token -> $STATUS"
req guest:guestpw POST /install "template=website&name=&csrf=$TOKEN"
[ "$STATUS" = 403 ] || fail "POST by a user not allowed -> $STATUS"
STATUS=$(curl -s -o /dev/null -w '%{http_code}' -u root:rootpw -H 'Referer: http://evil.example/x' \
    --data-binary "template=website&name=&csrf=$TOKEN" "$BASE/install")
[ "$STATUS" = 403 ] || fail "POST with the right token from another site -> $STATUS"
[ "$(changes)" = "$BEFORE" ] || fail "a refused POST reached the agent: $(tail -3 "$LOG")"
req root:rootpw POST /install "template=website&name=&csrf=$TOKEN"
[ "$STATUS" = 303 ] || fail "POST with token -> $STATUS"
grep -qi '^Location: /cgi-bin/nuvol/apps' "$WORK/head" || fail "no redirect back to /apps"
grep -q 'AppInstall { template: "website", name: "website" }' "$LOG" || fail "install did not reach the agent"
req root:rootpw POST /app "name=website&action=start&csrf=$TOKEN"
req root:rootpw GET /apps
has 'RUNNING' "apps after start"

# (b) access: no credentials (server), unlisted user (page)
req "" GET /members
[ "$STATUS" = 401 ] || fail "no credentials -> $STATUS"
req guest:guestpw GET /members
[ "$STATUS" = 403 ] || fail "user not in allowed_user -> $STATUS"
grep -q '>beta<' "$WORK/body" && fail "403 page shows data"

# (b) oversized body
BIG=$(head -c 20000 /dev/zero | tr '\0' a)
BEFORE=$(changes)
req root:rootpw POST /event "name=x&payload=$BIG&csrf=$TOKEN"
[ "$STATUS" = 413 ] || fail "oversized body -> $STATUS"
[ "$(changes)" = "$BEFORE" ] || fail "oversized POST reached the agent"

# (b) agent down: a page that says so, not a 502
kill "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null
rm -f "$SOCK"
req root:rootpw GET /search
[ "$STATUS" = 503 ] || fail "agent down -> $STATUS"
has 'The nuvol agent is not running' "agent-down page"

if [ "$FAILS" -gt 0 ]; then
    echo "page-cgi: $FAILS check(s) failed"; sed -n '1,20p' "$WORK/uhttpd.out" 2>/dev/null
    exit 1
fi
echo "page-cgi: all checks passed (uhttpd from $PREFIX)"
exit 0
