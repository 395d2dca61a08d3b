#!/usr/bin/env python3
"""test_symbols.py -- the culprit named: symbols, inlined frames, wrappers, real programs

usage: test_symbols.py CASE BINDIR
  c         a C program built with -g -gz=zlib (compressed DWARF): sites behind an
            xmalloc-style wrapper and an inlined helper, named with file and line;
            --skip, --no-fold, --focus, --ignore, --hide, --by caller/thread/size
  cxx       C++ with templates, inlining, std::vector/std::map/operator new:
            demangled names, the standard library folded into its user
  debug     the C program stripped, its DWARF in a separate file found by build id
            (--debug-dir) and by .gnu_debuglink; OBJECT+0xOFFSET without either;
            memtally symbolize writes a profile go tool pprof reads with the names
  real      Debian's sqlite3, redis-server and python3: no wrapper and no bare
            address among the top sites
Profiles at MEMTALLY_PROF_RATE=1 (every allocation), so sizes are exact."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

CASE, BINDIR = sys.argv[1], sys.argv[2]
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "programs", "symbols")
TOOL = os.path.join(BINDIR, "memtally")
LIB = os.path.join(BINDIR, "libmemtally.so")
work = tempfile.mkdtemp(prefix="mtsym")
from pycheck import check, failures  # noqa: E402


def sh(*cmd, **kw):
    return subprocess.run(list(cmd), check=True, capture_output=True, text=True, **kw)


def profile(cmd, name, rate="1", env=None):
    out = os.path.join(work, name)
    e = dict(os.environ, LD_PRELOAD=LIB, MEMTALLY_PROF_OUT=out, MEMTALLY_PROF_RATE=rate)
    e.update(env or {})
    subprocess.run(cmd, check=True, capture_output=True, env=e, timeout=300)
    files = glob.glob(out + ".*.exit.pb.gz")
    return max(files, key=os.path.getsize)


def report(f, *args):
    r = subprocess.run([TOOL, "report", f, "--sample", "alloc_space", *args], capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stderr)
    return r


def sites(f, *args, top=10):
    r = report(f, "--json", "--top", str(top), *args)
    return [(row["site"], row["value"]) for row in json.loads(r.stdout)["rows"]] if r.returncode == 0 else []


def build_c(out, extra=()):
    sh("gcc", "-O2", "-g", "-gz=zlib", "-o", out, os.path.join(SRC, "wrapped.c"), *extra)
    return out


def line_of(text, src="wrapped.c"):
    """The line number of the first line of src containing text."""
    with open(os.path.join(SRC, src)) as fh:
        for i, l in enumerate(fh, 1):
            if text in l:
                return i
    raise ValueError(text)


L_BUF, L_NODE = line_of("char *p = xmalloc(4096);"), line_of("struct node *n = xmalloc(sizeof *n);")
L_CALL, L_MAIN = line_of("head = make_node(head, i);"), line_of("struct node *l = build_list(20000);")
try:
    if CASE == "c":
        exe = build_c(os.path.join(work, "wrapped"))
        sec = sh("readelf", "-SW", exe).stdout
        check(re.search(r"\.debug_info\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+\S*C", sec) is not None,
              "the program's .debug_info is compressed (SHF_COMPRESSED)")
        f = profile([exe], "c")
        top = sites(f)
        names = [s for s, _ in top]
        check(names[:3] == ["load_buffers", "fill_table", "make_node"] or names[:3] == ["load_buffers", "checked_alloc", "make_node"],
              f"sites past the wrapper: {names[:4]}")
        val = dict(top)
        check(val.get("load_buffers") == 2000 * 4096, f"load_buffers: exactly 2000 x 4 KiB ({val.get('load_buffers')})")
        check(val.get("make_node") == 20000 * 48, "make_node, inlined into build_list, is a site of its own: 20000 x 48 B")
        check("checked_alloc" in names, "a wrapper of the program's own is a site until --skip names it")
        skip = [s for s, _ in sites(f, "--skip", "^checked_alloc$")]
        check("fill_table" in skip and "checked_alloc" not in skip, f"--skip checked_alloc charges its caller: {skip[:4]}")
        lines = [s for s, _ in sites(f, "--by", "line")]
        check(f"load_buffers wrapped.c:{L_BUF}" in lines and f"make_node wrapped.c:{L_NODE}" in lines,
              f"file and line from compressed DWARF: {lines[:4]}")
        stack = json.loads(report(f, "--by", "stack", "--json").stdout)["rows"]
        mk = [r for r in stack if r["site"].startswith("make_node")][0]
        frames = [(x["function"], x.get("line")) for x in mk["stack"][:3]]
        check(frames[:3] == [("make_node", L_NODE), ("build_list", L_CALL), ("main", L_MAIN)],
              f"--by stack --json: the inlined frame, then its caller at the call's line: {frames}")
        txt = report(f).stdout
        check("charged to their callers" in txt, "the report says it folded wrapper frames")
        nf = [s for s, _ in sites(f, "--no-fold")]
        check(nf[0] == "xmalloc", f"--no-fold shows the wrapper: {nf[:3]}")
        nft = report(f, "--no-fold", "--sample", "alloc_objects").stdout
        check("xmalloc" in nft and "arena" not in nft.split("xmalloc", 1)[1].split("\n  ")[0],
              "no arena advice for a wrapper")
        callers = [s for s, _ in sites(f, "--by", "caller")]
        check(callers[0] == "main" and "build_list" in callers, f"--by caller: {callers[:3]}")
        foc = [s for s, _ in sites(f, "--focus", "build_list")]
        check(foc == ["make_node"], f"--focus build_list: {foc}")
        ign = [s for s, _ in sites(f, "--ignore", "build_list|fill_table|checked_alloc")]
        check("make_node" not in ign and "load_buffers" in ign, f"--ignore: {ign}")
        hid = [s for s, _ in sites(f, "--hide", "^make_node$")]
        check("build_list" in hid and "make_node" not in hid, f"--hide make_node: its caller is the site: {hid[:3]}")
        sizes = dict(sites(f, "--by", "size"))
        check(sizes.get("4.0 KiB - 8.0 KiB", 0) >= 2000 * 4096 and sizes.get("32 B - 64 B", 0) >= 20000 * 48
              and sizes.get("512 B - 1.0 KiB") == 3000 * 1000,
              f"--by size: {sorted(sizes)[:5]}")
        th = sites(f, "--by", "thread")
        check(len(th) == 1 and th[0][0].startswith("thread "), f"--by thread: {th}")
        rj = json.loads(report(f, "--sample", "alloc_objects", "--json").stdout)["rows"]
        lb = [r for r in rj if r["site"] == "load_buffers"][0]
        check(lb["avg_size"] == 4096.0, f"alloc_objects JSON avg_size is the block size: {lb['avg_size']}")
        reg = report(f, "--by", "region").stdout
        check("->" not in reg, "no site advice in the region view")
        # loaded by a relative path, memtally still leaves its own frames out
        rel = os.path.relpath(LIB, work)
        out = os.path.join(work, "rel")
        subprocess.run([exe], check=True, capture_output=True, cwd=work,
                       env=dict(os.environ, LD_PRELOAD=rel, MEMTALLY_PROF_OUT=out, MEMTALLY_PROF_RATE="1"))
        fr = glob.glob(out + ".*.exit.pb.gz")
        st = json.loads(report(fr[0], "--by", "stack", "--json", "--no-fold").stdout)["rows"] if fr else []
        check(st and not any("memtally" in x["function"] or x["function"].startswith("mt_") for r in st
                             for x in r["stack"]), f"LD_PRELOAD={rel}: no frame of memtally's own in any stack")
        fl = os.path.join(work, "c.html")
        r = subprocess.run([TOOL, "flame", f, "--sample", "alloc_space", "-o", fl], capture_output=True, text=True)
        html = open(fl).read() if r.returncode == 0 else ""
        check('"make_node"' in html and '"build_list"' in html, "the flame graph has the inlined frame and its caller")

    elif CASE == "cxx":
        exe = os.path.join(work, "widgets")
        sh("g++", "-O2", "-g", "-o", exe, os.path.join(SRC, "widgets.cc"))
        f = profile([exe], "cxx")
        names = [s for s, _ in sites(f)]
        check(sorted(names[:3]) == ["Pool<Widget>::make()", "app::index_values(int)", "app::load_widgets(int)"],
              f"demangled user functions, std:: and operator new folded: {names[:4]}")
        check(not any(s.startswith("_Z") or "std::" in s.split("(")[0] for s in names[:3]), "no mangled or std:: site")
        nf = [s for s, _ in sites(f, "--no-fold")]
        check(any("operator new" in s or "std::" in s for s in nf[:3]), f"--no-fold: the standard library: {nf[:2]}")
        st = json.loads(report(f, "--by", "stack", "--json", "--no-fold").stdout)["rows"]
        fr = [x["function"] for x in st[0]["stack"]]
        check(any("std::vector<Widget" in x and "emplace_back" in x for x in fr) and "app::load_widgets(int)" in fr,
              f"inlined std::vector frames between allocate and load_widgets: {[x[:40] for x in fr[:5]]}")
        diff = subprocess.run([TOOL, "diff", f, f, "--sample", "alloc_space"], capture_output=True, text=True).stdout
        check("app::load_widgets(int)" in diff, "diff shows demangled names")

    elif CASE == "debug":
        exe = build_c(os.path.join(work, "wrapped"), ["-Wl,--build-id=sha1"])
        note = sh("readelf", "-n", exe).stdout
        bid = re.search(r"Build ID: ([0-9a-f]+)", note).group(1)
        # 1. by build id under a debug root
        dbg_root = os.path.join(work, "debug")
        os.makedirs(os.path.join(dbg_root, ".build-id", bid[:2]))
        sh("objcopy", "--only-keep-debug", exe, os.path.join(dbg_root, ".build-id", bid[:2], bid[2:] + ".debug"))
        stripped = os.path.join(work, "stripped")
        sh("strip", "--strip-all", "-o", stripped, exe)
        f = profile([stripped], "stripped")
        bare = [s for s, _ in sites(f, "--no-symbolize", "--no-fold")]
        check(all(re.match(r"^(stripped\+0x[0-9a-f]+|\S+)$", s) for s in bare) and any(s.startswith("stripped+0x") for s in bare),
              f"without debug files: OBJECT+0xOFFSET: {bare[:3]}")
        off = [s for s in bare if s.startswith("stripped+0x")][0]
        a2l = sh("addr2line", "-f", "-e", exe, off.split("+")[1]).stdout.split()[0]
        check(a2l in ("xmalloc", "load_buffers", "make_node", "build_list", "fill_table", "checked_alloc"),
              f"the offset is the one addr2line takes: {off} -> {a2l}")
        named = [s for s, _ in sites(f, "--debug-dir", dbg_root)]
        check(named[:3] == ["load_buffers", "checked_alloc", "make_node"], f"--debug-dir, by build id: {named[:3]}")
        lines = [s for s, _ in sites(f, "--debug-dir", dbg_root, "--by", "line")]
        check(f"load_buffers wrapped.c:{L_BUF}" in lines, f"lines from the separate debug file: {lines[:2]}")
        # 2. by .gnu_debuglink beside the binary
        linked = os.path.join(work, "linked")
        shutil.copy(stripped, linked)
        sh("objcopy", "--only-keep-debug", exe, os.path.join(work, "linked.dbg"))
        sh("objcopy", "--remove-section=.note.gnu.build-id", "--add-gnu-debuglink=" + os.path.join(work, "linked.dbg"), linked)
        f2 = profile([linked], "linked")
        named2 = [s for s, _ in sites(f2)]
        check(named2[:3] == ["load_buffers", "checked_alloc", "make_node"], f"by .gnu_debuglink: {named2[:3]}")
        # 3. a rebuilt binary (other build id) is not trusted for old addresses
        shutil.copy(stripped, stripped + ".old")
        sh("gcc", "-O0", "-g", "-o", stripped, os.path.join(SRC, "wrapped.c"), "-Wl,--build-id=sha1")
        changed = [s for s, _ in sites(f, "--no-fold")]
        check(any(s.startswith("stripped+0x") for s in changed), f"another build id: not named from the new binary: {changed[:2]}")
        shutil.copy(stripped + ".old", stripped)
        # 4. memtally symbolize, read by go tool pprof
        out = os.path.join(work, "sym.pb.gz")
        r = subprocess.run([TOOL, "symbolize", f, "-o", out, "--debug-dir", dbg_root], capture_output=True, text=True)
        check(r.returncode == 0 and "locations named" in r.stdout, f"symbolize: {r.stdout.strip()} {r.stderr.strip()}")
        top = subprocess.run(["go", "tool", "pprof", "-top", "-sample_index=alloc_space", out], capture_output=True,
                             text=True, timeout=120).stdout
        check("load_buffers" in top and "make_node" in top and "build_list" in top,
              "go tool pprof reads the symbolized profile with names and inlined frames")
        raw = subprocess.run(["go", "tool", "pprof", "-raw", out], capture_output=True, text=True, timeout=120).stdout
        check(bid in raw, "the symbolized profile keeps the mappings and build ids")
        again = [s for s, _ in sites(out, "--no-symbolize")]
        check(again[:3] == ["load_buffers", "checked_alloc", "make_node"], f"names kept in the written profile: {again[:3]}")

    elif CASE == "real":
        bad = re.compile(r"^(0x|\S+\+0x)")
        sql = os.path.join(work, "w.sql")
        with open(sql, "w") as fsql:
            fsql.write("CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT);\nBEGIN;\n"
                       "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<50000) "
                       "INSERT INTO t SELECT i, printf('row %d %s', i, hex(randomblob(16))) FROM n;\nCOMMIT;\n"
                       "CREATE INDEX tb ON t(b);\nSELECT count(*) FROM t WHERE b LIKE 'row 1%';\n")
        f = profile(["sh", "-c", f"sqlite3 :memory: < {sql} > /dev/null"], "sqlite", rate="4096")
        names = [s for s, _ in sites(f, top=5)]
        print("   sqlite3:", names)
        check(names and names[0] == "sqlite3BtreeInsert", "sqlite3: the B-tree insert is the top site, not sqlite's malloc wrapper")
        check(not any(bad.match(s) or re.match(r"sqlite3(Malloc|Realloc|MemMalloc)", s) for s in names),
              "sqlite3: no wrapper, no bare address in the top 5")
        big = os.path.join(work, "big.json")
        with open(big, "w") as fj:
            json.dump([{"id": i, "name": "item%d" % i, "tags": ["a", str(i)]} for i in range(20000)], fj)
        f = profile(["python3", "-m", "json.tool", big, os.path.join(work, "out.json")], "python", rate="4096")
        names = [s for s, _ in sites(f, top=5)]
        print("   python3:", names)
        check(not any(re.match(r"_?Py(Mem|Object)_\w*(Malloc|Realloc|Calloc)$", s) for s in names),
              "python3: no PyMem/PyObject allocator in the top 5")
        if shutil.which("redis-server") and shutil.which("redis-benchmark"):
            cmd = ("port=$((21000 + $$ % 20000)); redis-server --port $port --save '' >/dev/null & pid=$!; "
                   "for i in $(seq 50); do redis-cli -p $port ping >/dev/null 2>&1 && break; sleep 0.1; done; "
                   "redis-benchmark -p $port -q -n 5000 -t set,get,lpush >/dev/null; "
                   "redis-cli -p $port shutdown nosave >/dev/null 2>&1; wait $pid")
            out = os.path.join(work, "redis")
            e = dict(os.environ, MEMTALLY_PROF_OUT=out, MEMTALLY_PROF_RATE="4096")
            subprocess.run(["sh", "-c", "LD_PRELOAD=" + LIB + " exec redis-server --version >/dev/null"], env=e)
            subprocess.run(["sh", "-c", cmd.replace("redis-server", "LD_PRELOAD=" + LIB + " redis-server", 1)], env=e,
                           timeout=120, capture_output=True)
            files = [x for x in glob.glob(out + ".redis-server.*.exit.pb.gz")]
            f = max(files, key=os.path.getsize) if files else None
            names = [s for s, _ in sites(f, top=10)] if f else []
            print("   redis-server:", names)
            check(names and not any(s.startswith("z") and ("malloc" in s or "realloc" in s or "calloc" in s) for s in names),
                  "redis-server: no zmalloc family in the top 10")
            check(names and not any(bad.match(s) for s in names), "redis-server: no bare address in the top 10")
    else:
        check(False, "unknown case " + CASE)
finally:
    if not failures and not os.environ.get("MEMTALLY_KEEP"):
        shutil.rmtree(work, ignore_errors=True)

print(f"test_symbols {CASE}: {len(failures)} failed")
sys.exit(1 if failures else 0)
