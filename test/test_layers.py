#!/usr/bin/env python3
"""test_layers.py -- the layer rule holds in the tree, and the checker catches each kind of break.

Runs scripts/layers.py on the tree (must pass), then on copies of src/ and
tools/ with one break each (must fail naming it): an include that goes up a
layer, a cycle inside a layer, a function declared in a lower layer's header
but defined above, and the command including a library header."""
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
CHECK = os.path.join(ROOT, "scripts", "layers.py")


def run(root):
    p = subprocess.run([sys.executable, CHECK, "--root", root], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def broken(edit, expect):
    with tempfile.TemporaryDirectory() as d:
        for sub in ("src", "tools", "include"):
            shutil.copytree(os.path.join(ROOT, sub), os.path.join(d, sub))
        edit(d)
        rc, out = run(d)
        assert rc == 1, f"a tree with {expect} passed:\n{out}"
        assert expect in out, f"expected '{expect}' in:\n{out}"


def append(d, rel, text):
    with open(os.path.join(d, rel), "a") as f:
        f.write(text)


rc, out = run(ROOT)
assert rc == 0, "the tree breaks the layer rule:\n" + out
assert "0 violations" in out, out
# an include upward: the allocator including the profile layer
broken(lambda d: append(d, "src/alloc/page.c", '\n#include "../profile/profile.h"\n'), "a layer above")
# a cycle within a layer
broken(lambda d: (append(d, "src/base/diag.h", '\n#include "track.h"\n'),
                  append(d, "src/base/track.h", '\n#include "diag.h"\n')), "cycle")
# a declaration below, its definition above
broken(lambda d: (append(d, "src/alloc/alloc.h", "\nMT_HIDDEN void mt__upcall(void);\n"),
                  append(d, "src/profile/profile.c", "\nvoid mt__upcall(void) {}\n")), "declares mt__upcall")
# the command reaching into the library
broken(lambda d: append(d, "tools/report.c", '\n#include "../src/alloc/alloc.h"\n'), "the command may use only")
graph = subprocess.run([sys.executable, CHECK, "--root", ROOT, "--graph"], capture_output=True, text=True).stdout
assert "[alloc]" in graph and "[entry]" in graph, graph
print("layers: the tree passes; an upward include, a cycle, an upcall by declaration and a command include are caught")
