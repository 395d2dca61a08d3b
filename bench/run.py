#!/usr/bin/env python3
"""run.py -- run the allocator benchmarks under memtally and its peers, interleaved.

Each round runs every benchmark under every allocator (the allocator order
rotates from round to round), measuring wall time and peak RSS of the
process. It prints the median of each cell with its ratio against mimalloc,
the min-max range, and a geometric mean row. A benchmark whose checksum
differs between allocators is reported as an error.

usage: run.py [--build DIR] [--rounds N] [--scale X] [--only NAMES] [--allocs NAMES] [--base NAME]
              [--with NAME=LIB] [--markdown FILE]
"""
import argparse
import glob
import math
import shutil
import os
import statistics
import subprocess
import sys
import time

LIBDIR = "/usr/lib/x86_64-linux-gnu"


def find_lib(patterns):
    for pat in patterns:
        hits = sorted(glob.glob(os.path.join(LIBDIR, pat)))
        if hits:
            return hits[0]
    return None


def allocators(build, names, extra=()):
    """Every known allocator setup as (name, preload library, environment, command prefix);
    extra: (name, library) pairs given with --with, such as another build of memtally."""
    lib = os.path.join(build, "libmemtally.so")
    scratch = os.path.join(build, "bench-profiles")
    os.makedirs(scratch, exist_ok=True)
    known = {
        "memtally": (lib, {}, []),
        "mt-lean": (lib, {"MEMTALLY_MODE": "lean"}, []),
        "mt-speed": (lib, {"MEMTALLY_MODE": "speed"}, []),
        "mt-noprof": (lib, {"MEMTALLY_PROF": "0"}, []),
        "mt-rate1": (lib, {"MEMTALLY_PROF_RATE": "1", "MEMTALLY_PROF_OUT": os.path.join(scratch, "mt")}, []),
        "glibc": (None, {}, []),
    }
    nocheck = os.path.join(build, "nocheck", "libmemtally.so")  # cmake -DMEMTALLY_HARDEN=OFF (make bench)
    if os.path.exists(nocheck):
        known["mt-nocheck"] = (nocheck, {}, [])
    for name, pats in (("mimalloc", ["libmimalloc.so.2*"]), ("jemalloc", ["libjemalloc.so.2"]),
                       ("tcmalloc", ["libtcmalloc_minimal.so.4", "libtcmalloc.so.4"])):
        found = find_lib(pats)
        if found:
            known[name] = (found, {}, [])
    if "jemalloc" in known:
        known["jemalloc-prof"] = (known["jemalloc"][0], {
            "MALLOC_CONF": "prof:true,lg_prof_sample:0,prof_final:true,prof_prefix:" + os.path.join(scratch, "je")}, [])
    heaptrack = shutil.which("heaptrack")
    if heaptrack:
        known["heaptrack"] = (None, {}, [heaptrack, "-o", os.path.join(scratch, "ht")])
    for name, path in extra:
        known[name] = (os.path.abspath(path), {}, [])
    out = []
    for n in names:
        if n in known:
            out.append((n,) + known[n])
        else:
            print(f"warning: {n} not available, left out", file=sys.stderr)
    return out


BENCHES = [
    # name, program, extra args after the scale (the first argument)
    ("cfrac", "b_cfrac", []),
    ("espresso", "b_espresso", []),
    ("larson-2t", "b_larson", ["2"]),
    ("cache-scratch", "b_cache", ["2"], "scratch"),
    ("cache-thrash", "b_cache", ["2"], "thrash"),
    ("xmalloc", "b_xmalloc", ["1"]),
    ("prodcons", "b_prodcons", []),
    ("mstress-2t", "b_mstress", ["2"]),
    ("stress-2t", "b_stress", ["2"]),
    ("rptest-2t", "b_rptest", ["2"]),
    ("alloc-test-1t", "b_alloctest", ["1"]),
    ("alloc-test-2t", "b_alloctest", ["2"]),
    ("glibc-simple", "b_tight", []),
    ("glibc-thread", "b_tight", ["2"]),
    ("malloc-large", "b_large", []),
    ("mixed", "b_mixed", []),
    ("realloc", "b_realloc", []),
    ("mleak-10", "b_mleak", ["10"]),
    ("mleak-100", "b_mleak", ["100"]),
]
# Run only when named with --only (not part of the suite's geometric means).
EXTRA_BENCHES = [
    ("thread-churn", "b_churn", []),  # 4,000 short-lived threads whose blocks outlive them
]


def run_one(runner, prog, args, lib, env_extra, prefix=()):
    """Run prog under the launcher; return (wall seconds, peak RSS bytes, checksum, CPU seconds)."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if lib:
        env["LD_PRELOAD"] = lib
    env.update(env_extra)
    rfd, wfd = os.pipe()
    env["RUNONE_FD"] = str(wfd)
    proc = subprocess.Popen([runner] + list(prefix) + [prog] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, pass_fds=(wfd,))
    os.close(wfd)
    out, err = proc.communicate()
    meas = os.read(rfd, 4096).decode().split()
    os.close(rfd)
    if proc.returncode != 0 or len(meas) < 4:
        raise RuntimeError(f"{prog} {args} under {lib}: status {proc.returncode}: {err.decode().strip()[:500]}")
    words = out.decode().split()
    checksum = words[words.index("checksum") + 1] if "checksum" in words else None
    return float(meas[1]), int(meas[3]), checksum, float(meas[5])


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--only", default="")
    ap.add_argument("--markdown", default="")
    ap.add_argument("--allocs", default="memtally,mt-noprof,mt-lean,mt-speed,glibc,mimalloc,jemalloc,tcmalloc",
                    help="columns: memtally, mt-lean, mt-speed, mt-noprof, mt-rate1, mt-nocheck (the hardening "
                         "compiled out), glibc, mimalloc, jemalloc, jemalloc-prof, tcmalloc, heaptrack")
    ap.add_argument("--base", default="mimalloc", help="the column ratios are taken against")
    ap.add_argument("--with", dest="extra", action="append", default=[], metavar="NAME=LIB",
                    help="one more column: LIB preloaded (another build of memtally, a peer built from source); "
                         "name it in --allocs too")
    opt = ap.parse_args()
    bindir = os.path.join(opt.build, "bench")
    extra = [tuple(e.split("=", 1)) for e in opt.extra if "=" in e]
    allocs = allocators(opt.build, [a for a in opt.allocs.split(",") if a], extra)
    only = opt.only.split(",") if opt.only else []
    benches = [b for b in BENCHES if not only or b[0] in only] + [b for b in EXTRA_BENCHES if b[0] in only]
    times = {(b[0], a[0]): [] for b in benches for a in allocs}
    rss = {(b[0], a[0]): [] for b in benches for a in allocs}
    sums = {}
    bad = []
    for r in range(opt.rounds):
        order = allocs[r % len(allocs):] + allocs[:r % len(allocs)]
        for bench in benches:
            name, prog, extra = bench[0], bench[1], bench[2]
            first = bench[3:]  # a mode word before the scale, for programs with modes
            for aname, lib, env, prefix in order:
                wall, peak, checksum, _ = run_one(os.path.join(bindir, "runone"), os.path.join(bindir, prog),
                                              list(first) + [str(opt.scale)] + extra, lib, env, prefix)
                times[(name, aname)].append(wall)
                rss[(name, aname)].append(peak)
                ref = sums.setdefault(name, checksum)
                if checksum != ref:
                    bad.append(f"{name}: checksum {checksum} under {aname}, {ref} under another")
        print(f"round {r + 1}/{opt.rounds} done", file=sys.stderr)

    names = [a[0] for a in allocs]
    lines = []
    head = "| benchmark | " + " | ".join(names) + " |"
    sep = "|---|" + "---|" * len(names)

    def table(title, data, fmt):
        lines.append(f"**{title}** (median of {opt.rounds}; ×: ratio to {opt.base}, lower is better)")
        lines.append("")
        lines.append(head)
        lines.append(sep)
        ratios = {a: [] for a in names}
        for name in [b[0] for b in benches]:
            base = statistics.median(data[(name, opt.base)]) if opt.base in names else None
            cells = []
            for a in names:
                med = statistics.median(data[(name, a)])
                ratio = med / base if base else float("nan")
                ratios[a].append(ratio)
                cells.append(f"{fmt(med)} ×{ratio:.2f}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("| geometric mean | " + " | ".join(f"×{geomean(ratios[a]):.2f}" for a in names) + " |")
        lines.append("")

    table("Wall time", times, lambda v: f"{v:.3f} s")
    table("Peak RSS", rss, lambda v: f"{v / 1048576:.1f} MiB")
    lines.append(f"Ranges (min–max of {opt.rounds} rounds), time in s / peak RSS in MiB:")
    lines.append("")
    lines.append(head)
    lines.append(sep)
    for name in [b[0] for b in benches]:
        cells = []
        for a in names:
            t, m = times[(name, a)], rss[(name, a)]
            cells.append(f"{min(t):.3f}–{max(t):.3f} / {min(m) / 1048576:.1f}–{max(m) / 1048576:.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    text = "\n".join(lines)
    print(text)
    if opt.markdown:
        with open(opt.markdown, "w") as f:
            f.write(text + "\n")
    for b in bad:
        print("ERROR: " + b, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
