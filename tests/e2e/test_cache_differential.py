"""Differential: the same cache config and request sequences through nginx and truehop, each
in front of its own counting upstream (cache_upstream.py); compared: the
$upstream_cache_status sequence and how many requests reached the upstream, i.e. which
responses got cached. Skipped where nginx is not installed.

Debian's nginx is 1.22; truehop follows 2.10. Left out, deliberately: X-Accel-Expires
together with Cache-Control: no-cache (1.22 decides by the order of the fields, 1.23 and
later let X-Accel-Expires win whatever the order).
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from cache_upstream import CacheUpstream
from harness import free_port, nginx_binary

pytestmark = pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed")

CONF = """
proxy_cache_path @@DIR@@/cache levels=1:2 keys_zone=one:1m;
server {
    listen 127.0.0.1:@@PORT@@;
    add_header X-Cache $upstream_cache_status always;
    location / {
        proxy_pass http://127.0.0.1:@@UP@@;
        proxy_http_version 1.1;
        proxy_cache one;
        proxy_cache_valid 200 1s;
        proxy_cache_valid 404 1m;
        proxy_cache_revalidate on;
        proxy_cache_use_stale error http_500;
        proxy_cache_bypass $arg_bypass;
        proxy_no_cache $arg_nostore;
        proxy_cache_min_uses 1;
    }
    location /min/ {
        proxy_pass http://127.0.0.1:@@UP@@;
        proxy_cache one;
        proxy_cache_valid 200 1m;
        proxy_cache_min_uses 2;
    }
}
"""

# (path, requests, pause before the last one): each gives a status sequence
CASES = [
    ("/valid", 3, 0.0),
    ("/cc?cc=max-age%3D60", 2, 0.0),
    ("/nocache?cc=no-cache", 2, 0.0),
    ("/private?cc=private,max-age%3D60", 2, 0.0),
    ("/nostore?cc=no-store", 2, 0.0),
    ("/ma0?cc=max-age%3D0", 2, 0.0),
    ("/cookie?cookie=1", 2, 0.0),
    ("/varystar?vary=*", 2, 0.0),
    ("/expires?expires=60", 2, 0.0),
    ("/expired?expires=past", 2, 0.0),
    ("/xae?xae=60", 2, 0.0),
    ("/xae0?xae=0", 2, 0.0),
    ("/nf?status=404", 2, 0.0),
    ("/ise?status=500", 2, 0.0),
    ("/bypass?bypass=1", 2, 0.0),
    ("/nostore-arg?nostore=1", 2, 0.0),
    ("/min/a", 3, 0.0),
    ("/expire", 2, 2.1),
    ("/reval?etag=v1", 2, 2.1),
]


def run(make, up: CacheUpstream, tmp_path: Path, label: str) -> dict[str, tuple[list[str], int]]:  # type: ignore[no-untyped-def]
    port = free_port()
    make(CONF, PORT=port, UP=up.port, DIR=tmp_path / label)
    base = f"http://127.0.0.1:{port}"
    out: dict[str, tuple[list[str], int]] = {}
    with httpx.Client(timeout=10) as c:
        for path, n, pause in CASES:
            seq = []
            for i in range(n):
                if pause and i == n - 1:
                    time.sleep(pause)
                seq.append(c.get(base + path).headers.get("x-cache", ""))
            out[path] = (seq, up.count(path.split("?")[0]))
        # stale on a 500 after expiry
        c.get(base + "/stale")
        time.sleep(2.1)
        up.fail["/stale"] = 500
        r = c.get(base + "/stale")
        out["/stale"] = ([r.headers.get("x-cache", ""), str(r.status_code)], up.count("/stale"))
    return out


def test_cache_status_sequences_match_nginx(truehop, nginx, tmp_path) -> None:
    (tmp_path / "n").mkdir()
    (tmp_path / "t").mkdir()
    with CacheUpstream() as up_n:
        ngx = run(nginx, up_n, tmp_path, "n")
    with CacheUpstream() as up_t:
        ours = run(truehop, up_t, tmp_path, "t")
    diffs = {k: (ngx[k], ours[k]) for k in ngx if ngx[k] != ours[k]}
    assert not diffs, diffs
