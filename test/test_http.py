#!/usr/bin/env python3
"""test_http.py -- MEMTALLY_HTTP end to end, with real clients and a real Prometheus server.

usage: test_http.py BINDIR
Runs test/programs/prof_target in its serve mode (a process that keeps 32 MiB
and churns 64 KiB blocks) with MEMTALLY_HTTP=127.0.0.1:0, then: go tool pprof
reads /debug/pprof/heap and a 2-second delta of /debug/pprof/allocs;
promtool checks /metrics; a Prometheus server started here scrapes it twice
and is queried through its HTTP API; bad requests, a slow client and 1,000
connections at once get answers without stalling the program; a forked
child does not answer on its parent's socket."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BINDIR = sys.argv[1]
TARGET = os.path.join(BINDIR, "prof_target")
work = tempfile.mkdtemp(prefix="mthttp")
from pycheck import check, failures  # noqa: E402
started = []  # processes this test started: ended by their own handle


def start_target(mode, extra=None):
    # 64 KiB between samples: a 256 KiB block is sampled with probability 1 - e^-4 = 0.98, so
    # the 32 MiB kept are estimated within about 1 % (at the default 512 KiB, 0.39 and 11 %:
    # a bound of 30 MiB failed one run in five)
    env = dict(os.environ, MEMTALLY_HTTP="127.0.0.1:0", MEMTALLY_PROF_OUT=os.path.join(work, "p"),
               MEMTALLY_PROF_RATE="65536")
    env.pop("LD_PRELOAD", None)
    env.update(extra or {})
    p = subprocess.Popen([TARGET, mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env, text=True)
    started.append(p)
    line = p.stderr.readline()
    m = re.search(r"serving http://127\.0\.0\.1:(\d+)/", line)
    check(m is not None, f"the library says where it serves: {line.strip()}")
    return p, int(m.group(1)) if m else 0


def get(port, path, timeout=30):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def raw(port, data, wait=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=wait)
    s.sendall(data)
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return out


def pprof_raw(*args):
    env = dict(os.environ, HOME=work, PPROF_TMPDIR=work)
    p = subprocess.run(["go", "tool", "pprof", "-raw", "-symbolize=none"] + list(args), capture_output=True,
                       text=True, env=env, timeout=300)
    check(p.returncode == 0, "go tool pprof -raw " + " ".join(args) + " reads it")
    return p.stdout


def site_values(out, site):
    """Sum of each sample type over the samples whose leaf is site."""
    locs, samples, section = {}, [], None
    for line in out.splitlines():
        if line.startswith("Samples:"):
            section = "s"
        elif line.startswith("Locations"):
            section = "l"
        elif line.startswith("Mappings"):
            section = "m"
        elif section == "s":
            m = re.match(r"^\s*((?:\d+\s+){3,}\d+):\s*([\d ]*)$", line)
            if m:
                samples.append(([int(x) for x in m.group(1).split()], [int(x) for x in m.group(2).split()]))
        elif section == "l":
            m = re.match(r"^\s*(\d+): (0x[0-9a-f]+) M=\d+\s*(\S*)", line)
            if m:
                locs[int(m.group(1))] = m.group(3)
    total = None
    for values, ids in samples:
        if ids and locs.get(ids[0]) == site:
            total = values if total is None else [a + b for a, b in zip(total, values)]
    return total or [0] * 6


try:
    p, port = start_target("serve")
    check(p.stdout.readline().strip() == "serving", "the target runs")
    url = f"http://127.0.0.1:{port}"
    # the heap profile: the 32 MiB kept are in use
    v = site_values(pprof_raw(url + "/debug/pprof/heap"), "serve_kept_site")
    check(v[3] >= 30 << 20, f"heap: serve_kept_site holds {v[3] >> 20} MiB in use")
    # how long blocks lived so far: the churned 64 KiB blocks, freed by the serving loop
    life = pprof_raw(url + "/debug/pprof/lifetimes")
    check("lifetime/nanoseconds" in life and "freed_by:" in life and "lifetime:" in life,
          "go tool pprof reads /debug/pprof/lifetimes: sample type lifetime, labels freed_by and lifetime")
    code, _ = get(port, "/debug/pprof/lifetimes?seconds=2")
    check(code == 400, f"lifetimes?seconds: 400 ({code})")
    # a delta of the next 2 seconds: the churn site allocated in it, the kept site did not
    out = pprof_raw("-seconds", "2", url + "/debug/pprof/allocs")
    churn, kept = site_values(out, "serve_churn_site"), site_values(out, "serve_kept_site")
    check(churn[1] > 16 << 20 and kept[1] == 0 and kept[3] >= 30 << 20,
          f"allocs?seconds=2: churn allocated {churn[1] >> 20} MiB, kept allocated {kept[1]} B and holds {kept[3] >> 20} MiB")
    code, body = get(port, "/debug/pprof/")
    check(code == 200 and b"heap" in body and b"allocs" in body, "the index lists the profiles")
    # /metrics: promtool accepts it
    code, metrics = get(port, "/metrics")
    check(code == 200 and b"memtally_bytes_in_use " in metrics, "/metrics answers")
    pc = subprocess.run(["promtool", "check", "metrics"], input=metrics, capture_output=True, timeout=60)
    check(pc.returncode == 0, f"promtool check metrics: {pc.stdout.decode().strip()} {pc.stderr.decode().strip()}")
    # bad requests
    check(get(port, "/nope")[0] == 404, "unknown path: 404")
    check(get(port, "/debug/pprof/allocs?seconds=99999999999")[0] == 400, "huge seconds: 400")
    check(get(port, "/debug/pprof/heap?seconds=-3")[0] == 400, "negative seconds: 400")
    check(raw(port, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400"), "malformed request line: 400")
    check(raw(port, b"POST /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 405"), "POST: 405")
    check(raw(port, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 8000 + b"\r\n\r\n").startswith(b"HTTP/1.1 431"),
          "headers over 4 KiB: 431")
    # a slow client is timed out and does not hold the others up
    slow = socket.create_connection(("127.0.0.1", port))
    slow.sendall(b"GET /metr")
    t0 = time.time()
    check(get(port, "/metrics")[0] == 200 and time.time() - t0 < 2, "answered while a slow client sends nothing")
    slow.settimeout(10)
    check(slow.recv(100).startswith(b"HTTP/1.1 408"), "the slow client gets 408 after 5 s")
    slow.close()
    # 1,000 connections at once: the first 64 are served, the rest answered 503; nothing stalls
    socks = []
    for _ in range(1000):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            break
    check(len(socks) == 1000, f"1,000 connections opened ({len(socks)})")
    busy = 0
    for s in socks[200:260]:
        s.settimeout(5)
        try:
            busy += s.recv(64).startswith(b"HTTP/1.1 503")
        except OSError:
            pass
    for s in socks:
        s.close()
    check(busy > 0, f"connections past the limit are answered 503 ({busy} of 60 looked at)")
    t0 = time.time()
    code, _ = get(port, "/metrics", timeout=20)
    check(code == 200, f"then a request is served again ({time.time() - t0:.1f} s)")
    check(p.poll() is None, "the program kept running")
    # a real Prometheus server scrapes /metrics
    prom_port = port + 1 if port < 65000 else port - 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        prom_port = s.getsockname()[1]
    cfg = os.path.join(work, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
                f"  - job_name: memtally\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n")
    prom = subprocess.Popen(["prometheus", "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(work, "tsdb"),
                             f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    started.append(prom)
    got = None
    q = urllib.request.quote("count_over_time(memtally_bytes_in_use[1m])")
    for _ in range(60):
        time.sleep(1)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/api/v1/query?query={q}", timeout=5) as r:
                res = json.load(r)["data"]["result"]
            if res and float(res[0]["value"][1]) >= 2:
                got = res
                break
        except OSError:
            continue
    check(got is not None, f"Prometheus scraped memtally_bytes_in_use at least twice: {got}")
    if got:
        with urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/api/v1/query?query=memtally_bytes_in_use",
                                    timeout=5) as r:
            res = json.load(r)["data"]["result"]
        check(res and float(res[0]["value"][1]) >= 30 << 20, f"and reads its value: {res[0]['value'] if res else None}")
    prom.terminate()
    prom.wait(timeout=30)
    p.stdin.close()
    check(p.wait(timeout=30) == 0 and p.stdout.read().strip() == "served", "the program ended normally")
    # a forked child closes the inherited socket: once the parent is gone nothing answers
    p2, port2 = start_target("serve_fork")
    out = p2.stdout.read()
    p2.wait(timeout=30)
    try:
        socket.create_connection(("127.0.0.1", port2), timeout=2).close()
        refused = False
    except OSError:
        refused = True
    check("child" in out and refused, "the forked child does not answer on its parent's port")
finally:
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    shutil.rmtree(work, ignore_errors=True)

print(f"test_http: {len(failures)} failed")
sys.exit(1 if failures else 0)
