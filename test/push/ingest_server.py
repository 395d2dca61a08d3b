#!/usr/bin/env python3
"""ingest_server.py -- a local stand-in for Pyroscope's and Parca's ingest APIs

Implements, as their documentation describes them:
  Pyroscope  POST /ingest?name=APP{k=v,...}&from=UNIX&until=UNIX&format=pprof
             body multipart/form-data: field "profile" (the pprof, gzipped or
             not), optional "sample_type_config" (JSON); header X-Scope-OrgID
             names the tenant. 200 with an empty body; 400 on a bad request.
  Parca      POST /profiles/writeraw  (the gRPC-gateway JSON of WriteRawRequest:
             {"tenant"?, "series":[{"labels":{"labels":[{"name","value"}...]},
             "samples":[{"rawProfile": base64}]}], "normalized": bool}); 200 "{}".
Every accepted upload is kept as DIR/N.pb.gz with DIR/N.json (what came with it).
Faults for tests, set through POST /control?fail=K&code=C (answer the next K
uploads with C) or /control?hang=K (hold the next K uploads without answering
until the client gives up). Prints "port N" on stdout once listening.
usage: ingest_server.py DIR"""
import base64
import email.parser
import email.policy
import json
import os
import re
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OUT = sys.argv[1]
lock = threading.Lock()
state = {"n": 0, "fail": 0, "code": 500, "hang": 0, "attempts": 0}
NAME = re.compile(r'^([A-Za-z0-9_.\-]+)(?:\{(.*)\})?$')
LABEL = re.compile(r'^[A-Za-z_][A-Za-z0-9_.]*$')


def parse_name(name):
    m = NAME.match(name)
    if not m:
        raise ValueError("bad name %r" % name)
    labels = {}
    if m.group(2):
        for kv in m.group(2).split(","):
            k, _, v = kv.partition("=")
            if not LABEL.match(k) or not v:
                raise ValueError("bad label %r" % kv)
            labels[k] = v
    return m.group(1), labels


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, code, body=b""):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def keep(self, profile, meta):
        with lock:
            state["n"] += 1
            n = state["n"]
        with open(os.path.join(OUT, "%d.pb.gz" % n), "wb") as f:
            f.write(profile)
        with open(os.path.join(OUT, "%d.json" % n), "w") as f:
            json.dump(meta, f)

    def do_POST(self):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if u.path == "/control":
            with lock:
                if "fail" in q:
                    state["fail"] = int(q["fail"][0])
                    state["code"] = int(q.get("code", ["500"])[0])
                if "hang" in q:
                    state["hang"] = int(q["hang"][0])
            return self.answer(200)
        if u.path not in ("/ingest", "/profiles/writeraw"):
            return self.answer(404, b"not found\n")
        with lock:
            state["attempts"] += 1
            hang = state["hang"] > 0
            if hang:
                state["hang"] -= 1
            fail = 0
            if not hang and state["fail"] > 0:
                state["fail"] -= 1
                fail = state["code"]
        if hang:
            time.sleep(4)
            self.close_connection = True
            return
        if fail:
            return self.answer(fail, b"injected failure\n")
        try:
            if u.path == "/ingest":
                meta = self.pyroscope(q, body)
            else:
                meta = self.parca(body)
        except (ValueError, KeyError, TypeError, json.JSONDecodeError) as e:
            return self.answer(400, ("bad request: %s\n" % e).encode())
        self.keep(meta.pop("profile"), meta)
        self.answer(200, b"{}" if u.path != "/ingest" else b"")

    def pyroscope(self, q, body):
        for k in ("name", "from", "until"):
            if k not in q:
                raise ValueError("missing " + k)
        if q.get("format", ["folded"])[0] != "pprof":
            raise ValueError("format is not pprof")
        app, labels = parse_name(q["name"][0])
        start, end = int(q["from"][0]), int(q["until"][0])
        ctype = self.headers.get("Content-Type", "")
        if not ctype.startswith("multipart/form-data"):
            raise ValueError("not multipart/form-data")
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
        parts = {}
        for part in msg.iter_parts():
            parts[part.get_param("name", header="content-disposition")] = part.get_payload(decode=True)
        if "profile" not in parts:
            raise ValueError("no profile field")
        config = json.loads(parts["sample_type_config"]) if "sample_type_config" in parts else None
        return {"api": "pyroscope", "app": app, "labels": labels, "from": start, "until": end,
                "tenant": self.headers.get("X-Scope-OrgID"), "sample_type_config": config,
                "profile": parts["profile"]}

    def parca(self, body):
        req = json.loads(body)
        series = req["series"]
        if len(series) != 1 or len(series[0]["samples"]) != 1:
            raise ValueError("expected one series with one sample")
        labels = {l["name"]: l["value"] for l in series[0]["labels"]["labels"]}
        raw = base64.b64decode(series[0]["samples"][0]["rawProfile"], validate=True)
        return {"api": "parca", "labels": labels, "tenant": req.get("tenant"),
                "normalized": req.get("normalized"), "profile": raw}

    def do_GET(self):
        if self.path == "/state":
            with lock:
                return self.answer(200, json.dumps(state).encode())
        self.answer(404)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print("port", server.server_address[1], flush=True)
server.serve_forever()
