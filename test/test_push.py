#!/usr/bin/env python3
"""test_push.py -- memtally push against a local Pyroscope/Parca ingest server

usage: test_push.py BINDIR
Profiles of test/programs/prof_target are pushed to push/ingest_server.py,
which implements both ingest APIs as documented; every upload is decoded by
the npm package pprof-format (push/decode_pprof.js), an implementation
independent of memtally's, and its sample types, totals, labels, tenant and
time range checked. Then the server fails (500s, a hang past the timeout, a
refused connection, a 400) and push must retry with backoff, give up with
status 1 when told to, and leave every file on disk untouched; --watch must
deliver each window profile of a live process exactly once, across failures."""
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BINDIR = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
MEMTALLY = os.path.join(BINDIR, "memtally")
TARGET = os.path.join(BINDIR, "test", "prof_target")
NPM_DIR = os.path.join(BINDIR, "npm-pprof-format")
MODULES = os.path.join(NPM_DIR, "node_modules")
work = tempfile.mkdtemp(prefix="mtpush")
from pycheck import check, failures  # noqa: E402
started = []
TYPES = ["alloc_objects", "alloc_space", "inuse_objects", "inuse_space", "alloc_held_space", "inuse_held_space"]


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def decode(*files):
    out = subprocess.run(["node", os.path.join(HERE, "push", "decode_pprof.js"), MODULES, *files],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        check(False, "pprof-format decodes: " + out.stderr.strip()[-300:])
        return []
    return [json.loads(l) for l in out.stdout.splitlines()]


def push(*args, timeout=120):
    t0 = time.time()
    r = subprocess.run([MEMTALLY, "push", *args], capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr, time.time() - t0


# ---- the independent decoder ----
if not os.path.isdir(os.path.join(MODULES, "pprof-format")):
    os.makedirs(NPM_DIR, exist_ok=True)
    r = subprocess.run(["npm", "install", "--prefix", NPM_DIR, "--no-audit", "--no-fund", "--silent",
                        "pprof-format@2"], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        print("FAIL npm install pprof-format: " + r.stderr.strip()[-300:])
        sys.exit(1)

# ---- the server ----
uploads = os.path.join(work, "uploads")
os.makedirs(uploads)
server = subprocess.Popen([sys.executable, os.path.join(HERE, "push", "ingest_server.py"), uploads],
                          stdout=subprocess.PIPE, text=True)
started.append(server)
port = int(server.stdout.readline().split()[1])
BASE = f"http://127.0.0.1:{port}"


def control(query):
    urllib.request.urlopen(urllib.request.Request(f"{BASE}/control?{query}", data=b"", method="POST"), timeout=10).read()


def attempts():
    with urllib.request.urlopen(f"{BASE}/state", timeout=10) as r:
        return json.loads(r.read())["attempts"]


def received():
    """The uploads so far, oldest first: (meta, path)."""
    n = sorted(int(f[:-5]) for f in os.listdir(uploads) if f.endswith(".json"))
    out = []
    for i in n:
        with open(os.path.join(uploads, f"{i}.json")) as f:
            out.append((json.load(f), os.path.join(uploads, f"{i}.pb.gz")))
    return out


try:
    # ---- a profile with known totals: prof_target accuracy at 1/20 scale ----
    pdir = os.path.join(work, "p")
    os.makedirs(pdir)
    env = dict(os.environ, MEMTALLY_PROF_OUT=os.path.join(pdir, "prof"))
    env.pop("LD_PRELOAD", None)
    subprocess.run([TARGET, "accuracy", "0.05"], env=env, check=True, capture_output=True, timeout=120)
    exitp = [os.path.join(pdir, f) for f in os.listdir(pdir) if f.endswith(".exit.pb.gz")]
    check(len(exitp) == 1, "the target wrote its exit profile")
    exitp = exitp[0]
    before = sha(exitp)
    ondisk = decode(exitp)[0]
    check([t for t, _ in ondisk["types"]] == TYPES, f"pprof-format reads memtally's six sample types: {ondisk['types']}")
    alloc_space = ondisk["totals"][1]
    expect = 0.05 * (2 * 2**30 + 2**30 + 2**30 + 128 * 2**20)
    check(abs(alloc_space - expect) < 0.1 * expect, f"alloc_space total {alloc_space/2**20:.1f} MiB ~ {expect/2**20:.1f} MiB")

    # ---- Pyroscope ----
    rc, out, err, _ = push("--to", BASE, "--app", "svc", "--label", "env=test", "--label", "region=eu-1",
                           "--tenant", "team-a", exitp)
    check(rc == 0 and "pushed" in out, f"pyroscope push exits 0: {rc} {err.strip()}")
    got = received()
    check(len(got) == 1, "the server received one upload")
    meta, path = got[-1]
    check(meta["api"] == "pyroscope" and meta["app"] == "svc.heap", f"name=APP.heap: {meta.get('app')}")
    check(meta["labels"] == {"env": "test", "region": "eu-1"}, f"labels in the name: {meta['labels']}")
    check(meta["tenant"] == "team-a", "X-Scope-OrgID carries the tenant")
    check(sha(path) == before, "the upload is the file, byte for byte")
    up = decode(path)[0]
    t_end = ondisk["time_nanos"] / 1e9
    t_start = (ondisk["time_nanos"] - ondisk["duration_nanos"]) / 1e9
    check(meta["from"] <= meta["until"] and abs(meta["from"] - t_start) <= 1 and abs(meta["until"] - t_end) <= 1,
          f"from/until {meta['from']}..{meta['until']} cover the profile {t_start:.1f}..{t_end:.1f}")
    check(up["totals"] == ondisk["totals"] and up["samples"] == ondisk["samples"] > 0,
          f"decoded upload: {up['samples']} samples, totals {up['totals'][:4]}")
    cfg = meta["sample_type_config"] or {}
    check(sorted(cfg) == sorted(TYPES) and cfg["inuse_space"]["units"] == "bytes"
          and cfg["alloc_objects"]["units"] == "objects", "sample_type_config names units for all six types")
    # the default app name is the program's, from the file name
    rc, out, err, _ = push("--to", BASE + "/", exitp)
    check(rc == 0 and received()[-1][0]["app"] == "prof_target.heap", f"default app: {received()[-1][0]['app']}")
    other = os.path.join(work, "svc.my-prog.123.window.4.pb.gz")
    shutil.copy(exitp, other)
    rc, out, err, _ = push("--to", BASE, other)
    check(rc == 0 and received()[-1][0]["app"] == "my-prog.heap", f"app from another prefix: {received()[-1][0]['app']}")

    # ---- Parca ----
    rc, out, err, _ = push("--to", BASE, "--format", "parca", "--label", "env=test", "--tenant", "t1", exitp)
    check(rc == 0, f"parca push exits 0: {err.strip()}")
    meta, path = received()[-1]
    check(meta["api"] == "parca" and meta["labels"].get("__name__") == "memory"
          and meta["labels"].get("service_name") == "prof_target" and meta["labels"].get("env") == "test",
          f"parca labels: {meta['labels']}")
    check(meta["tenant"] == "t1" and meta["normalized"] is False, "parca tenant and normalized=false")
    up = decode(path)[0]
    check(up["totals"] == ondisk["totals"] and sha(path) == before, "parca upload decodes to the same totals")

    # ---- failures: retried with backoff, never losing the file ----
    control("fail=2&code=500")
    a0 = attempts()
    rc, out, err, secs = push("--to", BASE, "--retries", "3", exitp)
    check(rc == 0 and attempts() - a0 == 3, f"two 500s then success: {attempts() - a0} attempts, {secs:.1f} s")
    check(1.4 <= secs < 10, f"backoff waited 0.5 s + 1 s between attempts ({secs:.1f} s)")
    control("fail=100&code=503")
    a0 = attempts()
    rc, out, err, secs = push("--to", BASE, "--retries", "2", exitp)
    check(rc == 1 and attempts() - a0 == 3 and "503" in err and "the file stays" in err,
          f"503 after the retries: status 1, one line: {err.strip()}")
    check(len(err.strip().splitlines()) == 1, "one line on stderr")
    control("fail=1&code=400")
    a0 = attempts()
    rc, out, err, _ = push("--to", BASE, "--retries", "3", exitp)
    check(rc == 1 and attempts() - a0 == 1, "a 400 is not retried (the request itself is wrong)")
    control("fail=0")
    control("hang=1")
    a0 = attempts()
    rc, out, err, secs = push("--to", BASE, "--timeout", "1", "--retries", "1", exitp)
    check(rc == 0 and attempts() - a0 == 2 and secs < 4, f"a hung server times out, the retry succeeds ({secs:.1f} s)")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    rc, out, err, secs = push("--to", f"http://127.0.0.1:{dead}", "--retries", "2", exitp)
    check(rc == 1 and "cannot connect" in err and 1.4 <= secs < 10, f"refused: retried, status 1 ({secs:.1f} s): {err.strip()}")
    check(sha(exitp) == before and os.path.exists(exitp), "the profile on disk is untouched by every failure")

    # ---- bad input: status 2, nothing sent ----
    a0 = attempts()
    bad = os.path.join(work, "bad.pb.gz")
    with open(bad, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00garbage" * 10)
    for args, what in [(["--to", "https://x.example/", exitp], "https URL"),
                       (["--to", BASE, "--label", "a b=c", exitp], "bad label key"),
                       (["--to", BASE, "--label", "a=b,c=d", exitp], "label value with a comma"),
                       (["--to", BASE, "--tenant", "x\r\nEvil: 1", exitp], "tenant with CRLF"),
                       (["--to", BASE + "/a b", exitp], "URL with a space"),
                       (["--to", BASE, "--format", "otlp", exitp], "unknown format"),
                       (["--to", BASE, os.path.join(work, "missing.pb.gz")], "missing file"),
                       (["--to", BASE, bad], "corrupt profile"),
                       (["--to", BASE], "no files")]:
        rc, out, err, _ = push(*args)
        check(rc == 2 and err.count("\n") >= 1 and err.startswith("memtally:"), f"{what}: status 2, {err.splitlines()[0] if err else ''}")
    check(attempts() == a0, "nothing reached the server for bad input")

    # ---- --watch on a live process: every window profile exactly once, across failures ----
    wdir = os.path.join(work, "w")
    os.makedirs(wdir)
    env = dict(os.environ, MEMTALLY_PROF_OUT=os.path.join(wdir, "prof"), MEMTALLY_PROF_INTERVAL="1")
    env.pop("LD_PRELOAD", None)
    tgt = subprocess.Popen([TARGET, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    started.append(tgt)
    n0 = len(received())
    watcher = subprocess.Popen([MEMTALLY, "push", "--to", BASE, "--format", "parca", "--retries", "1",
                                "--timeout", "2", "--watch", wdir], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    started.append(watcher)
    time.sleep(2.5)
    control("fail=1000&code=500")  # the backend goes away for a while
    time.sleep(3)
    control("fail=0")
    time.sleep(2.5)
    tgt.stdin.close()
    tgt.wait(timeout=30)
    time.sleep(3)  # the exit profile and the last window get picked up
    watcher.send_signal(signal.SIGTERM)
    wout, werr = watcher.communicate(timeout=60)
    check(watcher.returncode in (0, 1), f"the watcher stops on SIGTERM (status {watcher.returncode})")
    files = sorted(f for f in os.listdir(wdir) if f.endswith(".pb.gz"))
    windows = [f for f in files if ".window." in f]
    check(len(windows) >= 5, f"the process wrote window profiles: {len(windows)}")
    sent = [sha(p) for _, p in received()[n0:]]
    want = [sha(os.path.join(wdir, f)) for f in files]
    check(sorted(sent) == sorted(want),
          f"each of the {len(want)} profiles arrived exactly once ({len(sent)} uploads, failures in between: "
          f"{werr.count('not pushed')} refused pushes retried)")
    check(werr.count("not pushed") >= 1, "the outage was seen and ridden out")
    decoded = decode(*[p for _, p in received()[n0:]])
    LIFE = ["objects", "space", "lifetime"]
    heap = [d for d in decoded if [t for t, _ in d["types"]] != LIFE]
    life = [(d, m) for d, (m, p) in zip(decoded, received()[n0:]) if [t for t, _ in d["types"]] == LIFE]
    check(all([t for t, _ in d["types"]] == TYPES for d in heap) and len(heap) == len(decoded) - 1,
          "every watched heap upload decodes with six sample types")
    check(len(life) == 1 and life[0][1]["labels"].get("__name__") == "memory_lifetimes",
          "the lifetimes profile went too, as memory_lifetimes")
    win = [d for d, (m, p) in zip(decoded, received()[n0:]) if d["duration_nanos"] < 3e9 and d in heap]
    check(len(win) >= 4 and all(0.5e9 < d["duration_nanos"] < 2.5e9 for d in win), "window uploads span about a second each")
    # the pushed names were kept: a second pass sends nothing
    a0 = attempts()
    rc, out, err, _ = push("--to", BASE, "--watch", wdir, "--once")
    check(rc == 0 and attempts() == a0 and out == "", "--watch --once after the watcher: nothing sent twice")
finally:
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()
    if not failures:
        shutil.rmtree(work, ignore_errors=True)

print(f"{len(failures)} failure(s)" if failures else "all push checks passed")
sys.exit(1 if failures else 0)
