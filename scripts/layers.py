#!/usr/bin/env python3
"""layers.py -- check that src/ includes only downward, and print the include graph by layer.

The library is a stack of layers, one folder each (docs/design.md, "Layers").
A file may include headers of its own layer and of the layers below it, plus
the public header memtally.h; never a header of a layer above it. Files of one
layer must not include each other in a cycle. The command's sources (tools/)
may include the public header and src/write/pprof_fields.h only.

usage: layers.py [--root DIR] [--graph]
  exit 0: the rule holds; 1: the violations are printed, one a line.
"""
import argparse
import os
import re
import sys

# bottom to top: (layer, the paths under src/ that belong to it)
LAYERS = [
    ("base", ["base/"]),          # macros, diagnostics without allocation, sanitizer hooks, asserts
    ("os", ["os/"]),              # the platform contract and its Linux implementation
    ("options", ["options/"]),    # MEMTALLY_* parsed once (reads the environment through os/)
    ("sample", ["sample/"]),      # the recorder: stack capture, stack table, live samples
    ("alloc", ["alloc/"]),        # size classes, pages, segments, huge blocks, heaps, counters
    ("region", ["region/"]),      # named regions on top of the allocator
    ("write", ["write/"]),        # encoders: pprof, stats text and JSON, Prometheus
    ("profile", ["profile/"]),    # symbolization, snapshots to files, when to write
    ("serve", ["serve/"]),        # the live HTTP endpoints
    ("entry", ["init.c", "init.h", "override.c", "roots.c", "bench.c"]),  # process start, fork, exit; the C/C++ surface; stack roots
]
RANK = {name: i for i, (name, _) in enumerate(LAYERS)}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
TOOLS_MAY_INCLUDE = {"memtally.h", "src/write/pprof_fields.h"}


def layer_of(rel):
    for name, prefixes in LAYERS:
        for p in prefixes:
            if rel == p or (p.endswith("/") and rel.startswith(p)):
                return name
    return None


def resolve(root, src_file, inc):
    """The included file relative to root, or None for the public header / system files."""
    if os.path.basename(inc) == "memtally.h":
        return None
    cand = os.path.normpath(os.path.join(os.path.dirname(src_file), inc))
    if os.path.exists(os.path.join(root, cand)):
        return cand
    return "?" + inc


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("--graph", action="store_true", help="print which file includes which, by layer")
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    bad = []
    edges = {}
    for d, _, files in os.walk(os.path.join(root, "src")):
        for f in sorted(files):
            if not f.endswith((".c", ".h")):
                continue
            path = os.path.relpath(os.path.join(d, f), root)
            rel = os.path.relpath(path, "src")
            me = layer_of(rel)
            if me is None:
                bad.append(f"{path}: in no layer (add its folder to scripts/layers.py and docs/design.md)")
                continue
            with open(os.path.join(root, path)) as fh:
                text = fh.read()
            edges[path] = []
            for inc in INCLUDE.findall(text):
                tgt = resolve(root, path, inc)
                if tgt is None:
                    continue
                if tgt.startswith("?"):
                    bad.append(f"{path}: includes {inc}, which is not a file of the tree")
                    continue
                edges[path].append(tgt)
                them = layer_of(os.path.relpath(tgt, "src"))
                if them is None:
                    bad.append(f"{path}: includes {tgt}, which is outside src/")
                elif RANK[them] > RANK[me]:
                    bad.append(f"{path} ({me}) includes {tgt} ({them}): a layer above")
    # cycles among files (within a layer; across layers the rank check already forbids them)
    state = {}

    def visit(n, stack):
        state[n] = 1
        for m in edges.get(n, []):
            if state.get(m) == 1:
                bad.append("cycle: " + " -> ".join(stack[stack.index(m):] + [m]) if m in stack else f"cycle at {m}")
            elif state.get(m) is None:
                visit(m, stack + [m])
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n, [n])
    # A function declared in a header is defined in a file of the header's own
    # layer: else a lower layer could call up through a declaration alone.
    declared = {}
    defined = {}
    decl_re = re.compile(r"^MT_HIDDEN\s[^;{]*?\b(mt_\w+)\s*\(", re.M)
    def_re = re.compile(r"^(?!static\b)[A-Za-z_][\w \*]*?\b(mt_\w+)\s*\([^;]*?\)\s*\{", re.M)
    for path in edges:
        with open(os.path.join(root, path)) as fh:
            text = fh.read()
        if path.endswith(".h"):
            for name in decl_re.findall(text):
                declared.setdefault(name, path)
        else:
            for name in def_re.findall(text):
                defined.setdefault(name, path)
    for name, h in sorted(declared.items()):
        c = defined.get(name)
        if c is None:
            continue
        lh, lc = layer_of(os.path.relpath(h, "src")), layer_of(os.path.relpath(c, "src"))
        if lh != lc:
            bad.append(f"{h} ({lh}) declares {name}, defined in {c} ({lc}): declare it in its own layer's header")
    # the command's sources: the public header and the shared pprof field names only
    for d, _, files in os.walk(os.path.join(root, "tools")):
        for f in sorted(files):
            if not f.endswith((".c", ".h")):
                continue
            path = os.path.relpath(os.path.join(d, f), root)
            with open(os.path.join(root, path)) as fh:
                for inc in INCLUDE.findall(fh.read()):
                    full = os.path.normpath(os.path.join(os.path.dirname(path), inc))
                    if full.startswith("src/") and full not in TOOLS_MAY_INCLUDE:
                        bad.append(f"{path}: includes {full}; the command may use only "
                                   + ", ".join(sorted(TOOLS_MAY_INCLUDE)))
    if args.graph:
        for name, _ in reversed(LAYERS):
            files = sorted(p for p in edges if layer_of(os.path.relpath(p, "src")) == name)
            if not files:
                continue
            print(f"[{name}]")
            for p in files:
                below = [os.path.relpath(t, "src") for t in edges[p]]
                print(f"  {os.path.relpath(p, 'src'):26s} -> {', '.join(below) if below else '-'}")
    for b in bad:
        print("layers: " + b, file=sys.stderr)
    if not args.graph:
        print(f"layers: {len(edges)} files in {len(LAYERS)} layers, {len(bad)} violations")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
