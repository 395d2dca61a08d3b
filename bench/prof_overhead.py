#!/usr/bin/env python3
"""prof_overhead.py -- what the profiler at its default rate costs over the benchmark suite.

Each benchmark runs in pairs: once with MEMTALLY_PROF=0 and once with the
profiler at its default rate, back to back (the order alternates from pair to
pair), so both runs of a pair see the same machine. A pair gives one ratio,
profiled over unprofiled, of wall time and of CPU time (user + system); each
benchmark's figure is the median of its pair ratios, and the suite's figure
the geometric mean of those medians. The spread printed beside it is a 90 %
bootstrap interval of that geometric mean (pairs resampled per benchmark).

With --instructions it counts instead of timing: each benchmark runs once
each way under valgrind's callgrind, and the ratio is of instructions
executed, exact and free of the machine's noise (callgrind runs threads one
at a time, so it sees the work added, not contention).

With --alloc jemalloc or tcmalloc the same pairs measure a peer's own
sampling profiler at the same mean interval of 512 KiB: jemalloc with
MALLOC_CONF=prof:true (its default lg_prof_sample is 19) against jemalloc
without it, and gperftools' tcmalloc with TCMALLOC_SAMPLE_PARAMETER=524288
against tcmalloc without sampling.

usage: prof_overhead.py [--build DIR] [--pairs N] [--scale X] [--only NAMES] [--env K=V ...]
                        [--alloc memtally|jemalloc|tcmalloc] [--instructions]
"""
import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the benchmark list and the launcher)


SPINNING = {"prodcons"}  # benchmarks whose instruction counts measure waiting, not work


OUT = []


def out(line=""):
    """Print a line of the report and keep it for --markdown."""
    print(line, flush=True)
    OUT.append(line)


def bootstrap(per_bench, draws=2000, seed=1):
    """90 % interval of the geometric mean of per-benchmark median ratios."""
    rng = random.Random(seed)
    means = []
    for _ in range(draws):
        meds = [statistics.median([rng.choice(r) for _ in r]) for r in per_bench]
        means.append(run.geomean(meds))
    means.sort()
    return means[int(0.05 * draws)], means[int(0.95 * draws) - 1]


def instructions(prog, args, lib, env_extra):
    """Instructions callgrind counts for one run of prog under lib."""
    env = dict(os.environ)
    env["LD_PRELOAD"] = lib
    env.update(env_extra)
    with tempfile.NamedTemporaryFile(suffix=".cg") as out:
        p = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out.name, prog] + args,
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"{prog} under callgrind: status {p.returncode}: {p.stderr[-500:]}")
        for line in open(out.name):
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError(f"{prog}: no instruction total from callgrind")


def count_main(opt, benches, lib, off, on):
    out(f"**Profiler overhead in instructions** (callgrind, scale {opt.scale}; ×: profiled / MEMTALLY_PROF=0)")
    out()
    out("| benchmark | MEMTALLY_PROF=0 | profiled | ratio |")
    out("|---|---|---|---|")
    ratios = []
    for bench in benches:
        name, prog, extra, first = bench[0], bench[1], bench[2], list(bench[3:])
        if name in SPINNING:
            out(f"| {name} | | | left out: its threads wait by spinning, so the count follows scheduling |")
            continue
        args = first + [str(opt.scale)] + extra
        path = os.path.join(opt.build, "bench", prog)
        a, b = instructions(path, args, lib, off), instructions(path, args, lib, on)
        ratios.append(b / a)
        out(f"| {name} | {a:,} | {b:,} | ×{b / a:.4f} |")
    out(f"| **geometric mean** | | | **×{run.geomean(ratios):.4f}** |")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--pairs", type=int, default=15)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--only", default="")
    ap.add_argument("--env", action="append", default=[],
                    help="K=V added to the profiled runs, e.g. MEMTALLY_PROF_RATE=65536")
    ap.add_argument("--instructions", action="store_true", help="count instructions under callgrind instead")
    ap.add_argument("--alloc", default="memtally", choices=["memtally", "jemalloc", "tcmalloc"])
    ap.add_argument("--markdown", default="", help="also append the report to this file")
    opt = ap.parse_args()
    on = dict(kv.split("=", 1) for kv in opt.env)
    if opt.alloc == "memtally":
        lib, off = os.path.join(opt.build, "libmemtally.so"), {"MEMTALLY_PROF": "0"}
    else:
        lib = run.find_lib(["libjemalloc.so.2"] if opt.alloc == "jemalloc" else ["libtcmalloc.so.4"])
        if lib is None:
            print(f"{opt.alloc} is not installed (make deps-bench)", file=sys.stderr)
            return 1
        off = {}
        on.update({"MALLOC_CONF": "prof:true"} if opt.alloc == "jemalloc" else {"TCMALLOC_SAMPLE_PARAMETER": "524288"})
    benches = [b for b in run.BENCHES if not opt.only or b[0] in opt.only.split(",")]
    rc = count_main(opt, benches, lib, off, on) if opt.instructions else time_main(opt, benches, lib, off, on)
    if rc == 0 and opt.markdown:
        with open(opt.markdown, "a") as f:
            f.write("\n".join(OUT) + "\n\n")
    return rc


def time_main(opt, benches, lib, off, on):
    runner = os.path.join(opt.build, "bench", "runone")
    wall = {b[0]: [] for b in benches}
    cpu = {b[0]: [] for b in benches}
    for i in range(opt.pairs):
        for bench in benches:
            name, prog, extra, first = bench[0], bench[1], bench[2], list(bench[3:])
            args = first + [str(opt.scale)] + extra
            res = {}
            for label, env in (("off", off), ("on", on)) if i % 2 == 0 else (("on", on), ("off", off)):
                w, _, checksum, c = run.run_one(runner, os.path.join(opt.build, "bench", prog), args, lib, env)
                res[label] = (w, c, checksum)
            if res["on"][2] != res["off"][2]:
                print(f"ERROR: {name}: checksum differs with the profiler on", file=sys.stderr)
                return 1
            wall[name].append(res["on"][0] / res["off"][0])
            cpu[name].append(res["on"][1] / res["off"][1])
        print(f"pair {i + 1}/{opt.pairs} done", file=sys.stderr)

    if opt.alloc == "memtally":
        label = "memtally, " + (" ".join(opt.env) if opt.env else "default rate") + " / MEMTALLY_PROF=0"
    else:
        label = f"{opt.alloc}, " + " ".join(f"{k}={v}" for k, v in on.items()) + f" / {opt.alloc} unprofiled"
    out(f"**Profiler overhead** ({label}; median of {opt.pairs} back-to-back pairs, "
          f"×: ratio, lower is better)")
    out()
    out("| benchmark | wall time | wall min–max | CPU time | CPU min–max |")
    out("|---|---|---|---|---|")
    for b in benches:
        w, c = wall[b[0]], cpu[b[0]]
        out(f"| {b[0]} | ×{statistics.median(w):.3f} | ×{min(w):.2f}–×{max(w):.2f} | "
              f"×{statistics.median(c):.3f} | ×{min(c):.2f}–×{max(c):.2f} |")
    for what, data in (("wall time", wall), ("CPU time", cpu)):
        per = [data[b[0]] for b in benches]
        g = run.geomean([statistics.median(r) for r in per])
        lo, hi = bootstrap(per)
        out(f"| **geometric mean, {what}** | **×{g:.3f}** | 90% interval ×{lo:.3f}–×{hi:.3f} | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
