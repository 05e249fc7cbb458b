#!/usr/bin/env python3
"""A scriptable HTTP/1.1 server on 127.0.0.1 for the transport specs.

Prints one JSON line {"port": N, "pid": N} once it listens, then serves until
killed, until its parent exits or until --ttl seconds pass, so a crashed
test run leaves nothing behind. Standard library only.

Every answer is scripted by the query string:
  /echo             200, JSON {method, path, headers, body, conn}
  /freeport         200, a port on 127.0.0.1 that nothing listens on
  /anything?...     status=N, delay=MS (before the headers), size=N (body of
                    "x"), body=TEXT, header=Name:Value (repeatable),
                    retry_after=S, chunked=1 (no Content-Length),
                    close_after=N (promise size bytes, send N, hang up)
The "x-conn" header of every answer numbers the TCP connection it came on,
so a client's connection reuse is visible.
"""
import argparse
import itertools
import json
import os
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

conn_ids = itertools.count(1)
conn_lock = threading.Lock()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        with conn_lock:
            self.conn = next(conn_ids)

    def log_message(self, *args):
        pass

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def answer(self, status, body, headers=(), chunked=False, promise=None):
        self.send_response(status)
        self.send_header("X-Conn", str(self.conn))
        for name, value in headers:
            self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body) if promise is None else promise))
        self.end_headers()
        if self.command == "HEAD":
            return
        if chunked:
            for i in range(0, len(body), 16384):
                part = body[i:i + 16384]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(body)
        self.wfile.flush()

    def handle_any(self):
        url = urlsplit(self.path)
        q = parse_qs(url.query)
        body = self.read_body()
        if url.path == "/echo":
            out = {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("latin-1"),
                "conn": self.conn,
            }
            return self.answer(200, json.dumps(out).encode(), [("Content-Type", "application/json")])
        if url.path == "/freeport":
            return self.answer(200, str(free_port()).encode())
        delay = int(q.get("delay", ["0"])[0])
        if delay:
            time.sleep(delay / 1000)
        headers = []
        for h in q.get("header", []):
            name, _, value = h.partition(":")
            headers.append((name, value.strip()))
        if "retry_after" in q:
            headers.append(("Retry-After", q["retry_after"][0]))
        if "size" in q:
            payload = b"x" * int(q["size"][0])
        else:
            payload = q.get("body", ["ok"])[0].encode()
        status = int(q.get("status", ["200"])[0])
        if "close_after" in q:
            cut = int(q["close_after"][0])
            self.answer(status, payload[:cut], headers, promise=len(payload))
            self.close_connection = True
            return
        self.answer(status, payload, headers, chunked="chunked" in q)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops SYNs of a 50-request burst
    tls = None

    def get_request(self):
        sock, addr = super().get_request()
        if self.tls:
            # The handshake runs in the handler's thread, on first read, so a
            # client refusing our certificate stalls nobody else.
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        pass  # clients that hang up or refuse the certificate are expected


def serve(srv, ttl):
    """Serves srv in a thread, tells the spec its port and pid on stdout (one
    JSON line), and exits when the spec's process is gone or after ttl
    seconds: gone with the test run even when it dies before its teardown.
    The other fakes (mi_server.py) serve through this too."""
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    parent = os.getppid()
    print(json.dumps({"port": srv.server_address[1], "pid": os.getpid()}), flush=True)
    deadline = time.monotonic() + ttl
    while time.monotonic() < deadline and os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--ttl", type=float, default=600)
    args = ap.parse_args()
    srv = Server(("127.0.0.1", 0), Handler)
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        srv.tls = ctx
    serve(srv, args.ttl)


if __name__ == "__main__":
    sys.exit(main())
