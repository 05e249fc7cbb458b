#!/usr/bin/env python3
"""A fake of Azure's managed identity endpoints on 127.0.0.1, for
spec/managed_identity_spec.lua. Standard library only.

Prints one JSON line {"port": N, "pid": N} once it listens, then serves until
killed, until its parent exits or until --ttl seconds pass.

Every request outside /_ctl/ is recorded (method, path, query, lower-case
headers, form body) and answered by, in order:
  - the next scripted answer, if any ({status, json | body, headers,
    delay_ms});
  - under /arc: Azure Arc's challenge. Without `Authorization: Basic
    <arc_secret>` a 401 with `WWW-Authenticate: Basic realm=<arc_realm>`,
    with it a token;
  - a token: {access_token: "tok-N", expires_on (Unix time, a string, or
    ISO 8601 when expires_format is "iso"), resource, token_type}, plus the
    user-assigned id echoed back (client_id, object_id, msi_res_id) when
    `echo` is set.
Control (JSON bodies):
  POST /_ctl/reset   clears the script, the log and the token count; the body sets the
                     options (arc_realm, arc_secret, expires_in,
                     expires_format, echo)
  POST /_ctl/script  appends a list of answers
  GET  /_ctl/log     the recorded requests
"""
import argparse
import datetime
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import http_server  # beside this file: its serve()

lock = threading.Lock()
state = {"script": [], "log": [], "opts": {}, "n": 0}


def first_values(qs):
    return {k: v[0] for k, v in parse_qs(qs, keep_blank_values=True).items()}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, headers=()):
        if not isinstance(body, bytes):
            body = body.encode()
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status, doc, headers=()):
        self.send(status, json.dumps(doc), [("Content-Type", "application/json")] + list(headers))

    def control(self, url, body):
        with lock:
            if url.path == "/_ctl/reset":
                state["script"], state["log"], state["n"] = [], [], 0
                state["opts"] = json.loads(body or b"{}")
                return self.send_json(200, {"ok": True})
            if url.path == "/_ctl/script":
                state["script"].extend(json.loads(body))
                return self.send_json(200, {"ok": True})
            if url.path == "/_ctl/log":
                return self.send_json(200, state["log"])
        return self.send_json(404, {"error": "unknown control"})

    def token(self, rec):
        opts = state["opts"]
        state["n"] += 1
        expires_on = int(time.time()) + int(opts.get("expires_in", 86400))
        if opts.get("expires_format") == "iso":
            on = datetime.datetime.fromtimestamp(expires_on, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        else:
            on = str(expires_on)
        q = rec["query"]
        doc = {"access_token": "tok-%d" % state["n"], "expires_on": on, "token_type": "Bearer",
               "resource": q.get("resource") or rec["form"].get("resource")}
        if opts.get("echo"):
            for k in ("client_id", "object_id", "msi_res_id"):
                if k in q:
                    doc[k] = q[k]
        return self.send_json(200, doc)

    def handle_any(self):
        url = urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if url.path.startswith("/_ctl/"):
            return self.control(url, body)
        rec = {"method": self.command, "path": url.path, "query": first_values(url.query),
               "headers": {k.lower(): v for k, v in self.headers.items()},
               "form": first_values(body.decode("latin-1"))}
        with lock:
            state["log"].append(rec)
            a = state["script"].pop(0) if state["script"] else None
        if a is not None:
            # the delay outside the lock: other requests go on meanwhile
            time.sleep(a.get("delay_ms", 0) / 1000)
            headers = [tuple(h) for h in a.get("headers", [])]
            if "json" in a:
                return self.send_json(a.get("status", 200), a["json"], headers)
            return self.send(a.get("status", 200), a.get("body", ""), headers)
        with lock:
            opts = state["opts"]
            if url.path.startswith("/arc"):
                want = "Basic " + opts.get("arc_secret", "")
                if rec["headers"].get("authorization") != want:
                    return self.send_json(401, {"error": "unauthorized"},
                                          [("WWW-Authenticate", "Basic realm=" + opts.get("arc_realm", ""))])
            return self.token(rec)

    do_GET = do_POST = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ttl", type=float, default=600)
    args = ap.parse_args()
    http_server.serve(Server(("127.0.0.1", 0), Handler), args.ttl)


if __name__ == "__main__":
    sys.exit(main())
