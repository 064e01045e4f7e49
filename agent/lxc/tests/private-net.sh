# Sourced (not run) by tests/suite/lxc-agent.sh and tests/suite/page-real.sh,
# inside their own `unshare -n -m` namespaces.
#
# private_net WORK: makes this network namespace usable for LXC and gives it
# the test bridge nvbr0 (10.213.0.1/24). LXC looks for bridges in
# /sys/class/net, which shows the namespace that mounted sysfs, so a sysfs
# mounted from this namespace (under WORK/sys) is bound over the two net
# directories of this mount namespace. Prints what failed, returns non-zero.
private_net() {
    mount --make-rprivate / || { echo "cannot make the mounts private"; return 1; }
    mkdir "$1/sys" && mount -t sysfs sysfs "$1/sys" &&
        mount --bind "$1/sys/class/net" /sys/class/net &&
        mount --bind "$1/sys/devices/virtual/net" /sys/devices/virtual/net &&
        umount -l "$1/sys" || { echo "cannot mount a sysfs of this namespace"; return 1; }
    ip link set lo up && ip link add nvbr0 type bridge && ip addr add 10.213.0.1/24 dev nvbr0 &&
        ip link set nvbr0 up || { echo "cannot create the test bridge nvbr0"; return 1; }
}
