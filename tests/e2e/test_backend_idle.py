"""Backends that close idle keep-alive connections sooner than the pool's keepalive_timeout
(Node, uvicorn: 5 s; here 1 s), and backends that frame a response both ways: the live
detector names the upstream and the fix once; a `Keep-Alive: timeout=N` the backend sends
retires the pooled connection before N, so POSTs never meet a closing connection."""

from __future__ import annotations

import re
import time

import httpx
from harness import free_port
from raw_upstreams import RawUpstream, cl_and_te, idle_closer

CONF = """
upstream app { server 127.0.0.1:@@UP@@; keepalive 4; }
server {
    listen 127.0.0.1:@@PORT@@;
    location / {
        proxy_pass http://app;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
}
"""


def posts(port: int, gaps: list[float]) -> list[int]:
    out = []
    with httpx.Client() as c:
        for gap in [0.0, *gaps]:
            time.sleep(gap)
            out.append(c.post(f"http://127.0.0.1:{port}/form", content=b"a=1").status_code)
    return out


def test_keep_alive_timeout_header_retires_connections_before_the_backend_closes(truehop):
    with RawUpstream(idle_closer(1.0, keep_alive_header=True)) as up:
        port = free_port()
        tp = truehop(CONF, PORT=port, UP=up.port)
        # around the backend's idle timeout, where a reused connection meets its close
        gaps = [1.2, 1.0, 0.98, 1.0, 1.2, 0.99]
        assert posts(port, gaps) == [200] * (len(gaps) + 1)
        # every request after a gap went on a new connection: the pool retired the old one
        assert up.connections == len(gaps) + 1
        assert "[upstream-idle-close]" not in tp.error_log()
        assert "upstream prematurely closed" not in tp.error_log()


def test_backend_idle_close_is_named_once(truehop):
    with RawUpstream(idle_closer(1.0, keep_alive_header=False)) as up:
        port = free_port()
        tp = truehop(CONF, PORT=port, UP=up.port)
        assert posts(port, [1.2, 1.2, 1.2]) == [200] * 4
        line = tp.wait_for_log("[upstream-idle-close]")
        assert '[warn]' in line and 'upstream "app"' in line
        assert re.search(r"after about 1\.[0-2]s", line) and "keepalive_timeout 60s" in line
        assert re.search(r'fix: keepalive_timeout [5-7]00ms; in upstream "app"', line)
        assert re.search(r"\(upstream at \S+truehop\.conf:2\)", line)
        assert tp.error_log().count("[upstream-idle-close]") == 1


def test_backend_that_keeps_connections_is_not_named(truehop):
    with RawUpstream(idle_closer(30.0, keep_alive_header=False)) as up:
        port = free_port()
        tp = truehop(CONF, PORT=port, UP=up.port)
        assert posts(port, [0.3, 0.3, 0.3]) == [200] * 4
        assert up.connections == 1
        assert "[upstream-idle-close]" not in tp.error_log()


def test_content_length_and_transfer_encoding(truehop):
    with RawUpstream(cl_and_te) as up:
        port = free_port()
        tp = truehop(CONF, PORT=port, UP=up.port)
        r = httpx.get(f"http://127.0.0.1:{port}/report?x=1")
        assert r.status_code == 502
        line = tp.wait_for_log("[upstream-cl-and-te]")
        assert f'upstream "app" (127.0.0.1:{up.port}) answered GET /report' in line
        assert "location at " in line
        assert 'upstream sent "Content-Length" and "Transfer-Encoding"' in tp.error_log()


def test_well_framed_backend_is_not_named(truehop):
    with RawUpstream(idle_closer(30.0, keep_alive_header=False)) as up:
        port = free_port()
        tp = truehop(CONF, PORT=port, UP=up.port)
        assert httpx.get(f"http://127.0.0.1:{port}/report").status_code == 200
        assert "[upstream-cl-and-te]" not in tp.error_log()
