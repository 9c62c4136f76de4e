#!/usr/bin/env python3
"""Memory per connection, nginx and truehop side by side (issue 19): idle HTTP/1.1 keep-alive
connections, idle HTTP/2 connections, and open WebSocket tunnels.

For each proxy (one worker each, the same config in front of the same upstream: the demo app,
which speaks WebSocket) and each kind, the script opens N connections (default 10,000), each
having completed one request (or the WebSocket handshake), then reads the worker's RSS and
prints (RSS after - RSS before) / N, and the ratio to nginx. The connections are then closed
and the RSS read again (what the worker gave back).

    python bench/memory_per_connection.py [--n 10000] [--kinds h1,h2,ws] [--truehop CMD]

`--truehop "env PYTHONPATH=.venv/compiled .venv/bin/python -m truehop"` measures the mypyc
build (`make compiled`). Needs nginx. Loopback only; raises its file-descriptor limit (root
or a hard limit of at least 3N+100). About a minute per proxy and kind.
"""

from __future__ import annotations

import argparse
import base64
import os
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import h2.config
import h2.connection

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from proxy_vs_nginx import free_port, nginx_bin, wait_port  # noqa: E402

CONF = """
worker_processes 1;
worker_rlimit_nofile {nofile};
daemon off;
pid {d}/{name}.pid;
error_log {d}/{name}-error.log error;
events {{ worker_connections {conns}; }}
http {{
    access_log off;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      '';
    }}
    upstream app {{
        server 127.0.0.1:{up};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096{listen_h2};{http2}
        keepalive_timeout 600s;
        keepalive_requests 100000;
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 600s;
        }}
    }}
}}
"""


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def worker_pid(master: int) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True,
                             text=True).stdout.split()
        if out:
            return int(out[0])
        time.sleep(0.1)
    raise RuntimeError(f"no worker under {master}")


def recv_until(s: socket.socket, marker: bytes, limit: int = 65536) -> bytes:
    buf = b""
    while marker not in buf and len(buf) < limit:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError(f"closed before {marker!r}: {buf[:200]!r}")
        buf += chunk
    return buf


def open_h1(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n")
    head = recv_until(s, b"\r\n\r\n")
    low = head.lower()
    length = int(low.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0]) \
        if b"content-length:" in low else 0
    body = head.split(b"\r\n\r\n", 1)[1]
    while len(body) < length:
        body += s.recv(65536)
    return s


def open_h2(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":authority", "localhost"),
                       (":path", "/x")], end_stream=True)
    s.sendall(c.data_to_send())
    done = False
    while not done:
        data = s.recv(65536)
        if not data:
            raise RuntimeError("HTTP/2 connection closed")
        for ev in c.receive_data(data):
            if type(ev).__name__ == "StreamEnded":
                done = True
        out = c.data_to_send()
        if out:
            s.sendall(out)
    return s


def open_ws(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET /__ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key +
              b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = recv_until(s, b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"no upgrade: {head[:200]!r}")
    return s


OPENERS = {"h1": open_h1, "h2": open_h2, "ws": open_ws}


def measure(name: str, cmd: list[str], d: str, up: int, kind: str, n: int) -> tuple[float, float]:
    port = free_port()
    conf = f"{d}/{name}-{kind}.conf"
    with open(conf, "w") as f:
        # HTTP/2 without TLS: Debian's nginx (1.22) knows only `listen ... http2`, which
        # makes the port HTTP/2-only; truehop has nginx 1.25.1+'s `http2 on`
        h2 = kind == "h2"
        f.write(CONF.format(d=d, name=name, up=up, port=port, conns=3 * n + 100,
                            nofile=3 * n + 200,
                            listen_h2=" http2" if h2 and name == "nginx" else "",
                            http2="\n        http2 on;" if h2 and name != "nginx" else ""))
    with open(f"{d}/{name}-{kind}.stderr", "wb") as err:
        p = subprocess.Popen([*cmd, "-p", d + "/", "-c", conf], stdout=subprocess.DEVNULL,
                             stderr=err, start_new_session=True)
    socks: list[socket.socket] = []
    try:
        try:
            wait_port(port, 60)
        except RuntimeError:
            with open(f"{d}/{name}-{kind}.stderr") as f:
                raise RuntimeError(f"{name} did not start: {f.read()[-2000:]}") from None
        w = worker_pid(p.pid)
        for _ in range(20):       # warm the worker's code paths and allocator
            OPENERS[kind](port).close()
        time.sleep(1)
        before = rss_kib(w)
        for _ in range(n):
            socks.append(OPENERS[kind](port))
        time.sleep(2)
        after = rss_kib(w)
        for s in socks:
            s.close()
        socks.clear()
        time.sleep(5)
        released = rss_kib(w)
        return (after - before) / n, (after - released) / n
    finally:
        for s in socks:
            s.close()
        os.killpg(p.pid, signal.SIGQUIT)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--kinds", default="h1,h2,ws")
    ap.add_argument("--truehop", default=f"{ROOT}/.venv/bin/python -m truehop")
    args = ap.parse_args()
    want = 6 * args.n + 500
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
    except (ValueError, OSError):
        sys.exit(f"need a file-descriptor limit of {want} (run as root or raise ulimit -n)")
    d = tempfile.mkdtemp(prefix="truehop-mem-")
    os.chmod(d, 0o1777)
    app_port = free_port()
    app = subprocess.Popen([sys.executable, "-m", "truehop.demo.app", "--host", "127.0.0.1",
                            "--port", str(app_port), "--name", "mem"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(app_port, 30)
        contestants = {"nginx": [nginx_bin()], "truehop": shlex.split(args.truehop)}
        print(f"{'kind':6} {'proxy':8} {'KiB/conn':>9} {'kept after close':>17} {'x nginx':>8}")
        for kind in args.kinds.split(","):
            base = None
            for name, cmd in contestants.items():
                per, kept = measure(name, cmd, d, app_port, kind, args.n)
                ratio = "" if base is None else f"{per / base:8.1f}" if base > 0 else "     n/a"
                base = per if base is None else base
                print(f"{kind:6} {name:8} {per:9.1f} {kept:17.1f} {ratio:>8}", flush=True)
    finally:
        app.terminate()
        app.wait(10)
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
