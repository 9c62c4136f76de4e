#!/usr/bin/env python3
"""Instructions per HTTP/2 request spent in the codec alone, without sockets or the proxy:
truehop's own codec (`http.h2.H2Server`, with http/hpack.py and http/h2frames.py) against the
h2 library by itself, which it replaced on the request path (h2 stays a test dependency: the
tests' client and oracle), counted by callgrind.

The client's bytes are made beforehand (4 x 10 HEADERS per batch, as the lockstep client
sends them: h2's HPACK, dynamic table on); a process under callgrind then reads them and, for
each request the server reports, sends a response like a proxied /small one (HEADERS with 5
fields, a 13-byte DATA with END_STREAM) and takes the bytes to send. N1 and N2 batches are
run and the difference per request printed, as the other scripts do.

    python bench/h2_codec_cost.py [--what library,truehop] [--src DIR] [--top 15]

`library` is h2.connection.H2Connection configured as the old wrapper configured it (--lib jh2
for the jh2 fork); `truehop` is H2Server (feed, send_response, send_body, send_end,
stream_done, data_to_send) from the tree --src names (`--src .venv/compiled`: the mypyc build).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import h2.config
import h2.connection

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from instructions_per_request import functions  # noqa: E402

STREAMS = 10
RESPONSE = [("server", "truehop"), ("date", "Tue, 08 Dec 2026 00:00:00 GMT"),
            ("content-type", "text/plain"), ("content-length", "13"),
            ("x-upstream", "127.0.0.1:8081")]
BODY = b"hello, world\n"


def client_bytes(batches: int) -> list[bytes]:
    """The preface, then one chunk of STREAMS requests per batch."""
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    out = [c.data_to_send()]
    headers = [(":method", "GET"), (":scheme", "http"), (":authority", "localhost"),
               (":path", "/small"), ("user-agent", "bench"), ("accept", "*/*")]
    for _ in range(batches):
        for _ in range(STREAMS):
            c.send_headers(c.get_next_available_stream_id(), headers, end_stream=True)
        out.append(c.data_to_send())
    return out


def run_library(chunks: list[bytes], lib: str) -> int:
    config = importlib.import_module(f"{lib}.config")
    connection = importlib.import_module(f"{lib}.connection")
    events = importlib.import_module(f"{lib}.events")
    cfg = config.H2Configuration(client_side=False, header_encoding=None,
                                 validate_inbound_headers=False,
                                 normalize_inbound_headers=False,
                                 validate_outbound_headers=False,
                                 normalize_outbound_headers=False)
    conn = connection.H2Connection(cfg)
    conn.initiate_connection()
    conn.data_to_send()
    block = [(k.encode(), v.encode()) for k, v in RESPONSE]
    sent = 0
    for chunk in chunks:
        for ev in conn.receive_data(chunk):
            if isinstance(ev, events.RequestReceived):
                conn.send_headers(ev.stream_id, [(b":status", b"200"), *block])
                conn.send_data(ev.stream_id, BODY, end_stream=True)
        sent += len(conn.data_to_send())
    return sent


def run_truehop(chunks: list[bytes]) -> int:
    from truehop.http.h2 import H2Server, StreamRequest  # the tree --src names
    s = H2Server()
    s.start()
    s.data_to_send()
    sent = 0
    for chunk in chunks:
        for ev in s.feed(chunk):
            if isinstance(ev, StreamRequest):
                sid = ev.stream_id
                s.send_response(sid, 200, RESPONSE)
                s.send_body(sid, BODY)
                s.send_end(sid)
                s.stream_done(sid)
        sent += len(s.data_to_send())
    return sent


def inner(what: str, path: str, lib: str) -> None:
    with open(path, "rb") as f:
        chunks: list[bytes] = pickle.load(f)
    sent = run_library(chunks, lib) if what == "library" else run_truehop(chunks)
    if sent < len(chunks):
        raise SystemExit("nothing was answered")


def measure(d: str, what: str, batches: int, src: str, lib: str) -> str:
    data = f"{d}/client-{batches}.pickle"
    with open(data, "wb") as f:
        pickle.dump(client_bytes(batches), f)
    out = f"{d}/cg.{what}.{batches}"
    env = dict(os.environ, PYTHONPATH=src)
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                    "--dump-instr=no", "--collect-jumps=no", sys.executable, __file__,
                    "--inner", what, "--data", data, "--lib", lib],
                   env=env, stderr=subprocess.DEVNULL, check=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--what", default="library,truehop")
    ap.add_argument("--src", default=os.path.join(ROOT, "src"))
    ap.add_argument("--lib", default="h2", choices=("h2", "jh2"))
    ap.add_argument("--n1", type=int, default=40, help="batches of 10 requests")
    ap.add_argument("--n2", type=int, default=240)
    ap.add_argument("--top", type=int, default=0)
    ap.add_argument("--inner", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        inner(args.inner, args.data, args.lib)
        return 0
    if not shutil.which("valgrind"):
        sys.exit("valgrind not found: apt-get install valgrind")
    d = tempfile.mkdtemp(prefix="truehop-h2codec-")
    try:
        for what in args.what.split(","):
            t0 = time.monotonic()
            a: Any = functions(measure(d, what, args.n1, args.src, args.lib))
            b: Any = functions(measure(d, what, args.n2, args.src, args.lib))
            n = (args.n2 - args.n1) * STREAMS
            label = f"{what} ({args.lib})" if what == "library" else f"{what} (src {args.src})"
            print(f"{label}: {(b[0] - a[0]) / n:.0f} instructions per request "
                  f"({time.monotonic() - t0:.0f} s)")
            if args.top:
                diff = {k: (b[1][k] - a[1][k]) / n for k in b[1]}
                for name, v in sorted(diff.items(), key=lambda kv: -kv[1])[:args.top]:
                    print(f"    {v:10.0f}  {name[:100]}")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
