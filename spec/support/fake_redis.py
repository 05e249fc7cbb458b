#!/usr/bin/env python3
"""A hostile Redis server on 127.0.0.1 for the RESP client's specs.

Prints one JSON line {"port": N, "pid": N} once it listens, then serves until
killed, until its parent exits or until --ttl seconds pass, so a crashed
test run leaves nothing behind. Standard library only.

Each command it receives is answered by the scenario its last argument
names (e.g. `ECHO huge_array`); AUTH is answered as a server with an ACL
user app/secret answers it. Scenarios:
  ok              +OK
  huge_array      *2000000000 (14 bytes), then nothing
  huge_announce   a 26-byte reply announcing 100 million elements, then nothing
  huge_bulk       $100000000, then nothing
  bulk_trickle    $100000000 and 64 KiB of it, then nothing
  deep            100,000 nested one-element arrays around :1
  truncated       $10 and 3 of its bytes, then it hangs up
  truncated_hold  $10 and 3 of its bytes, then nothing
  resp3_map       a RESP3 map (%), which RESP2 does not have
  non_numeric     $abc
  negative        $-5
  no_crlf         a bulk string followed by other bytes than CRLF
  bad_integer     :12x
  endless_line    + and then 'a' for ever (64 KiB writes)
  drip            +OK... one byte every 100 ms, never ending
"""
import argparse
import json
import os
import socket
import sys
import threading
import time

SCENARIOS = {
    "ok": b"+OK\r\n",
    "huge_array": b"*2000000000\r\n",
    "huge_announce": b"*100000000\r\n$1\r\nx\r\n$1\r\ny\r\n",
    "huge_bulk": b"$100000000\r\n",
    "bulk_trickle": b"$100000000\r\n" + b"x" * 65536,
    "deep": b"*1\r\n" * 100000 + b":1\r\n",
    "truncated": b"$10\r\nabc",
    "truncated_hold": b"$10\r\nabc",
    "resp3_map": b"%1\r\n+a\r\n+b\r\n",
    "non_numeric": b"$abc\r\n",
    "negative": b"$-5\r\n",
    "no_crlf": b"$3\r\nabcXY",
    "bad_integer": b":12x\r\n",
}


def read_command(f):
    """One RESP array of bulk strings, as a list of bytes; None at EOF."""
    line = f.readline()
    if not line:
        return None
    if not line.startswith(b"*"):
        return [line.strip()]
    args = []
    for _ in range(int(line[1:])):
        n = int(f.readline()[1:])
        args.append(f.read(n + 2)[:-2])
    return args


def hold(conn):
    """Sends nothing more; returns when the client hangs up."""
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass


def serve(conn):
    f = conn.makefile("rb")
    try:
        while True:
            args = read_command(f)
            if args is None:
                return
            name = args[-1].decode("latin-1")
            if args[0].upper() == b"AUTH":
                ok = len(args) == 3 and args[1] == b"app" and args[2] == b"secret"
                conn.sendall(b"+OK\r\n" if ok else
                             b"-WRONGPASS invalid username-password pair or user is disabled.\r\n")
                continue
            if name == "endless_line":
                conn.sendall(b"+")
                chunk = b"a" * 65536
                while True:
                    conn.sendall(chunk)
            if name == "drip":
                for c in b"+OK" + b"k" * 100000:
                    conn.sendall(bytes([c]))
                    time.sleep(0.1)
            conn.sendall(SCENARIOS.get(name, b"-ERR unknown scenario\r\n"))
            if name == "truncated":
                return
            if name not in ("ok",) and not name.startswith("-"):
                hold(conn)
                return
    except OSError:
        pass
    finally:
        try:
            conn.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ttl", type=float, default=300)
    a = ap.parse_args()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    print(json.dumps({"port": s.getsockname()[1], "pid": os.getpid()}), flush=True)
    parent, start = os.getppid(), time.time()

    def watchdog():
        while time.time() - start < a.ttl and os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watchdog, daemon=True).start()
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    main()
