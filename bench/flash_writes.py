#!/usr/bin/env python3
"""Writes to the state directory (flash, /etc/nuvol on a router) per node per
hour, in a microcloud of N agents on loopback with churn (a benchmark, not a
test).

N agents (default 20) join one another; every --churn seconds one agent
(never the first) is stopped, alternately with kill -9 and SIGTERM, and
started again two seconds later. inotify counts, per agent, each state file
moved into place (the atomic write's rename) and the bytes written, for
--secs seconds after a warm-up. The result is extrapolated to one hour.

Usage: bench/flash_writes.py [--nuvol PATH] [--nodes 20] [--secs 180] [--churn 10]
"""

import argparse
import ctypes
import os
import random
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
IN_MOVED_TO = 0x080
IN_CLOSE_WRITE = 0x008


def free_ports(n):
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests/lib/free-port.py")]
        + [a for i in range(1, n) for a in ("--also", str(i))],
        capture_output=True, text=True, check=True)
    base = int(out.stdout.strip())
    return [base + i for i in range(n)]


class Watch:
    """inotify on every state directory: renames into place, bytes."""

    def __init__(self, dirs):
        self.libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.dirs = {}
        for i, d in enumerate(dirs):
            wd = self.libc.inotify_add_watch(self.fd, d.encode(), IN_MOVED_TO)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {d}")
            self.dirs[wd] = (i, d)
        self.renames = {}
        self.bytes = 0
        self.counting = False

    def poll(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return
        try:
            buf = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        off = 0
        while off + 16 <= len(buf):
            wd, mask, _cookie, length = struct.unpack_from("iIII", buf, off)
            name = buf[off + 16:off + 16 + length].rstrip(b"\0").decode()
            off += 16 + length
            if not (mask & IN_MOVED_TO) or wd not in self.dirs or not self.counting:
                continue
            node, d = self.dirs[wd]
            key = (node, name)
            self.renames[key] = self.renames.get(key, 0) + 1
            try:
                self.bytes += os.path.getsize(os.path.join(d, name))
            except OSError:
                pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nuvol", default=os.path.join(ROOT, "target/debug/nuvol"))
    ap.add_argument("--nodes", type=int, default=20)
    ap.add_argument("--secs", type=int, default=180)
    ap.add_argument("--churn", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=12)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    work = tempfile.mkdtemp(prefix="nuvol-flash-")
    ports = free_ports(a.nodes)
    dirs = [os.path.join(work, f"n{i}") for i in range(a.nodes)]
    for d in dirs:
        os.makedirs(d, mode=0o700)
    procs = [None] * a.nodes

    def start(i):
        cmd = [a.nuvol, "agent", "--name", f"n{i}", "--bind", f"127.0.0.1:{ports[i]}",
               "--state", dirs[i], "--control", os.path.join(work, f"n{i}.sock"),
               "--beacon-port", "0"]
        if i:
            cmd += ["--join", f"127.0.0.1:{ports[0]}", "--join", f"127.0.0.1:{ports[1 if i > 1 else 0]}"]
        procs[i] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    watch = Watch(dirs)
    try:
        for i in range(a.nodes):
            start(i)
        warm = time.monotonic() + 20
        while time.monotonic() < warm:
            watch.poll(0.5)
        watch.counting = True
        t0 = time.monotonic()
        end = t0 + a.secs
        next_churn = t0 + a.churn
        stopped = []  # (restart_at, index)
        kills = 0
        while time.monotonic() < end:
            watch.poll(0.2)
            now = time.monotonic()
            for at, i in list(stopped):
                if now >= at:
                    start(i)
                    stopped.remove((at, i))
            if now >= next_churn:
                next_churn += a.churn
                i = rng.randrange(1, a.nodes)
                if procs[i] and procs[i].poll() is None:
                    procs[i].send_signal(signal.SIGKILL if kills % 2 == 0 else signal.SIGTERM)
                    kills += 1
                    try:
                        procs[i].wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        procs[i].kill()
                        procs[i].wait()
                    stopped.append((now + 2, i))
        secs = time.monotonic() - t0
    finally:
        for p in procs:
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            if p:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        subprocess.run(["rm", "-rf", work])
    total = sum(watch.renames.values())
    per_file = {}
    for (_node, name), n in watch.renames.items():
        per_file[name] = per_file.get(name, 0) + n
    scale = 3600.0 / secs / a.nodes
    print(f"{a.nodes} nodes, {secs:.0f} s counted, {kills} stops (kill -9 / SIGTERM alternately) and restarts")
    print(f"state-file renames: {total} ({total * scale:.0f} per node per hour)")
    for name, n in sorted(per_file.items()):
        print(f"  {name}: {n} ({n * scale:.0f} per node per hour)")
    print(f"bytes written: {watch.bytes} ({watch.bytes * scale / 1024:.0f} KiB per node per hour)")


if __name__ == "__main__":
    main()
