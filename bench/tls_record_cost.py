#!/usr/bin/env python3
"""What one TLS record pair costs on the downstream side: truehop's memory-BIO layer
(net/tls.py, interpreted or compiled) against uvloop's own TLS transport, in user-space
instructions counted by callgrind.

A tiny server under callgrind answers every 200-byte request with a 300-byte response (one
record in, one record out, as a small keep-alive request and its answer); 4 clients in
lockstep send N1 and then N2 requests; the difference per request is printed, as
instructions_per_request.py does. The server is, by mode:

  plain     no TLS: the floor (uvloop, a Python protocol)
  native    uvloop's TLS transport: loop.create_server(ssl=ctx) (Cython over ssl.SSLObject)
  membio    truehop.net.tls.TlsProtocol in front of the same protocol (what truehop runs)

    python bench/tls_record_cost.py [--modes plain,native,membio] [--src DIR] [--top 10]

--src picks the truehop tree for `membio` (e.g. `.venv/compiled`, or a build where
net/tls.py is compiled too). Needs valgrind and openssl. Loopback only; about 1 min a mode.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from instructions_per_request import client_context, functions, make_cert  # noqa: E402
from proxy_vs_nginx import free_port, wait_port  # noqa: E402

REQ = 200
RESP = b"x" * 300
CONNS = 4


class Answer(asyncio.Protocol):
    """Answers each REQ bytes received with RESP."""

    def __init__(self) -> None:
        self.transport: Any = None     # uvloop's transports do not derive from asyncio's
        self.got = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.got += len(data)
        while self.got >= REQ:
            self.got -= REQ
            self.transport.write(RESP)


def serve(mode: str, port: int, d: str) -> None:
    """The server process (run under callgrind): until SIGINT."""
    import uvloop  # the server side only
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(f"{d}/cert.pem", f"{d}/key.pem")
    ctx.set_alpn_protocols(["http/1.1"])

    async def main() -> None:
        loop = asyncio.get_running_loop()
        if mode == "plain":
            server = await loop.create_server(Answer, "127.0.0.1", port)
        elif mode == "native":
            server = await loop.create_server(Answer, "127.0.0.1", port, ssl=ctx)
        else:
            from truehop.net.tls import TlsProtocol

            def make() -> asyncio.Protocol:
                return TlsProtocol(ctx, lambda alpn: Answer())
            server = await loop.create_server(make, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    try:
        uvloop.run(main())
    except KeyboardInterrupt:
        pass


def drive(port: int, n: int, tls: bool) -> None:
    socks = []
    for _ in range(CONNS):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(120)
        if tls:
            s = client_context(["http/1.1"]).wrap_socket(s, server_hostname="localhost")
        socks.append(s)
    req = b"r" * REQ
    for _ in range(n // CONNS):
        for s in socks:
            s.sendall(req)
        for s in socks:
            got = 0
            while got < len(RESP):
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError("server closed")
                got += len(chunk)
    for s in socks:
        s.close()


def run_once(d: str, mode: str, src: str, n: int) -> str:
    port = free_port()
    out = f"{d}/cg.{mode}.{n}"
    python = os.path.join(ROOT, ".venv", "bin", "python")
    env = dict(os.environ, PYTHONPATH=src)
    p = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                          "--dump-instr=no", "--collect-jumps=no", python, __file__,
                          "--serve", mode, "--port", str(port), "--dir", d],
                         env=env, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, timeout=180)
        drive(port, 200, mode != "plain")
        drive(port, n, mode != "plain")
        os.kill(p.pid, signal.SIGINT)
        p.wait(120)
    finally:
        if p.poll() is None:
            p.kill()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--modes", default="plain,native,membio")
    ap.add_argument("--src", default=os.path.join(ROOT, "src"))
    ap.add_argument("--n1", type=int, default=400)
    ap.add_argument("--n2", type=int, default=2400)
    ap.add_argument("--top", type=int, default=0)
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.dir)
        return 0
    if not shutil.which("valgrind"):
        sys.exit("valgrind not found: apt-get install valgrind")
    d = tempfile.mkdtemp(prefix="truehop-tlsrec-")
    try:
        make_cert(d)
        for mode in args.modes.split(","):
            t0 = time.monotonic()
            a = functions(run_once(d, mode, args.src, args.n1))
            b = functions(run_once(d, mode, args.src, args.n2))
            n = args.n2 - args.n1
            print(f"{mode:7} {(b[0] - a[0]) / n:9.0f} instructions per request/response "
                  f"({time.monotonic() - t0:.0f} s)" + (f"  src: {args.src}"
                                                        if mode == "membio" else ""))
            if args.top:
                diff = {k: (b[1][k] - a[1][k]) / n for k in b[1]}
                for name, v in sorted(diff.items(), key=lambda kv: -kv[1])[:args.top]:
                    print(f"    {v:10.0f}  {name[:100]}")
                print("  by shared object:")
                diff = {k: (b[2][k] - a[2][k]) / n for k in b[2]}
                for name, v in sorted(diff.items(), key=lambda kv: -kv[1]):
                    if abs(v) >= 50:
                        print(f"    {v:10.0f}  {name[:100]}")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
