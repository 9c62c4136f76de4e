#!/usr/bin/env python3
"""truehop against nginx, side by side, in one run.

Both proxies get the same one-worker config in front of the same upstream (an nginx instance
answering from memory, so the upstream is never the bottleneck). The load generator (wrk) and
the upstream share CPU 0; the proxy under test runs alone on CPU 1. For each response size the
script prints requests/s and the proxy's CPU time per request (user+sys of the proxy's
processes, read from /proc), and the truehop/nginx ratios. A third contestant, the bare
uvloop + httptools relay in bench/bare_relay.py, measures the floor for a Python proxy.
truehop runs twice when `make compiled` has been run: as installed (pure Python, "truehop")
and as the mypyc build of the same sources in .venv/compiled ("truehop-c").

    python bench/proxy_vs_nginx.py [--duration 10] [--connections 50] [--sizes 0,65536]

Needs wrk and nginx (apt-get install wrk nginx). Loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"port {port} never opened")


def cpu_seconds(pids: list[int]) -> float:
    tck = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tck
        except OSError:
            pass
    return total


def children(pid: int) -> list[int]:
    out = [pid]
    try:
        kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        for k in kids.split():
            out.extend(children(int(k)))
    except OSError:
        pass
    return out


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGQUIT (graceful for nginx and truehop), then kill what is still there after 5 s."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGQUIT)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


def nginx_bin() -> str:
    for c in ("/usr/sbin/nginx", shutil.which("nginx") or ""):
        if c and os.path.exists(c):
            return c
    sys.exit("nginx not found: apt-get install nginx")


UPSTREAM_CONF = """
worker_processes 1;
daemon off;
pid {d}/upstream.pid;
error_log {d}/upstream-error.log error;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        keepalive_requests 100000;
        location = /small {{ return 200 "hello, world\\n"; }}
        location /big/ {{ alias {d}/data/; }}
    }}
}}
"""

PROXY_CONF = """
worker_processes 1;
daemon off;
pid {d}/{name}.pid;
error_log {d}/{name}-error.log error;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    upstream app {{
        server 127.0.0.1:{up};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
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


def run_wrk(port: int, path: str, duration: int, conns: int) -> float:
    out = subprocess.run(["taskset", "-c", "0", "wrk", "-t1", f"-c{conns}", f"-d{duration}s",
                          f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if errs:
        print(f"    wrk reported: {errs.group(0)}")
    total = re.search(r"(\d+) requests in", out)
    return float(m.group(1)) if m else 0.0 if not total else 0.0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--sizes", default="0,65536")
    ap.add_argument("--no-bare", dest="bare", action="store_false",
                    help="skip the bare uvloop+httptools relay (bench/bare_relay.py)")
    ap.add_argument("--also", action="append", default=[], metavar="NAME=DIR",
                    help="one more truehop, run from DIR (e.g. the mypyc build of an older "
                         "commit, pip install --target DIR): compares versions in one run")
    ap.add_argument("--no-pure", dest="pure", action="store_false",
                    help="skip the pure-Python truehop")
    ap.add_argument("--no-compiled", dest="compiled", action="store_false",
                    help="skip truehop's mypyc build (.venv/compiled, made by `make compiled`)")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk")
    d = tempfile.mkdtemp(prefix="truehop-bench-")
    os.chmod(d, 0o755)  # nginx workers run as an unprivileged user
    os.makedirs(f"{d}/data", mode=0o755)
    sizes = [int(x) for x in args.sizes.split(",")]
    for size in sizes:
        if size:
            with open(f"{d}/data/{size}", "wb") as f:
                f.write(os.urandom(size))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        up = free_port()
        with open(f"{d}/upstream.conf", "w") as f:
            f.write(UPSTREAM_CONF.format(d=d, port=up))
        procs.append(subprocess.Popen(["taskset", "-c", "0", nginx_bin(), "-p", d + "/", "-c",
                                       f"{d}/upstream.conf"]))
        wait_port(up)
        results: dict[tuple[str, int], tuple[float, float]] = {}
        python = os.path.join(ROOT, ".venv", "bin", "python")
        compiled = os.path.join(ROOT, ".venv", "compiled")     # `make compiled`
        truehops = (["truehop"] if args.pure else []) + (["truehop-c"] if args.compiled and os.path.isdir(compiled)
                                  else [])
        also = dict(a.split("=", 1) for a in args.also)
        truehops += list(also)
        contestants = ["nginx", *truehops] + (["bare"] if args.bare else [])
        for name in contestants:
            port = free_port()
            env = dict(os.environ)
            if name == "bare":
                cmd = [sys.executable, os.path.join(HERE, "bare_relay.py"), str(port), str(up)]
            else:
                conf = f"{d}/{name}.conf"
                with open(conf, "w") as f:
                    f.write(PROXY_CONF.format(d=d, name=name, up=up, port=port))
                cmd = [nginx_bin()] if name == "nginx" else [python, "-m", "truehop"]
                cmd += ["-p", d + "/", "-c", conf]
                if name == "truehop-c":
                    env["PYTHONPATH"] = compiled    # the mypyc build of the same sources
                elif name in also:
                    env["PYTHONPATH"] = os.path.abspath(also[name])
            p = subprocess.Popen(["taskset", "-c", "1", *cmd], env=env)
            procs.append(p)
            wait_port(port)
            for size in sizes:
                path = "/small" if size == 0 else f"/big/{size}"
                run_wrk(port, path, 2, args.connections)  # warm-up
                pids = children(p.pid)
                c0 = cpu_seconds(pids)
                t0 = time.monotonic()
                rps = run_wrk(port, path, args.duration, args.connections)
                elapsed = time.monotonic() - t0
                cpu = cpu_seconds(pids) - c0
                reqs = rps * args.duration
                per_req_us = cpu / reqs * 1e6 if reqs else float("inf")
                results[(name, size)] = (rps, per_req_us)
                print(f"{name:8s} size={size:6d}  {rps:10.0f} req/s  "
                      f"{per_req_us:7.1f} us CPU/request  (cpu {cpu:.2f}s over {elapsed:.1f}s)")
            p.send_signal(signal.SIGQUIT)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        print()
        for size in sizes:
            n = results[("nginx", size)]
            for name in truehops:
                t = results[(name, size)]
                print(f"size={size:6d}  {name + '/nginx:':16s} throughput {t[0] / n[0]:.2f}x, "
                      f"CPU per request {t[1] / n[1]:.2f}x")
            if ("bare", size) in results:
                b = results[("bare", size)]
                print(f"size={size:6d}  {'bare/nginx:':16s} throughput {b[0] / n[0]:.2f}x, "
                      f"CPU per request {b[1] / n[1]:.2f}x; " + "; ".join(
                          f"{name}/bare CPU {results[(name, size)][1] / b[1]:.2f}x"
                          for name in truehops))
    finally:
        stop_all(procs)
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
