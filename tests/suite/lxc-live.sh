#!/usr/bin/env bash
# Real LXC containers, through nuvol-lxc's live tests:
# - the offline `website` template installs, starts, answers HTTP through its
#   published (nftables DNAT) address, has its memory/CPU/pids limits in its
#   cgroup, stops, and uninstalls leaving nothing in the lxcpath;
# - bad templates (unknown key, missing field, wrong type, wrong arch, port in
#   use) are refused naming the field, and a failure after creation rolls back;
# - a local rootfs tarball works as a source;
# - under the real supervisor, killing the container's init restarts it, and a
#   supervisor restart (agent restart) adopts the container without restarting it.
# Every test runs in its own network + mount namespace with its own bridge,
# lxcpath and nftables table; the host's network and containers are untouched.
# Exit: 0 pass, 1 fail, 77 skipped (not root, or LXC cannot run here).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

[ "$(id -u)" = 0 ] || { echo "skipped: needs root (containers, network namespaces)"; exit 77; }
for tool in lxc-create lxc-start lxc-stop lxc-destroy lxc-info lxc-attach lxc-wait nft ip busybox; do
    command -v "$tool" >/dev/null 2>&1 || { echo "skipped: $tool is not installed (apt-get install lxc lxc-templates busybox-static nftables iproute2)"; exit 77; }
done
[ -x /usr/share/lxc/templates/lxc-busybox ] || { echo "skipped: the LXC busybox template is missing (apt-get install lxc-templates)"; exit 77; }
grep -qw memory /proc/cgroups || { echo "skipped: the kernel has no memory cgroup"; exit 77; }

cd "$ROOT" || exit 1
out=$(nice cargo test -q -p nuvol-lxc --test live --test supervised --test templates -- --nocapture 2>&1)
rc=$?
echo "$out" | grep -E "^test result|measured|skipped|panicked|FAILED" 
if [ $rc -ne 0 ]; then
    echo "$out" | tail -40
    echo "FAIL: nuvol-lxc live tests"
    exit 1
fi
# The tests pass without running when they decide they cannot (they print why).
if echo "$out" | grep -q "^skipped:"; then
    echo "skipped: $(echo "$out" | grep -m1 '^skipped:' | cut -d: -f2-)"
    exit 77
fi
echo "PASS: nuvol-lxc live tests"
exit 0
