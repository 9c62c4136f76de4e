#!/usr/bin/env python3
"""The proxy cache's hit against nginx's hit, side by side (issue 18: within 1.5x of nginx's
CPU per request, about what a static file costs here).

Same rig as bench/proxy_vs_nginx.py (whose helpers it uses): an nginx upstream on CPU 0 with
wrk, the proxy under test alone on CPU 1, one worker. Each proxy caches `/small` (14 bytes)
and `/big/<size>` for an hour (`proxy_cache_valid 200 1h`); a warm-up fills the cache, then
wrk measures hits only (the upstream sees no request: checked from its access count). For
reference truehop also serves the same files as static files ("truehop-static"). Printed:
requests/s, CPU per request of the proxy's processes, and the ratios to nginx's hit.

    python bench/cache_hit_vs_nginx.py [--duration 10] [--connections 50] [--sizes 0,65536]

Needs wrk and nginx. Loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from proxy_vs_nginx import (  # noqa: E402
    ROOT,
    UPSTREAM_CONF,
    children,
    cpu_seconds,
    free_port,
    nginx_bin,
    run_wrk,
    stop_all,
    wait_port,
)

CACHE_CONF = """
worker_processes 1;
daemon off;
pid {d}/{name}.pid;
error_log {d}/{name}-error.log error;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    proxy_cache_path {d}/{name}-cache levels=1:2 keys_zone=bench:10m;
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
            proxy_cache bench;
            proxy_cache_valid 200 1h;
        }}
    }}
}}
"""

STATIC_CONF = """
worker_processes 1;
daemon off;
pid {d}/{name}.pid;
error_log {d}/{name}-error.log error;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        keepalive_requests 100000;
        location = /small {{ alias {d}/data/small; }}
        location /big/ {{ alias {d}/data/; }}
    }}
}}
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--sizes", default="0,65536")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk")
    d = tempfile.mkdtemp(prefix="truehop-cache-bench-")
    os.chmod(d, 0o755)
    os.makedirs(f"{d}/data", mode=0o755)
    with open(f"{d}/data/small", "wb") as f:
        f.write(b"hello, world\n")
    sizes = [int(x) for x in args.sizes.split(",")]
    for size in sizes:
        if size:
            with open(f"{d}/data/{size}", "wb") as f:
                f.write(os.urandom(size))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        up = free_port()
        with open(f"{d}/upstream.conf", "w") as f:
            f.write(UPSTREAM_CONF.format(d=d, port=up).replace(
                "access_log off;", f"access_log {d}/upstream-access.log;"))
        procs.append(subprocess.Popen(["taskset", "-c", "0", nginx_bin(), "-p", d + "/", "-c",
                                       f"{d}/upstream.conf"]))
        wait_port(up)
        python = os.path.join(ROOT, ".venv", "bin", "python")
        compiled = os.path.join(ROOT, ".venv", "compiled")
        contestants = ["nginx", "truehop"] + (["truehop-c"] if os.path.isdir(compiled) else [])
        contestants.append("truehop-static")
        results: dict[tuple[str, int], tuple[float, float]] = {}
        for name in contestants:
            port = free_port()
            env = dict(os.environ)
            conf = f"{d}/{name}.conf"
            text = STATIC_CONF if name == "truehop-static" else CACHE_CONF
            with open(conf, "w") as f:
                f.write(text.format(d=d, name=name, up=up, port=port))
            cmd = [nginx_bin()] if name == "nginx" else [python, "-m", "truehop"]
            cmd += ["-p", d + "/", "-c", conf]
            if name == "truehop-c":
                env["PYTHONPATH"] = compiled
            p = subprocess.Popen(["taskset", "-c", "1", *cmd], env=env)
            procs.append(p)
            wait_port(port)
            for size in sizes:
                path = "/small" if size == 0 else f"/big/{size}"
                run_wrk(port, path, 2, args.connections)       # fills the cache, warms up
                seen = _upstream_requests(d)
                pids = children(p.pid)
                c0 = cpu_seconds(pids)
                t0 = time.monotonic()
                rps = run_wrk(port, path, args.duration, args.connections)
                elapsed = time.monotonic() - t0
                cpu = cpu_seconds(pids) - c0
                missed = _upstream_requests(d) - seen
                reqs = rps * args.duration
                per_req_us = cpu / reqs * 1e6 if reqs else float("inf")
                results[(name, size)] = (rps, per_req_us)
                print(f"{name:14s} size={size:6d}  {rps:10.0f} req/s  {per_req_us:7.1f} us "
                      f"CPU/request  (cpu {cpu:.2f}s over {elapsed:.1f}s; upstream requests "
                      f"during the run: {missed})")
            p.send_signal(signal.SIGQUIT)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        print()
        for size in sizes:
            n = results[("nginx", size)]
            for name in contestants[1:]:
                t = results[(name, size)]
                print(f"size={size:6d}  {name + '/nginx hit:':24s} throughput {t[0] / n[0]:.2f}x, "
                      f"CPU per request {t[1] / n[1]:.2f}x")
    finally:
        stop_all(procs)
        shutil.rmtree(d, ignore_errors=True)
    return 0


def _upstream_requests(d: str) -> int:
    try:
        with open(f"{d}/upstream-access.log", "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
