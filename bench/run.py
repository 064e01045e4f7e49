#!/usr/bin/env python3
"""nuvol vs. Serf, side by side in one run (a benchmark, not a test).

For N = 10 and 50 agents of each on loopback it measures, per implementation:
  - RSS per agent (kB) and CPU seconds per agent per minute, at steady state;
  - bytes on the wire per node per second (nftables counters on the agents'
    ports, both directions, IP headers included);
  - time for a publish (Serf: a tag change) to reach every other node;
  - failure-detection time after `kill -9`, three agents one after another.
Then, in network namespaces with N = 20 (one nuvol and one Serf agent per
namespace, so both see the same links), it counts false failures while every
namespace drops 30 % and then 50 % of incoming packets for LOSS_SECS.

Propagation and failure times come from each agent's own event handler
(nuvol `service-up`/`member-failed`, Serf `member-update`/`member-failed`),
the same shell one-liner for both, so handler overhead cancels out.

Usage: sudo bench/run.py [--nuvol PATH] [--quick] [--out bench/RESULTS.md]
       sudo bench/run.py --sizes "" --out FILE   (only the false-failure part)
Needs: serf (Debian package `serf`), nft and ip for the wire and loss parts
(root). Results are printed and written to --out as Markdown, each metric as
a nuvol/Serf ratio.
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

NUVOL_BASE = 21000  # gossip ports of nuvol agents on loopback
SERF_BASE = 22000  # gossip ports of Serf agents
SERF_RPC = 23000  # Serf RPC ports (not counted as wire traffic)

HANDLER = 'echo "$(date +%s.%N) $SERF_EVENT $(cut -f1 | tr \'\\n\' \' \')" >> {file}'


def log(msg):
    print(msg, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def is_root():
    return os.geteuid() == 0


def have(tool):
    return shutil.which(tool) is not None


def wait(what, limit, f, step=0.2):
    t0 = time.time()
    while time.time() - t0 < limit:
        v = f()
        if v:
            return v
        time.sleep(step)
    raise TimeoutError(f"timed out after {limit}s waiting for {what}")


def cpu_s(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / CLK
    except OSError:
        return 0.0


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_KB
    except OSError:
        return 0


def read_events(path):
    """[(timestamp, event, names)] from a handler log."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) >= 2:
                    out.append((float(p[0]), p[1], p[2:]))
    except (OSError, ValueError):
        pass
    return out


class Counters:
    """nftables byte counters for the agents' ports on loopback."""

    TABLE = "nuvolbench"

    def __init__(self):
        self.ok = is_root() and have("nft")
        if not self.ok:
            return
        run(["nft", "delete", "table", "inet", self.TABLE])
        rules = f"""table inet {self.TABLE} {{
 chain out {{
  type filter hook output priority 0; policy accept;
  udp sport {NUVOL_BASE}-{NUVOL_BASE + 99} counter comment "nuvol"
  tcp sport {NUVOL_BASE}-{NUVOL_BASE + 99} counter comment "nuvol"
  tcp dport {NUVOL_BASE}-{NUVOL_BASE + 99} counter comment "nuvol"
  udp sport {SERF_BASE}-{SERF_BASE + 99} counter comment "serf"
  tcp sport {SERF_BASE}-{SERF_BASE + 99} counter comment "serf"
  tcp dport {SERF_BASE}-{SERF_BASE + 99} counter comment "serf"
 }}
}}
"""
        r = subprocess.run(["nft", "-f", "-"], input=rules, text=True, capture_output=True)
        if r.returncode != 0:
            log(f"nft counters unavailable: {r.stderr.strip()}")
            self.ok = False

    def read(self):
        if not self.ok:
            return {}
        r = run(["nft", "list", "table", "inet", self.TABLE])
        totals = {"nuvol": 0, "serf": 0}
        for line in r.stdout.splitlines():
            if "counter" in line and "bytes" in line:
                p = line.split()
                b = int(p[p.index("bytes") + 1])
                who = "nuvol" if '"nuvol"' in line else "serf"
                totals[who] += b
        return totals

    def close(self):
        if self.ok:
            run(["nft", "delete", "table", "inet", self.TABLE])


class Cluster:
    """N agents of one implementation on loopback (or in namespaces)."""

    def __init__(self, kind, n, work, nuvol, netns=None):
        self.kind, self.n, self.nuvol, self.netns = kind, n, nuvol, netns
        self.dir = os.path.join(work, f"{kind}-{n}-{int(time.time() * 1000) % 100000}")
        os.makedirs(self.dir)
        self.procs = {}

    def name(self, i):
        return f"{self.kind[0]}{i}"

    def ip(self, i):
        return self.netns.ip(i) if self.netns else "127.0.0.1"

    def port(self, i):
        if self.netns:
            return 7946 if self.kind == "nuvol" else 7947
        return (NUVOL_BASE if self.kind == "nuvol" else SERF_BASE) + i

    def events(self, i):
        return os.path.join(self.dir, f"{self.name(i)}.events")

    def control(self, i):
        return os.path.join(self.dir, f"{self.name(i)}.sock")

    def rpc(self, i):
        return f"127.0.0.1:{7373 if self.netns else SERF_RPC + i}"

    def prefix(self, i):
        return ["ip", "netns", "exec", self.netns.ns(i)] if self.netns else []

    def start_one(self, i):
        handler = HANDLER.format(file=self.events(i))
        seed = f"{self.ip(0)}:{self.port(0)}"
        if self.kind == "nuvol":
            cmd = [self.nuvol, "agent", "--name", self.name(i), "--microcloud", "bench",
                   "--bind", f"{self.ip(i)}:{self.port(i)}", "--beacon-port", "0",
                   "--state", os.path.join(self.dir, f"{self.name(i)}.state"),
                   "--control", self.control(i),
                   "--event-handler", f"service-up,member-failed={handler}"]
            if i > 0:
                cmd += ["--join", seed]
        else:
            cmd = ["serf", "agent", "-node", self.name(i), "-bind", f"{self.ip(i)}:{self.port(i)}",
                   "-rpc-addr", self.rpc(i), "-log-level", "err",
                   "-event-handler", f"member-update,member-failed={handler}"]
            if i > 0:
                cmd += ["-retry-join", seed, "-retry-interval", "1s"]
        logf = open(os.path.join(self.dir, f"{self.name(i)}.log"), "w")
        env = dict(os.environ, NUVOL_LOG="warn")
        self.procs[i] = subprocess.Popen(self.prefix(i) + cmd, stdout=logf, stderr=logf,
                                         stdin=subprocess.DEVNULL, env=env)

    def start(self):
        self.start_one(0)
        time.sleep(0.5)
        for i in range(1, self.n):
            self.start_one(i)
        for i in range(self.n):
            wait(f"{self.name(i)} up", 60, lambda i=i: self.alive(i) >= 1)

    def alive(self, i):
        if self.kind == "nuvol":
            r = run([self.nuvol, "--control", self.control(i), "members"])
            return sum(1 for l in r.stdout.splitlines()[1:] if " alive " in l)
        r = run(self.prefix(i) + ["serf", "members", "-rpc-addr", self.rpc(i), "-status", "alive"])
        return len([l for l in r.stdout.splitlines() if l.strip()])

    def converge(self, limit=120):
        for i in range(self.n):
            if i in self.procs:
                wait(f"{self.name(i)} to see {self.n} alive", limit,
                     lambda i=i: self.alive(i) == self.n, step=0.5)

    def pids(self):
        return [p.pid for p in self.procs.values() if p.poll() is None]

    def publish(self, k):
        if self.kind == "nuvol":
            r = run([self.nuvol, "--control", self.control(0), "publish", "--type", "bench",
                     "--port", str(1000 + k), "--description", f"run {k}"])
        else:
            r = run(["serf", "tags", "-rpc-addr", self.rpc(0), "-set", f"bench={k}"])
        if r.returncode != 0:
            raise RuntimeError(f"{self.kind} publish failed: {r.stderr}")

    def kill(self, i):
        p = self.procs.pop(i)
        p.kill()
        p.wait()

    def stop(self):
        for p in self.procs.values():
            p.kill()
        for p in self.procs.values():
            p.wait()
        self.procs = {}


def propagation(c, rounds=3):
    """Median over rounds of the time until the last other node heard a publish."""
    times = []
    for k in range(rounds):
        before = {i: len(read_events(c.events(i))) for i in range(1, c.n)}
        t0 = time.time()
        c.publish(k)

        def arrived():
            got = []
            for i in range(1, c.n):
                ev = [e for e in read_events(c.events(i))[before[i]:]
                      if e[1] in ("service-up", "member-update")]
                if not ev:
                    return None
                got.append(ev[0][0] - t0)
            return got

        got = wait(f"{c.kind} publish to reach all", 60, arrived, step=0.05)
        times.append(max(got))
        time.sleep(2)
    return statistics.median(times)


def detection(c, kills=3):
    """Time for the others to declare a killed node failed: `kills` nodes
    killed one after another (each once the last was declared everywhere),
    since one kill is one sample of a random probe schedule (single runs
    varied 7.9-11.8 s at N = 50). Returns the median over kills of the
    median observer, and the slowest observer of any kill."""
    medians, slowest = [], 0.0
    for k in range(kills):
        victim = c.n - 1 - k
        name = c.name(victim)
        observers = range(c.n - 1 - k)
        t0 = time.time()
        c.kill(victim)

        def detected():
            got = []
            for i in observers:
                ev = [e for e in read_events(c.events(i)) if e[1] == "member-failed" and name in e[2]]
                if not ev:
                    return None
                got.append(ev[0][0] - t0)
            return got

        got = wait(f"{c.kind} to detect {name}", 120, detected, step=0.1)
        medians.append(statistics.median(got))
        slowest = max(slowest, max(got))
        time.sleep(2)
    return statistics.median(medians), slowest


def steady(clusters, counters, window):
    """RSS, CPU s/agent/min and wire bytes/node/s over `window` seconds."""
    cpu0 = {c.kind: {p: cpu_s(p) for p in c.pids()} for c in clusters}
    wire0 = counters.read()
    time.sleep(window)
    wire1 = counters.read()
    out = {}
    for c in clusters:
        pids = c.pids()
        cpu = [cpu_s(p) - cpu0[c.kind].get(p, 0) for p in pids]
        out[c.kind] = {
            "rss_kb": statistics.mean(rss_kb(p) for p in pids),
            "cpu_s_per_min": statistics.mean(cpu) * 60 / window,
            "wire_B_per_node_s": ((wire1.get(c.kind, 0) - wire0.get(c.kind, 0)) / c.n / window)
            if counters.ok else None,
        }
    return out


class Netns:
    def __init__(self, n):
        self.n = n
        self.prefix = f"nb{os.getpid() % 10000}"
        self.made = []
        br = f"{self.prefix}br"
        self.sh("ip", "netns", "add", br)
        self.made.append(br)
        self.sh("ip", "-n", br, "link", "add", "br0", "type", "bridge")
        self.sh("ip", "-n", br, "link", "set", "br0", "up")
        for i in range(n):
            ns = self.ns(i)
            self.sh("ip", "netns", "add", ns)
            self.made.append(ns)
            self.sh("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", f"p{i}",
                    "netns", br)
            self.sh("ip", "-n", br, "link", "set", f"p{i}", "master", "br0")
            self.sh("ip", "-n", br, "link", "set", f"p{i}", "up")
            self.sh("ip", "-n", ns, "addr", "add", f"{self.ip(i)}/16", "dev", "eth0")
            self.sh("ip", "-n", ns, "link", "set", "eth0", "up")
            self.sh("ip", "-n", ns, "link", "set", "lo", "up")

    def ns(self, i):
        return f"{self.prefix}n{i}"

    def ip(self, i):
        return f"10.78.{i // 250}.{i % 250 + 1}"

    @staticmethod
    def sh(*cmd):
        r = run(list(cmd))
        if r.returncode != 0:
            raise RuntimeError(f"{cmd}: {r.stderr.strip()}")

    def loss(self, percent):
        for i in range(self.n):
            run(["ip", "netns", "exec", self.ns(i), "nft", "delete", "table", "inet", "loss"])
            if percent == 0:
                continue
            rules = f"""table inet loss {{
 chain input {{
  type filter hook input priority 0; policy accept;
  iifname "lo" accept
  numgen random mod 100 < {percent} drop
 }}
}}
"""
            r = subprocess.run(["ip", "netns", "exec", self.ns(i), "nft", "-f", "-"], input=rules,
                               text=True, capture_output=True)
            if r.returncode != 0:
                raise RuntimeError(f"nft in {self.ns(i)}: {r.stderr}")

    def close(self):
        for ns in self.made:
            run(["ip", "netns", "del", ns])


def false_failures(work, nuvol, n, percent, secs):
    net = Netns(n)
    clusters = []
    try:
        for kind in ("nuvol", "serf"):
            c = Cluster(kind, n, work, nuvol, netns=net)
            clusters.append(c)
            c.start()
        for c in clusters:
            c.converge()
        marks = {c.kind: [len(read_events(c.events(i))) for i in range(n)] for c in clusters}
        log(f"  {n} namespaces, {percent}% loss for {secs}s ...")
        net.loss(percent)
        time.sleep(secs)
        net.loss(0)
        out = {}
        for c in clusters:
            events = 0
            pairs = set()
            for i in range(n):
                for ts, ev, names in read_events(c.events(i))[marks[c.kind][i]:]:
                    if ev == "member-failed":
                        events += 1
                        for who in names:
                            pairs.add((i, who))
            out[c.kind] = {"events": events, "pairs": len(pairs)}
        return out
    finally:
        for c in clusters:
            c.stop()
        net.close()


def ratio(a, b):
    if a is None or b is None:
        return "n/a"
    if b == 0:
        return "0 / 0" if a == 0 else "∞"
    return f"{a / b:.2f}"


def fmt(v, unit=""):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.3f}{unit}" if v < 10 else f"{v:.1f}{unit}"
    return f"{v}{unit}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nuvol", default=os.path.join(ROOT, "target", "release", "nuvol"))
    ap.add_argument("--quick", action="store_true", help="shorter windows, loss phase 30 s")
    ap.add_argument("--sizes", default="10,50")
    ap.add_argument("--loss-n", type=int, default=20)
    ap.add_argument("--loss-secs", type=int, default=180)
    ap.add_argument("--no-loss", action="store_true")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    a = ap.parse_args()
    if not have("serf"):
        sys.exit("bench: needs the serf agent (apt-get install serf)")
    if not os.access(a.nuvol, os.X_OK):
        sys.exit(f"bench: no nuvol binary at {a.nuvol} (cargo build --release -p nuvol, or --nuvol PATH)")
    window = 15 if a.quick else 60
    loss_secs = 30 if a.quick else a.loss_secs
    work = tempfile.mkdtemp(prefix="nuvol-bench-")
    counters = Counters()
    results = {}
    serf_version = run(["serf", "version"]).stdout.splitlines()[0]
    nuvol_version = run([a.nuvol, "--version"]).stdout.strip()
    try:
        for n in [int(x) for x in a.sizes.split(",") if x.strip()]:
            log(f"N = {n}: starting {n} nuvol and {n} Serf agents on loopback")
            clusters = [Cluster("nuvol", n, work, a.nuvol), Cluster("serf", n, work, a.nuvol)]
            try:
                t = {}
                for c in clusters:
                    t0 = time.time()
                    c.start()
                    c.converge()
                    t[c.kind] = time.time() - t0
                log(f"  converged (nuvol {t['nuvol']:.1f}s, serf {t['serf']:.1f}s); settling 10 s")
                time.sleep(10)
                r = steady(clusters, counters, window)
                for c in clusters:
                    r[c.kind]["converge_s"] = t[c.kind]
                for c in clusters:
                    r[c.kind]["publish_s"] = propagation(c)
                for c in clusters:
                    med, mx = detection(c)
                    r[c.kind]["detect_median_s"] = med
                    r[c.kind]["detect_max_s"] = mx
                results[n] = r
                log(f"  {r}")
            finally:
                for c in clusters:
                    c.stop()
        loss = {}
        if not a.no_loss:
            if is_root() and have("ip") and have("nft"):
                for p in (30, 50):
                    loss[p] = false_failures(work, a.nuvol, a.loss_n, p, loss_secs)
                    log(f"  {p}%: {loss[p]}")
            else:
                log("loss phase skipped: needs root, ip and nft")
    finally:
        counters.close()
        shutil.rmtree(work, ignore_errors=True)

    lines = [
        "# nuvol vs. Serf",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.uname().machine}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; {nuvol_version} (release build) vs. Serf {serf_version}. "
        f"Both LAN profile, unencrypted, on loopback; steady-state window {window} s. "
        "Produced by `bench/run.py`" + (" --quick" if a.quick else "") + ".",
        "",
    ]
    if results:
        lines += ["| N | metric | nuvol | Serf | nuvol/Serf |", "|---|---|---|---|---|"]
    metrics = [
        ("converge_s", "fresh cluster: start to every node seeing all alive (s)"),
        ("rss_kb", "RSS per agent (kB)"),
        ("cpu_s_per_min", "CPU s per agent per minute"),
        ("wire_B_per_node_s", "bytes on the wire per node per second"),
        ("publish_s", "publish (Serf: tag change) reaches all nodes (s)"),
        ("detect_median_s", "failure detection, median observer, median of 3 kills (s)"),
        ("detect_max_s", "failure detection, last observer of any kill (s)"),
    ]
    for n, r in results.items():
        for key, label in metrics:
            nv, sv = r["nuvol"].get(key), r["serf"].get(key)
            lines.append(f"| {n} | {label} | {fmt(nv)} | {fmt(sv)} | {ratio(nv, sv)} |")
    if loss:
        lines += [
            "",
            f"False failures, N = {a.loss_n} network namespaces on one bridge, every namespace dropping "
            f"the given share of incoming packets (nftables `numgen random`) for {loss_secs} s; "
            "one nuvol and one Serf agent per namespace, so both see the same links. "
            "`events` counts member-failed handler runs, `pairs` distinct (observer, node) pairs.",
            "",
            "| loss | nuvol events | Serf events | nuvol pairs | Serf pairs | nuvol/Serf (events) |",
            "|---|---|---|---|---|---|",
        ]
        for p, r in loss.items():
            lines.append(
                f"| {p}% | {r['nuvol']['events']} | {r['serf']['events']} | {r['nuvol']['pairs']} | "
                f"{r['serf']['pairs']} | {ratio(r['nuvol']['events'], r['serf']['events'])} |"
            )
    text = "\n".join(lines) + "\n"
    print(text)
    with open(a.out, "w") as f:
        f.write(text)
    log(f"written to {a.out}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    main()
