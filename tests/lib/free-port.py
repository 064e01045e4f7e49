#!/usr/bin/env python3
"""Prints a loopback port free for UDP and TCP now, below the kernel's
ephemeral range: a port from that range, free when chosen, can become the
local end of some process's outgoing connection before the server meant to
bind it starts. With --also N, ports port+N (each N given) are free too (the
demo's agents sit 10 apart)."""
import random
import socket
import sys

LOWEST = 20000


def free(port):
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def main():
    gaps = [0]
    args = sys.argv[1:]
    while args[:1] == ["--also"] and len(args) >= 2:
        gaps.append(int(args[1]))
        args = args[2:]
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    top = low - 1 - max(gaps)
    if top - LOWEST < 100:
        top = 65535 - max(gaps)
    for _ in range(500):
        port = random.randint(LOWEST, top)
        if all(free(port + g) for g in gaps):
            print(port)
            return 0
    print("no free loopback port", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
