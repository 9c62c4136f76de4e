#!/usr/bin/env python3
"""User-space instructions per proxied request, counted by valgrind's callgrind.

Wall-clock and CPU-time figures move with whatever else the machine runs (here: up to 30%
between runs). Instruction counts do not: the same code, config and requests give the same
count within about 0.5%. So this is the number to compare two versions of the hot path by.

It runs truehop's worker under callgrind twice, in front of an nginx upstream answering from
memory, with 300 warm-up requests and then N1 or N2 requests from 4 keep-alive clients in
lockstep, and prints (total(N2) - total(N1)) / (N2 - N1): start-up, warm-up and shutdown
cancel out. With --top it also prints the C functions the difference is spent in
(_PyEval_EvalFrameDefault is the bytecode interpreter: Python code as such).

    python bench/instructions_per_request.py [--src DIR] [--top 20] [--n1 400 --n2 2400]
        [--keep DIR] [--bare]

--src runs another checkout's src/ (e.g. a `git worktree` of an older commit) with this
venv, to compare versions; `--src .venv/compiled` runs the mypyc build (`make compiled`). Needs valgrind and nginx. Loopback only; about 1-2 minutes.
Kernel time (syscalls) is not counted: this measures the Python side only.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from proxy_vs_nginx import (  # noqa: E402
    UPSTREAM_CONF,
    free_port,
    nginx_bin,
    stop_all,
    wait_port,
)

PROXY_CONF = """
user root;
worker_processes 1;
daemon off;
pid {d}/truehop.pid;
error_log {d}/truehop-error.log error;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    upstream app {{
        server 127.0.0.1:{up};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        keepalive_requests 100000;
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""

REQUEST = (b"GET /small HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\n"
           b"Accept: */*\r\n\r\n")


def drive(port: int, n: int) -> None:
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
    for s in socks:
        s.settimeout(60)
    for _ in range(n // 4):
        for s in socks:
            s.sendall(REQUEST)
        for s in socks:
            buf = b""
            while not buf.endswith(b"hello, world\n"):
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError("truehop closed the connection")
                buf += chunk
    for s in socks:
        s.close()


def run_once(d: str, src: str | None, up: int, n: int) -> str:
    """One callgrind run of truehop's worker (src) or, with src None, of bench/bare_relay.py."""
    port = free_port()
    with open(f"{d}/truehop.conf", "w") as conf:
        conf.write(PROXY_CONF.format(d=d, up=up, port=port))
    out = f"{d}/cg.%p"
    python = os.path.join(ROOT, ".venv", "bin", "python")
    if src is None:
        cmd = [python, os.path.join(HERE, "bare_relay.py"), str(port), str(up)]
        env = dict(os.environ)
    else:
        cmd = [python, "-m", "truehop", "-p", d + "/", "-c", f"{d}/truehop.conf"]
        env = dict(os.environ, PYTHONPATH=src)
    before = set(os.listdir(d))
    p = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                          "--dump-instr=no", "--collect-jumps=no", *cmd],
                         env=env, stderr=subprocess.DEVNULL)
    master = p.pid   # the bare relay is one process: valgrind runs it as this pid
    try:
        wait_port(port, timeout=180)
        if src is not None:
            deadline = time.monotonic() + 30
            while not os.path.exists(f"{d}/truehop.pid") and time.monotonic() < deadline:
                time.sleep(0.1)
            with open(f"{d}/truehop.pid") as pidfile:
                master = int(pidfile.read())
            before = set(os.listdir(d))
        drive(port, 300)
        drive(port, n)
        # truehop's master stops its worker; the bare relay ends on KeyboardInterrupt
        os.kill(master, signal.SIGQUIT if src is not None else signal.SIGINT)
        p.wait(120)
    finally:
        if p.poll() is None:
            p.kill()
    files = [f for f in os.listdir(d) if f.startswith("cg.") and f not in before]
    worker = [f for f in files if f != f"cg.{master}"] if src is not None else files
    if not worker:
        raise RuntimeError("no callgrind output from the worker")
    path = os.path.join(d, worker[0])
    final = os.path.join(d, f"run-{n}.cg")
    os.replace(path, final)
    for f in files:
        if os.path.exists(os.path.join(d, f)):
            os.unlink(os.path.join(d, f))
    return final


def functions(path: str) -> tuple[int, collections.Counter[str]]:
    text = subprocess.run(["callgrind_annotate", "--threshold=100", path],
                          capture_output=True, text=True).stdout
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(.*)", line)
        if not m:
            continue
        n = int(m.group(1).replace(",", ""))
        name = m.group(2)
        if "PROGRAM TOTALS" in name:
            total = n
            continue
        name = re.sub(r"^.*/(?=[^/]*:)", "", re.sub(r" \[.*\]$", "", name))
        counts[name] += n
    return total, counts


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default=os.path.join(ROOT, "src"))
    ap.add_argument("--bare", action="store_true",
                    help="count bench/bare_relay.py instead: the floor, in the same unit")
    ap.add_argument("--n1", type=int, default=400)
    ap.add_argument("--n2", type=int, default=2400)
    ap.add_argument("--top", type=int, default=0)
    ap.add_argument("--keep", metavar="DIR",
                    help="copy the two callgrind files here, for callgrind_annotate --tree=caller")
    args = ap.parse_args()
    for tool in ("valgrind", "callgrind_annotate"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install valgrind")
    d = tempfile.mkdtemp(prefix="truehop-cg-")
    os.chmod(d, 0o1777)  # the worker may run as another user
    os.makedirs(f"{d}/data", exist_ok=True)
    os.makedirs(f"{d}/logs", exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        up = free_port()
        with open(f"{d}/upstream.conf", "w") as f:
            f.write(UPSTREAM_CONF.format(d=d, port=up))
        procs.append(subprocess.Popen([nginx_bin(), "-p", d + "/", "-c", f"{d}/upstream.conf"]))
        wait_port(up)
        t0 = time.monotonic()
        src = None if args.bare else args.src
        a = functions(run_once(d, src, up, args.n1))
        b = functions(run_once(d, src, up, args.n2))
        n = args.n2 - args.n1
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            for name in (f"run-{args.n1}.cg", f"run-{args.n2}.cg"):
                shutil.copy(os.path.join(d, name), os.path.join(args.keep, name))
        print("bench/bare_relay.py" if args.bare else f"src: {args.src}")
        print(f"{(b[0] - a[0]) / n:.0f} instructions per request "
              f"(callgrind, {args.n1} vs {args.n2} requests, {time.monotonic() - t0:.0f} s)")
        if args.top:
            diff = {k: (b[1][k] - a[1][k]) / n for k in b[1]}
            for name, v in sorted(diff.items(), key=lambda kv: -kv[1])[:args.top]:
                print(f"{v:10.0f}  {name[:110]}")
    finally:
        stop_all(procs)
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
