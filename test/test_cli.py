#!/usr/bin/env python3
"""test_cli.py -- the memtally command: golden reports, real profiles, the flame graph, bad input.

usage: test_cli.py CASE BUILDDIR
"""
import glob
import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

CASE, BUILD = sys.argv[1], sys.argv[2]
HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(BUILD, "memtally")
work = tempfile.mkdtemp(prefix="mtcli")
from pycheck import check, failures  # noqa: E402


def tool(*args, expect=0, env=None, timeout=120):
    p = subprocess.run([TOOL] + list(args), capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, **(env or {})))
    if p.returncode != expect:
        print(p.stdout[-3000:], p.stderr[-3000:])
    check(p.returncode == expect, f"memtally {' '.join(os.path.basename(a) for a in args)}: exit {p.returncode}")
    return p


def fixture(kind):
    out = os.path.join(work, kind + ".pb.gz")
    subprocess.run([sys.executable, os.path.join(HERE, "make_profile.py"), kind, out], check=True)
    return out


def golden(name, text):
    path = os.path.join(HERE, "golden", name)
    if os.environ.get("MEMTALLY_UPDATE_GOLDEN"):
        with open(path, "w") as f:
            f.write(text)
    want = open(path).read()
    if text != want:
        print("--- want\n" + want + "--- got\n" + text)
    check(text == want, f"output matches golden/{name}")


if CASE == "report":
    base = fixture("base")
    golden("report.txt", tool("report", base).stdout)
    golden("report-alloc-line.txt", tool("report", base, "--sample", "alloc_space", "--by", "line").stdout)
    golden("report-stack.txt", tool("report", base, "--by", "stack", "--top", "3").stdout)
    golden("report.json", tool("report", base, "--sample", "alloc_objects", "--json").stdout)
elif CASE == "diff":
    base, new = fixture("base"), fixture("new")
    golden("diff.txt", tool("diff", base, new).stdout)
    golden("diff-alloc.json", tool("diff", base, new, "--sample", "alloc_space", "--json").stdout)
elif CASE == "help":
    p = tool("--help")
    check("run" in p.stdout and "report" in p.stdout and "flame" in p.stdout, "memtally --help lists the commands")
    for cmd in ("run", "report", "diff", "flame", "stats"):
        p = tool(cmd, "--help")
        check(p.stdout.startswith("usage: memtally " + cmd), f"memtally {cmd} --help")
elif CASE == "badinput":
    good = fixture("base")
    text = os.path.join(work, "text.txt")
    open(text, "w").write("this is not a profile\n" * 20)
    empty = os.path.join(work, "empty.pb.gz")
    open(empty, "w").close()
    raw = open(good, "rb").read()
    trunc = os.path.join(work, "trunc.pb.gz")
    open(trunc, "wb").write(raw[: len(raw) // 2])
    corrupt = os.path.join(work, "corrupt.pb.gz")
    data = bytearray(gzip.decompress(raw))
    for i in range(7, len(data), 13):
        data[i] ^= 0x5a
    open(corrupt, "wb").write(gzip.compress(bytes(data)))
    garbage = os.path.join(work, "garbage.pb.gz")
    open(garbage, "wb").write(gzip.compress(os.urandom(5000)))
    cases = [
        (["report", os.path.join(work, "missing.pb.gz")], "cannot open"),
        (["report", empty], "empty file"),
        (["report", trunc], "truncated"),
        (["report", corrupt], ""),
        (["report", garbage], ""),
        (["report", text], ""),
        (["report", good, "--sample", "nonsense"], "unknown sample type"),
        (["report", good, "--by", "planet"], "unknown grouping"),
        (["report", good, "--frobnicate"], "unknown option"),
        (["report", good, "--top", "zero"], "--top"),
        (["diff", good], "missing profile"),
        (["flame", good], "-o OUT.html"),
        (["frob"], "unknown command"),
        (["run"], "needs a program"),
        (["run", "--rate", "lots", "--", "true"], "--rate"),
    ]
    for args, needle in cases:
        p = tool(*args, expect=2)
        first = p.stderr.splitlines()[0] if p.stderr else ""
        check(first.startswith("memtally: ") and needle in first, f"one clear line: {first!r}")
        check("Traceback" not in p.stderr and "Segmentation" not in p.stderr, "no crash")
    # a corrupt profile that still decodes must not crash the report either
    p = subprocess.run([TOOL, "report", corrupt], capture_output=True, text=True)
    check(p.returncode in (0, 2), f"corrupt profile: exit {p.returncode}")
elif CASE == "go":
    src = os.path.join(work, "goheap.go")
    shutil.copy(os.path.join(HERE, "programs", "goheap.go"), src)
    out = os.path.join(work, "go.pb.gz")
    env = dict(os.environ, HOME=work, GOCACHE=os.path.join(work, "gocache"), GOFLAGS="-mod=mod", GO111MODULE="off",
               GOPATH=os.path.join(work, "gopath"))
    p = subprocess.run(["go", "run", src, out], capture_output=True, text=True, env=env, timeout=300)
    check(p.returncode == 0, f"go program wrote a heap profile ({p.stderr.strip()[:200]})")
    if p.returncode == 0:
        r = tool("report", out, "--sample", "inuse_space")
        rows = [l for l in r.stdout.splitlines() if re.match(r"^\s+\d+\s", l)]
        check(bool(rows) and "main.buildIndex" in rows[0], f"Go profile: top in-use site {rows[:1]}")
        r = tool("report", out, "--sample", "alloc_space", "--by", "line")
        check("goheap.go:" in r.stdout, "Go profile by line")
elif CASE == "gperftools":
    src = os.path.join(HERE, "programs", "gperf_target.c")
    exe = os.path.join(work, "gperf_target")
    subprocess.run(["gcc", "-O1", "-g", "-fno-omit-frame-pointer", src, "-o", exe], check=True)
    lib = (glob.glob("/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4") + [None])[0]
    check(lib is not None, "gperftools' tcmalloc is installed")
    if lib:
        env = dict(os.environ, LD_PRELOAD=lib, HEAPPROFILE=os.path.join(work, "hp"))
        subprocess.run([exe], env=env, capture_output=True, check=True)
        heap = sorted(glob.glob(os.path.join(work, "hp.*.heap")))
        check(bool(heap), "gperftools wrote a heap profile")
        conv = os.path.join(work, "conv.pb.gz")
        p = subprocess.run(["go", "tool", "pprof", "-proto", "-output", conv, exe, heap[-1]], capture_output=True,
                           text=True, env=dict(os.environ, HOME=work))
        check(p.returncode == 0, "go tool pprof converts it")
        r = tool("report", conv)
        rows = [l for l in r.stdout.splitlines() if re.match(r"^\s+\d+\s", l)]
        check(bool(rows) and "gperf_site" in rows[0], f"gperftools profile: top site {rows[:1]}")
elif CASE == "flame":
    base = fixture("base")
    html = os.path.join(work, "flame.html")
    tool("flame", base, "--sample", "alloc_space", "-o", html)
    page = open(html).read()
    check("http://" not in page.replace("http://www.w3.org", "") and "https://" not in page, "self-contained: no URLs")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--window-size=1200,500"]
    chrome = shutil.which("chromium")
    check(chrome is not None, "chromium is installed")
    if chrome:
        dom = subprocess.run([chrome] + flags + ["--user-data-dir=" + os.path.join(work, "c1"), "--dump-dom",
                                                 "file://" + html], capture_output=True, text=True, timeout=120).stdout
        frames = re.findall(r'class="frame', dom)
        check(len(frames) >= 10, f"rendered {len(frames)} frames")
        check('data-name="handle_request"' in dom and ">handle_request<" in dom, "the top function is drawn and named")
        shot = os.path.join(BUILD, "flame-screenshot.png")
        subprocess.run([chrome] + flags + ["--user-data-dir=" + os.path.join(work, "c2"), "--screenshot=" + shot,
                                           "file://" + html], capture_output=True, timeout=120)
        check(os.path.exists(shot) and os.path.getsize(shot) > 1000, f"screenshot {shot}")
elif CASE == "outfile":
    # flame -o never replaces what is not a regular file, and leaves no temporary behind
    base = fixture("base")
    victim = os.path.join(work, "victim")
    with open(victim, "w") as f:
        f.write("precious\n")
    link = os.path.join(work, "link.html")
    os.symlink(victim, link)
    fifo = os.path.join(work, "fifo.html")
    os.mkfifo(fifo)
    subdir = os.path.join(work, "dir.html")
    os.mkdir(subdir)
    for target in (link, fifo, subdir):
        p = tool("flame", base, "-o", target, expect=2)
        check("not a regular file" in p.stderr and p.stderr.count("\n") == 1, f"one line refuses {target}: {p.stderr}")
    check(os.path.islink(link) and open(victim).read() == "precious\n", "the link and its target are unchanged")
    check(os.path.exists(fifo) and not os.path.isfile(fifo), "the fifo is still a fifo")
    plain = os.path.join(work, "plain.html")
    with open(plain, "w") as f:
        f.write("old")
    tool("flame", base, "-o", plain)
    check(open(plain).read().startswith("<!DOCTYPE html>") or "<html" in open(plain).read(), "a regular file is replaced")
    tool("flame", base, "-o", os.path.join(work, "no-such-dir", "x.html"), expect=2)
    left = [n for n in os.listdir(work) if ".tmp." in n]
    check(not left, f"no temporary files left: {left}")
elif CASE == "hostile":
    # hostile profiles: no recursion on input depth, memory bounded, a clear answer
    deep = fixture("deep")
    html = os.path.join(work, "deep.html")
    p = tool("report", deep, expect=2)
    check(p.stderr.count("\n") == 1 and "over the limit of 65536 (--max-frames)" in p.stderr,
          f"a 1,000,000-frame sample is refused by default in one line: {p.stderr.strip()}")
    p = tool("flame", deep, "--max-frames", "2M", "-o", html, timeout=120)
    check(os.path.getsize(deep) < 100000 and os.path.exists(html), "with the limit raised it draws (no stack overflow)")
    p = tool("report", deep, "--max-frames", "2M", "--by", "stack", "--top", "1", timeout=120)
    check("recurse" in p.stdout, "and reports")
    empties = fixture("empties")
    p = tool("report", empties, timeout=120)
    # the report's own peak, measured in a process that runs nothing else
    probe = "import resource,subprocess,sys;subprocess.run(sys.argv[1:],capture_output=True);" \
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    peak_kib = int(subprocess.run([sys.executable, "-c", probe, TOOL, "report", empties], capture_output=True,
                                  text=True, timeout=120).stdout.strip() or 0)
    check(os.path.getsize(empties) < 100000, f"5,000,000 empty samples in {os.path.getsize(empties)} bytes")
    check(peak_kib < 400 * 1024, f"report's peak RSS {peak_kib >> 10} MiB (was 1.8 GB)")
    check("main" in p.stdout, "the one real sample is reported")
    p = tool("report", empties, "--max-size", "1M", expect=2)
    check(p.stderr.count("\n") == 1 and "inflates past the limit of 1048576 bytes (--max-size)" in p.stderr,
          f"a profile inflating past --max-size is refused in one line: {p.stderr.strip()}")
elif CASE == "bombs":
    # small files that decode to many records: memory stays a fixed multiple
    # of the decoded size, time stays linear (names are compared once)
    probe = "import resource,subprocess,sys,time;t=time.time();r=subprocess.run(sys.argv[1:],capture_output=True);" \
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,time.time()-t,r.returncode)"
    for kind in ("types", "records", "stacks", "lifebomb"):
        path = fixture(kind)
        with gzip.open(path) as f:
            decoded = len(f.read())
        for args in (["report"], ["report", "--by", "line"], ["report", "--by", "stack"],
                     ["report", "--by", "caller"], ["report", "--by", "size"], ["report", "--by", "thread"],
                     ["report", "--lifetimes"], ["flame", "-o", os.path.join(work, kind + ".html")]):
            out = subprocess.run([sys.executable, "-c", probe, TOOL, args[0], path] + args[1:], capture_output=True,
                                 text=True, timeout=300).stdout.split()
            peak, secs, rc = int(out[0]) << 10, float(out[1]), int(out[2])
            bound = 32 * decoded + (64 << 20)
            want = 0 if kind == "lifebomb" or "--lifetimes" not in args else 2  # refused: not a lifetimes profile
            check(rc == want and peak <= bound and secs < 60,
                  f"{kind} ({os.path.getsize(path)} B, {decoded >> 20} MiB decoded) {' '.join(args[:3])}: "
                  f"exit {rc}, peak {peak >> 20} MiB (bound {bound >> 20}), {secs:.1f} s")
    p = tool("report", fixture("stacks"), "--by", "line", "--top", "3")
    check(re.search(r"^\s+1\s+x{37}\.\.\.", p.stdout, re.M) is not None and "x" * 4000 + " s.c:" in p.stdout,
          "a site with a 4,000-byte name is reported whole under its row")
elif CASE == "large":
    big = fixture("large")
    t0 = time.time()
    r = tool("report", big, "--by", "stack", "--top", "5")
    elapsed = time.time() - t0
    rows = [l for l in r.stdout.splitlines() if re.match(r"^\s+\d+\s", l)]
    total = re.search(r"total ([\d.]+ \w+), (\d+) sites", r.stdout)
    check(len(rows) == 5 and total is not None and int(total.group(2)) > 10000,
          f"report of the large profile: {len(rows)} rows, {total.group(0) if total else 'no total'}")
    check(elapsed < 20, f"100 000 stacks, 1 000 000 samples in {elapsed:.1f} s")
    t0 = time.time()
    tool("flame", big, "-o", os.path.join(work, "big.html"))
    check(time.time() - t0 < 20, f"flame graph of it in {time.time() - t0:.1f} s")
elif CASE == "region":
    out = os.path.join(work, "profiles")
    target = os.path.join(BUILD, "test", "prof_target")
    tool("run", "--rate", "65536", "--out", out, "--", target, "region")
    prof = glob.glob(os.path.join(out, "prof.*.exit.pb.gz"))
    check(len(prof) == 1, "one exit profile")
    if prof:
        r = tool("report", prof[0], "--sample", "alloc_space", "--by", "region")
        rows = [l for l in r.stdout.splitlines() if re.match(r"^\s+\d+\s", l)]
        check(any(" parser " in l for l in rows) and any("(no region)" in l for l in rows),
              f"report --by region: {rows}")
elif CASE == "run":
    out = os.path.join(work, "profiles")
    p = tool("run", "--out", out, "--", "sh", "-c", "exit 3", expect=3)
    check("files in" in p.stdout, "run says where the profiles went")
    # dash ends sh -c with _exit: its files are written all the same, named PREFIX.PROGRAM.PID.KIND
    # with PROGRAM as it was started (argv[0])
    check(len(glob.glob(os.path.join(out, "prof.sh.*.exit.pb.gz"))) == 1, "sh (dash) wrote an exit profile")
    check(re.search(r"prof\.\S+\.\d+\.exit\.pb\.gz\s+\d+(\.\d)? (B|KiB)", p.stdout) is not None,
          "the files are listed with their sizes")
    target = os.path.join(BUILD, "test", "prof_target")
    out2 = os.path.join(work, "profiles2")
    p = tool("run", "--rate", "65536", "--out", out2, "--", target, "fork")
    exits = sorted(glob.glob(os.path.join(out2, "prof.prof_target.*.exit.pb.gz")))
    check(len(exits) == 2, "the program and its child wrote profiles")
    # the child allocates 200 MiB, the parent 128 MiB: the child is summarized, the parent counted
    child = p.stdout.split("child ")[1].split()[0] if "child " in p.stdout else "?"
    check(f"the process that allocated most: prof_target {child}" in p.stdout and "1 other process" in p.stdout,
          "run summarizes the process that allocated most and counts the other")
    check(re.search(r"^\s+1\s+child_site", p.stdout, re.M) is not None, "top 10 of its exit profile printed")
    check("memtally statistics" in p.stdout and "in use" in p.stdout, "and its statistics")
    for f in exits:
        c = subprocess.run(["go", "tool", "pprof", "-comments", f], capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, HOME=work))
        check(f"cmd: {target} fork" in c.stdout, f"the command line is a comment of {os.path.basename(f)}")
    dumps = glob.glob(os.path.join(out2, "prof.*.stats.json"))
    check(len(dumps) == 2, "each process wrote its statistics dump")
    if dumps:
        s = tool("stats", dumps[0])
        check("allocated" in s.stdout and "committed" in s.stdout, "memtally stats prints a dump")
    s = tool("stats", os.path.join(out2, [f for f in os.listdir(out2) if f.endswith(".pb.gz")][0]), expect=2)
    check(s.stderr.startswith("memtally: ") and "not a memtally statistics dump" in s.stderr, "stats rejects a profile")
    # a profile with nothing in use at its end: report and flame fall back to alloc_space and say so
    r = tool("report", exits[0])
    check("alloc_space by function" in r.stdout and "nothing sampled was in use" in r.stderr,
          "report falls back to alloc_space with a note when nothing is in use")
    html = os.path.join(work, "f.html")
    r = tool("flame", exits[0], "-o", html)
    check("nothing sampled was in use" in r.stderr and os.path.getsize(html) > 1000, "flame does too")
elif CASE == "merge":
    import json
    target = os.path.join(BUILD, "test", "prof_target")
    out = os.path.join(work, "profiles")
    tool("run", "--rate", "65536", "--out", out, "--", target, "fork")
    exits = sorted(glob.glob(os.path.join(out, "prof.prof_target.*.exit.pb.gz")))
    merged = os.path.join(work, "merged.pb.gz")

    def totals(path):
        t = {}
        for kind in ("alloc_space", "alloc_objects", "inuse_space", "inuse_objects"):
            r = tool("report", path, "--sample", kind, "--json")
            t[kind] = json.loads(r.stdout)["total"] if r.returncode == 0 else None
        return t

    if len(exits) == 2:
        tool("merge", exits[0], exits[1], "-o", merged)
        want = {k: totals(exits[0])[k] + totals(exits[1])[k] for k in totals(exits[0])}
        got = totals(merged)
        check(got == want, f"merged totals are the sums of the inputs: {got} vs {want}")
        r = tool("report", merged, "--sample", "alloc_space")
        check("child_site" in r.stdout and "site_big_freed" in r.stdout, "both processes' sites are in the merge")
        pp = subprocess.run(["go", "tool", "pprof", "-raw", merged], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, HOME=work))
        check(pp.returncode == 0 and "merged from 2 profiles" in pp.stdout, "go tool pprof reads the merge")
        # a profile merged with itself: the same samples (identical stacks are one), values doubled
        twice = os.path.join(work, "twice.pb.gz")
        tool("merge", exits[0], exits[0], "-o", twice)
        one_t, two_t = totals(exits[0]), totals(twice)
        check(all(two_t[k] == 2 * one_t[k] for k in one_t), f"merged with itself: doubled {two_t} vs {one_t}")
        n_one = len(re.findall(r"^\s+(?:\d+\s+){3,}\d+: ", subprocess.run(["go", "tool", "pprof", "-raw", exits[0]],
                    capture_output=True, text=True, env=dict(os.environ, HOME=work)).stdout, re.M))
        n_two = len(re.findall(r"^\s+(?:\d+\s+){3,}\d+: ", subprocess.run(["go", "tool", "pprof", "-raw", twice],
                    capture_output=True, text=True, env=dict(os.environ, HOME=work)).stdout, re.M))
        check(n_one > 0 and n_one == n_two, f"identical stacks merge into one sample: {n_one} and {n_two}")
    # refusals: other sample types, no -o, a link at the output
    types = fixture("types")
    p = tool("merge", exits[0], types, "-o", os.path.join(work, "x.pb.gz"), expect=2)
    check(p.stderr.startswith("memtally: ") and "sample types" in p.stderr and p.stderr.count("\n") == 1,
          f"profiles of other kinds are refused in one line: {p.stderr.strip()}")
    p = tool("merge", exits[0], expect=2)
    check("-o" in p.stderr, "merge without -o is refused")
    link = os.path.join(work, "link.pb.gz")
    victim = os.path.join(work, "victim")
    open(victim, "w").write("precious")
    os.symlink(victim, link)
    tool("merge", exits[0], "-o", link, expect=2)
    check(open(victim).read() == "precious" and os.path.islink(link), "a link at the output is neither followed nor replaced")
else:
    print("unknown case", CASE)
    sys.exit(2)

shutil.rmtree(work, ignore_errors=True)
print(f"test_cli {CASE}: {len(failures)} failed")
sys.exit(1 if failures else 0)
