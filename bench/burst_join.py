#!/usr/bin/env python3
"""Burst join: N agents started at once on loopback, all joining one seed.

Prints, once a second, how many agents see all N alive (and the smallest and
median member count), until all do or 90 s pass. This is the power-cut case:
every router of a community network boots at the same moment.

Usage: bench/burst_join.py [--nuvol PATH] [--n 50] [-- EXTRA AGENT FLAGS...]
Ports 26000-26000+2N on 127.0.0.1; state in a temporary directory.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nuvol", default=os.path.join(os.path.dirname(HERE), "target", "release", "nuvol"))
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("extra", nargs="*", help="more `nuvol agent` flags")
    a = ap.parse_args()
    n, work = a.n, tempfile.mkdtemp(prefix="nuvol-burst-")
    procs = []

    def start(i):
        os.makedirs(f"{work}/s{i}")
        args = [a.nuvol, "agent", "--config", "/dev/null", "--name", f"b{i}",
                "--bind", f"127.0.0.1:{26000 + i * 2}", "--state", f"{work}/s{i}",
                "--control", f"{work}/c{i}.sock", "--beacon-port", "0"] + a.extra
        if i:
            args += ["--join", "127.0.0.1:26000"]
        log = open(f"{work}/l{i}.log", "w")
        procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT))

    def alive(i):
        r = subprocess.run([a.nuvol, "--control", f"{work}/c{i}.sock", "members"],
                           capture_output=True, text=True)
        return sum(1 for line in r.stdout.splitlines()[1:] if " alive " in line)

    t0 = time.time()
    start(0)
    time.sleep(0.5)
    for i in range(1, n):
        start(i)
    try:
        for _ in range(90):
            time.sleep(1)
            seen = [alive(i) for i in range(n)]
            done = sum(1 for x in seen if x == n)
            print(f"{time.time() - t0:5.1f}s: {done}/{n} see all {n} alive, "
                  f"min {min(seen)}, median {sorted(seen)[n // 2]}", flush=True)
            if done == n:
                return 0
        return 1
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
