#!/usr/bin/env python3
"""insight.py -- how many of the top 10 alloc_space sites name the culprit

usage: python3 bench/insight.py [--heaptrack] [--programs python,sqlite,redis,cc1,git] [--keep DIR]
Runs each real program (the process that allocates, directly: python3
-m json.tool, sqlite3, redis-server under redis-benchmark, gcc's cc1, git
pack-objects) under `memtally run --rate 4096`, and counts, among the top 10
sites of `memtally report --sample alloc_space`, those that name a function:
not a bare address (0x..., OBJECT+0x...) and not an allocation wrapper. With
--heaptrack, runs the same command under heaptrack and counts the same way
in heaptrack_print's "MOST CALLS TO ALLOCATION FUNCTIONS" (heaptrack has no
table by bytes allocated; its top callers are the nearest view).
Prints a table and each program's top 10."""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))
MEMTALLY = os.path.join(BUILD, "memtally")
REPORT_TOOL = MEMTALLY  # --report-tool: another build's command reads the same profiles (before/after)

# Wrappers as a user reads them: a site named so does not name the culprit.
WRAPPER = re.compile(r"^(x(malloc|calloc|realloc|strdup|memdup|strndup)|g_(malloc|malloc0|realloc|new)\w*|"
                     r"zmalloc\w*|zcalloc\w*|zrealloc\w*|ztrymalloc\w*|ztrycalloc\w*|zstrdup|"
                     r"sqlite3(Malloc|MallocZero|DbMalloc\w*|DbRealloc\w*|Realloc|MemMalloc|MemRealloc|_malloc64?|_realloc64?)|"
                     r"PyMem_\w*|PyObject_(Malloc|Calloc|Realloc)|_PyObject_(Malloc|Calloc|Realloc)\w*|"
                     r"operator new.*|_Zn[wa]m\w*|std::allocator.*|__gnu_cxx::new_allocator.*|"
                     r"__libc_(malloc|calloc|realloc|memalign)|malloc|calloc|realloc|strdup|strndup|__strdup|"
                     r"CRYPTO_\w*(alloc|dup)\w*|OPENSSL_\w*alloc\w*|std::.*|.* std::.*|__GI___strn?dup|"
                     r"mt_\w+|memtally\w*)$")


def bare(site):
    return site.startswith("0x") or "+0x" in site or site.startswith("<unresolved") or site == "(no stack)"


def named(site):
    return not bare(site) and not WRAPPER.match(site.split("(")[0].strip() if not site.startswith("operator") else site)


def workloads(tmp):
    big = os.path.join(tmp, "big.json")
    if not os.path.exists(big):
        with open(big, "w") as f:
            json.dump([{"id": i, "name": "item%d" % i, "tags": ["a", "b", str(i % 97)], "v": i * 0.5}
                       for i in range(200000)], f)
    sql = os.path.join(tmp, "w.sql")
    with open(sql, "w") as f:
        f.write("CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c REAL);\nBEGIN;\n"
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<200000) "
                "INSERT INTO t SELECT i, printf('row %d %s', i, hex(randomblob(16))), i*0.5 FROM n;\nCOMMIT;\n"
                "CREATE INDEX tb ON t(b);\nSELECT count(*), sum(c) FROM t WHERE b LIKE 'row 1%';\n"
                "SELECT b FROM t ORDER BY c DESC LIMIT 3;\n")
    src = os.path.join(tmp, "big.c")
    with open(src, "w") as f:
        for i in range(3000):
            f.write(f"static int f{i}(int x) {{ int s = 0; for (int k = 0; k < x; k++) s += k * {i} ^ (s >> 3); "
                    f"return s + {i}; }}\n")
        f.write("int main(int c, char **v) { int s = 0;\n")
        for i in range(3000):
            f.write(f"  s += f{i}(c);\n")
        f.write("  return s; }\n")
    repo = os.path.join(tmp, "repo")
    if not os.path.exists(repo):
        subprocess.run(["git", "clone", "-q", "--no-local", ROOT, repo], check=True)
    cc1 = subprocess.run(["gcc", "-print-prog-name=cc1"], capture_output=True, text=True).stdout.strip()
    redis = ("port=$((20000 + $$ % 20000)); {pre} redis-server --port $port --save '' --daemonize no "
             ">/dev/null & pid=$!; for i in $(seq 50); do redis-cli -p $port ping >/dev/null 2>&1 && break; "
             "sleep 0.1; done; redis-benchmark -p $port -q -n 20000 -t set,get,lpush,lpop,sadd,hset >/dev/null; "
             "redis-cli -p $port shutdown nosave >/dev/null 2>&1; wait $pid")
    # (argv, stdin): the process that allocates, run directly (heaptrack follows one process)
    return {
        "python": (["python3", "-m", "json.tool", big, os.path.join(tmp, "out.json")], None),
        # Debian's own interpreter, stripped (python3 on PATH may be another build)
        "python-debian": (["/usr/bin/python3.11", "-m", "json.tool", big, os.path.join(tmp, "out.json")], None),
        "sqlite": (["sqlite3", ":memory:"], sql),
        "redis": (["sh", "-c", redis], None),
        "cc1": ([cc1, "-quiet", "-O2", src, "-o", os.path.join(tmp, "big.s")], None),
        "git": (["git", "-C", repo, "pack-objects", "--all", "--revs", "--stdout", "-q", "--no-reuse-delta",
                 "--no-reuse-object", "--window=50", "--depth=50"], None),
    }


def memtally_top(cmd, out, stdin=None, rate=None, reuse=False):
    if not reuse:
        shutil.rmtree(out, ignore_errors=True)
        with open(stdin or os.devnull) as fin:
            subprocess.run([MEMTALLY, "run", "--out", out] + (["--rate", rate] if rate else []) + ["--", *cmd],
                           stdin=fin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900)
    best, best_total = None, -1
    for f in glob.glob(os.path.join(out, "*.exit.pb.gz")):
        r = subprocess.run([REPORT_TOOL, "report", f, "--sample", "alloc_space", "--top", "10", "--json"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            continue
        j = json.loads(r.stdout)
        if j["total"] > best_total:
            best, best_total = j, j["total"]
    return [row["site"] for row in best["rows"]] if best else []


def heaptrack_print_dir(out):
    files = glob.glob(os.path.join(out, "ht*"))
    if not files:
        return []
    r = subprocess.run(["heaptrack_print", "-f", files[0], "-a", "1", "-p", "0", "-T", "0", "-n", "10", "-s", "0"],
                       capture_output=True, text=True)
    sites, take = [], False
    for line in r.stdout.splitlines():
        if take:
            sites.append(line.strip())
            take = False
        elif re.match(r"^\d+ calls to allocation functions with", line):
            take = True
    return sites[:10]


def heaptrack_top(cmd, out, stdin=None):
    os.makedirs(out, exist_ok=True)
    for f in glob.glob(os.path.join(out, "ht*")):
        os.remove(f)
    with open(stdin or os.devnull) as fin:
        subprocess.run(["heaptrack", "-o", os.path.join(out, "ht"), *cmd], stdin=fin, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=1800)
    return heaptrack_print_dir(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--heaptrack", action="store_true")
    ap.add_argument("--programs", default="python,python-debian,sqlite,redis,cc1,git")
    ap.add_argument("--keep")
    ap.add_argument("--report-tool", help="the memtally command that reads the profiles (default: this build's)")
    ap.add_argument("--reuse", action="store_true", help="read the profiles of an earlier run in --keep again")
    ap.add_argument("--rate", default="4096", help="memtally's sampling rate (4096: most sites of heaptrack's full trace)")
    a = ap.parse_args()
    global REPORT_TOOL
    REPORT_TOOL = a.report_tool or MEMTALLY
    tmp = a.keep or tempfile.mkdtemp(prefix="mtinsight")
    os.makedirs(tmp, exist_ok=True)
    w = workloads(tmp)
    rows = []
    for name in a.programs.split(","):
        cmd, stdin = w[name]
        sites = memtally_top([c.replace("{pre} ", "") for c in cmd], os.path.join(tmp, "p-" + name), stdin, a.rate,
                             a.reuse)
        ht = []
        if a.heaptrack and a.reuse:
            ht = heaptrack_print_dir(os.path.join(tmp, "h-" + name))
        elif a.heaptrack:
            hcmd = cmd
            if name == "redis":  # heaptrack the server itself, not the shell
                hcmd = ["sh", "-c", cmd[2].replace("{pre}", "heaptrack -o " + os.path.join(tmp, "h-redis", "ht"))]
                os.makedirs(os.path.join(tmp, "h-redis"), exist_ok=True)
                for f in glob.glob(os.path.join(tmp, "h-redis", "ht*")):
                    os.remove(f)
                subprocess.run(hcmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=1800)
                ht = heaptrack_print_dir(os.path.join(tmp, "h-redis"))
            else:
                ht = heaptrack_top(hcmd, os.path.join(tmp, "h-" + name), stdin)
        rows.append((name, sum(map(named, sites)), len(sites), sum(map(named, ht)), len(ht)))
        print(f"== {name}: memtally {rows[-1][1]}/{len(sites)}" + (f", heaptrack {rows[-1][3]}/{len(ht)}" if a.heaptrack else ""))
        for i, s in enumerate(sites):
            print(f"   {i+1:2} {'named  ' if named(s) else 'WRAPPER' if not bare(s) else 'ADDRESS'} {s}")
        for i, s in enumerate(ht):
            print(f"   ht{i+1:2} {'named  ' if named(s) else 'WRAPPER' if not bare(s) else 'ADDRESS'} {s}")
    print("\n| program | memtally named/10 |" + (" heaptrack named/10 |" if a.heaptrack else ""))
    print("|---|---|" + ("---|" if a.heaptrack else ""))
    for name, m, mn, h, hn in rows:
        print(f"| {name} | {m}/{mn} |" + (f" {h}/{hn} |" if a.heaptrack else ""))


main()
