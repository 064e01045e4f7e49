#!/usr/bin/env python3
"""Print the module import graph of a Rust crate's src folder and any cycle.

Usage: tests/lib/imports.py [SRC_DIR]   (default agent/src)

An edge A -> B means a file of module A (A.rs or A/*.rs) names `crate::B`
in a `use` line or a path; comments are skipped, unit tests count. main.rs
declares the modules and is left out. Exits 1 if the graph has a cycle, so
a check can run it.
"""
import os
import re
import sys

src = sys.argv[1] if len(sys.argv) > 1 else "agent/src"
mods = {}
for root, _dirs, files in os.walk(src):
    for f in files:
        if not f.endswith(".rs"):
            continue
        path = os.path.join(root, f)
        rel = os.path.relpath(path, src)[:-3]
        parts = rel.split(os.sep)
        if parts[-1] == "mod":
            parts = parts[:-1]
        mod = parts[0] if parts and parts[0] != "main" else "main"
        mods.setdefault(mod, []).append(path)

edges = {m: set() for m in mods}
ref = re.compile(r"\bcrate::(\{[^}]*\}|[a-z_][a-z0-9_]*)")
for mod, paths in mods.items():
    for path in paths:
        text = open(path, encoding="utf-8").read()
        text = re.sub(r"//[^\n]*", "", text)  # comments and doc links
        for m in ref.finditer(text):
            names = m.group(1)
            if names.startswith("{"):
                names = [n.strip().split("::")[0] for n in names[1:-1].split(",")]
            else:
                names = [names]
            for n in names:
                n = n.strip()
                if n in mods and n != mod:
                    edges[mod].add(n)

for m in sorted(edges):
    if edges[m]:
        print(f"{m} -> {', '.join(sorted(edges[m]))}")

# Strongly connected components (Tarjan) show every cycle at once.
index, low, stack, on, sccs = {}, {}, [], set(), []
counter = [0]


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in edges[v]:
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            sccs.append(sorted(comp))


sys.setrecursionlimit(10000)
for v in sorted(edges):
    if v not in index:
        visit(v)
if sccs:
    for c in sccs:
        print("cycle:", " <-> ".join(c))
    sys.exit(1)
print("no cycle")
