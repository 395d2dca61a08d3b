#!/usr/bin/env python3
"""make_profile.py -- write deterministic pprof heap profiles for the command's tests.

usage: make_profile.py base|new|large|deep|empties OUT.pb.gz
  base, new  a small program's heap profile; new holds more at load_config (growing)
  large      100 000 distinct stacks and 1 000 000 samples, for the speed test
  deep       one sample of 1 000 000 frames (hostile: recursion on depth)
  empties    5 000 000 empty samples in a few KB (hostile: memory per sample)
  types      1 000 sample types and 2 000 000 one-value samples (hostile: values per type)
  records    2 000 000 empty functions and locations, a location of 1 000 000 lines
  stacks     100 000 distinct 8-frame stacks through one function of a 4 000-byte
             name, and 100 000 functions called from main (hostile: report keys
             and flame graph children)
"""
import gzip
import sys


def varint(v):
    out = bytearray()
    v &= (1 << 64) - 1
    while True:
        b = v & 0x7f
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field, wire):
    return varint((field << 3) | wire)


def uint(field, v):
    return key(field, 0) + varint(v) if v else b""


def msg(field, body):
    return key(field, 2) + varint(len(body)) + body


def packed(field, vals):
    body = b"".join(varint(v) for v in vals)
    return msg(field, body)


class Builder:
    def __init__(self):
        self.strings = [""]
        self.index = {"": 0}
        self.parts = []
        self.functions = {}
        self.locations = {}

    def s(self, text):
        if text not in self.index:
            self.index[text] = len(self.strings)
            self.strings.append(text)
        return self.index[text]

    def function(self, name, file):
        if name not in self.functions:
            fid = len(self.functions) + 1
            self.functions[name] = fid
            self.parts.append(msg(5, uint(1, fid) + uint(2, self.s(name)) + uint(3, self.s(name)) + uint(4, self.s(file))))
        return self.functions[name]

    def location(self, name, file, line):
        k = (name, line)
        if k not in self.locations:
            lid = len(self.locations) + 1
            self.locations[k] = lid
            fid = self.function(name, file)
            self.parts.append(msg(4, uint(1, lid) + uint(3, 0x400000 + 16 * lid) + msg(4, uint(1, fid) + uint(2, line))))
        return self.locations[k]

    def sample(self, frames, values, thread=0):
        ids = [self.location(n, f, l) for (n, f, l) in frames]
        body = packed(1, ids) + packed(2, values)
        if thread:
            body += msg(3, uint(1, self.s("thread")) + uint(3, thread))
        self.parts.append(msg(2, body))

    def encode(self):
        head = b"".join(msg(1, uint(1, self.s(t)) + uint(2, self.s(u))) for t, u in
                        (("alloc_objects", "count"), ("alloc_space", "bytes"),
                         ("inuse_objects", "count"), ("inuse_space", "bytes")))
        tail = b"".join(msg(6, t.encode()) for t in self.strings)
        tail += uint(9, 1767225600000000000) + uint(10, 5000000000)
        tail += msg(11, uint(1, self.s("space")) + uint(2, self.s("bytes"))) + uint(12, 524288)
        tail += uint(14, self.s("inuse_space"))
        return head + b"".join(self.parts) + tail


def small(kind):
    b = Builder()
    b.s("space"), b.s("bytes"), b.s("inuse_space"), b.s("thread")
    main = ("main", "app/main.c", 40)
    held = 48 << 20 if kind == "new" else 24 << 20
    # site, values: alloc_objects alloc_space inuse_objects inuse_space
    b.sample([("parse_record", "app/parse.c", 88), ("load_file", "app/load.c", 12), main],
             [2100000, 50400000, 0, 0], 101)
    b.sample([("handle_request", "app/server.c", 210), ("serve", "app/server.c", 300), main],
             [9000, 295000000, 12, 393216], 102)
    b.sample([("load_config", "app/config.c", 31), main], [3000, held + 1000, 3000, held], 101)
    b.sample([("realloc", "libc.so", 0), ("append_line", "app/buf.c", 17), ("load_file", "app/load.c", 14), main],
             [400, 26000000, 1, 4 << 20], 101)
    b.sample([("strdup", "libc.so", 0), ("intern", "app/strings.c", 9), ("parse_record", "app/parse.c", 91), main],
             [150000, 2400000, 150000, 2400000], 101)
    if kind == "new":
        b.sample([("cache_put", "app/cache.c", 55), ("serve", "app/server.c", 305), main],
                 [20000, 5120000, 20000, 5120000], 102)
    return b.encode()


def large():
    b = Builder()
    funcs = [f"fn_{i}" for i in range(2000)]
    samples = 0
    rng = 12345
    for stack in range(100000):
        depth = 3 + stack % 6
        frames = []
        for d in range(depth):
            rng = (rng * 6364136223846793005 + 1442695040888963407) & ((1 << 64) - 1)
            frames.append((funcs[(rng >> 33) % len(funcs)], "big.c", d + 1))
        frames.append(("main", "big.c", 1))
        reps = 10  # 10 samples per stack: 1 000 000 in all
        for r in range(reps):
            b.sample(frames, [1, 64 + r, r % 2, (64 + r) * (r % 2)])
            samples += 1
    return b.encode()


def deep():
    b = Builder()
    loc = b.location("recurse", "deep.c", 7)
    b.parts.append(msg(2, packed(1, [loc] * 1000000) + packed(2, [1, 64, 1, 64])))
    return b.encode()


def empties():
    b = Builder()
    b.sample([("main", "e.c", 1)], [1, 64, 1, 64])
    b.parts.append(msg(2, b"") * 5000000)
    return b.encode()


def types():
    b = Builder()
    b.sample([("main", "t.c", 1)], [1, 64, 1, 64])
    head = b"".join(msg(1, uint(1, b.s(f"type_{i}")) + uint(2, b.s("count"))) for i in range(1000))
    b.parts.append(msg(2, packed(2, [1])) * 2000000)
    return head + b.encode()


def records():
    b = Builder()
    b.sample([("main", "r.c", 1)], [1, 64, 1, 64])
    b.parts.append(msg(4, b"") * 2000000 + msg(5, b"") * 2000000)
    b.parts.append(msg(4, uint(1, 999999999) + msg(4, b"") * 1000000))
    return b.encode()


def stacks():
    b = Builder()
    name = "x" * 4000
    fid = b.function(name, "s.c")
    rng = 99
    for i in range(100000):
        # locations 10 000 000 on are distinct lines of one long-named function
        b.parts.append(msg(4, uint(1, 10000000 + i) + msg(4, uint(1, fid) + uint(2, i + 1))))
    ids = []
    for i in range(100000):
        frames = []
        for _ in range(8):
            rng = (rng * 6364136223846793005 + 1442695040888963407) & ((1 << 64) - 1)
            frames.append(10000000 + (rng >> 33) % 100000)
        b.parts.append(msg(2, packed(1, frames) + packed(2, [1, 64, 1, 64])))
    for i in range(100000):
        b.sample([(f"f{i}", "s.c", 1), ("main", "s.c", 1)], [1, 64, 1, 64])
    return b.encode()


def lifebomb():
    """A lifetimes profile of 200,000 sites, every sample freed by the same
    4,000-byte stack name, at 200 lifetimes: the freeing site must be folded
    once per distinct string, not once per sample."""
    b = Builder()
    freed = " < ".join(["free"] + ["w" * 990] * 4)
    fk, fv, lk, tk, other = b.s("freed_by"), b.s(freed), b.s("lifetime"), b.s("free_thread"), b.s("other")
    ns = b.s("nanoseconds")
    for i in range(200000):
        lid = b.location(f"site{i}", "l.c", 1)
        body = packed(1, [lid]) + packed(2, [1, 64, 1000 * (i % 200)])
        body += msg(3, uint(1, fk) + uint(2, fv)) + msg(3, uint(1, lk) + uint(3, 1024 * (i % 200)) + uint(4, ns))
        body += msg(3, uint(1, tk) + uint(2, other))
        b.parts.append(msg(2, body))
    head = b"".join(msg(1, uint(1, b.s(t)) + uint(2, b.s(u))) for t, u in
                    (("objects", "count"), ("space", "bytes"), ("lifetime", "nanoseconds")))
    tail = b"".join(msg(6, t.encode()) for t in b.strings)
    return head + b"".join(b.parts) + tail


if __name__ == "__main__":
    kind, out = sys.argv[1], sys.argv[2]
    data = {"large": large, "deep": deep, "empties": empties, "types": types, "records": records,
            "stacks": stacks, "lifebomb": lifebomb}.get(kind, lambda: small(kind))()
    with gzip.open(out, "wb") as f:
        f.write(data)
