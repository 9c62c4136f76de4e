"""The proxy core end to end: the real truehop process, a recording upstream, real clients."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
from harness import free_port, parse_responses, raw_request

# The reference site's proxy block, served over plain HTTP (TLS has its own tests).
REFERENCE_PLAIN = """
include mime.types;
map $http_upgrade $connection_upgrade {
    default upgrade;
    ''      '';
}
upstream app_backend {
    server 127.0.0.1:@@A@@;
    server 127.0.0.1:@@B@@;
    keepalive 32;
}
server {
    listen 127.0.0.1:@@PORT@@;
    server_name app.example.test;
    access_log access.log;

    location /static/ {
        alias public/static/;
        access_log off;
        expires 30d;
    }
    location / {
        proxy_pass http://app_backend;
        proxy_set_header Host              $host;
        proxy_set_header X-Real-IP         $remote_addr;
        proxy_set_header X-Forwarded-For   $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Host  $host;
        proxy_set_header Upgrade           $http_upgrade;
        proxy_set_header Connection        $connection_upgrade;
        proxy_http_version 1.1;
        proxy_buffering       on;
        proxy_connect_timeout 5s;
        proxy_read_timeout    60s;
    }
    location /events/ {
        proxy_pass http://app_backend;
        proxy_set_header Host $host;
        proxy_buffering    off;
        proxy_read_timeout 1h;
    }
    location /slow/ {
        proxy_pass http://app_backend;
        proxy_read_timeout 1s;
        proxy_next_upstream off;
    }
}
"""


@pytest.fixture
def site(truehop, upstreams, tmp_path):
    a, b = upstreams(2)
    (tmp_path / "public" / "static").mkdir(parents=True)
    (tmp_path / "public" / "static" / "app.css").write_text("body { color: red }\n")
    (tmp_path / "public" / "secret.txt").write_text("secret\n")
    port = free_port()
    tp = truehop(REFERENCE_PLAIN, a=a.port, b=b.port, port=port)
    return tp, a, b, port


def all_records(*apps):
    return [r for app in apps for r in app.records]


def test_forwarding_headers(site):
    tp, a, b, port = site
    r = httpx.get(f"http://127.0.0.1:{port}/hello?x=1",
                  headers={"Host": "App.Example.Test:8080", "X-Forwarded-For": "198.51.100.7"})
    assert r.status_code == 200
    got = r.json()
    h = {k.lower(): v for k, v in got["headers"]}
    assert got["target"] == "/hello?x=1"
    assert h["host"] == "app.example.test"
    assert h["x-real-ip"] == "127.0.0.1"
    assert h["x-forwarded-for"] == "198.51.100.7, 127.0.0.1"
    assert h["x-forwarded-proto"] == "http"
    assert h["x-forwarded-host"] == "app.example.test"
    # plain request: no Connection: upgrade, no Upgrade, HTTP/1.1 upstream
    assert "upgrade" not in h
    assert "connection" not in h
    assert got["version"] == "1.1"
    assert r.headers["server"].startswith("truehop")
    assert "date" in r.headers


def test_hop_by_hop_headers_are_not_forwarded(site):
    tp, a, b, port = site
    data = (b"GET /x HTTP/1.1\r\nHost: app.example.test\r\nConnection: keep-alive, X-Secret\r\n"
            b"X-Secret: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n"
            b"TE: trailers\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nX-Kept: yes\r\n\r\n")
    raw, _ = raw_request(port, data, until=b"}")
    resp = parse_responses(raw)[0]
    assert resp.status == 200
    h = {k.lower(): v for k, v in json.loads(resp.body)["headers"]}
    for gone in ("x-secret", "keep-alive", "proxy-connection", "te", "http2-settings"):
        assert gone not in h, gone
    assert h["x-kept"] == "yes"


def test_keepalive_reuses_upstream_connections(site):
    tp, a, b, port = site
    with httpx.Client() as c:
        for _ in range(200):
            assert c.get(f"http://127.0.0.1:{port}/k").status_code == 200
    assert len(all_records(a, b)) == 200
    opened = a.connections_opened + b.connections_opened
    assert opened <= 8, opened


def test_round_robin_splits_evenly(site):
    tp, a, b, port = site
    with httpx.Client() as c:
        for _ in range(100):
            c.get(f"http://127.0.0.1:{port}/rr")
    assert len(a.records) == 50
    assert len(b.records) == 50


def test_static_never_reaches_app_and_has_expiry(site):
    tp, a, b, port = site
    r = httpx.get(f"http://127.0.0.1:{port}/static/app.css")
    assert r.status_code == 200
    assert r.text == "body { color: red }\n"
    assert r.headers["content-type"] == "text/css"
    assert r.headers["cache-control"] == "max-age=2592000"
    assert "expires" in r.headers
    assert "etag" in r.headers and "last-modified" in r.headers
    assert httpx.get(f"http://127.0.0.1:{port}/static/missing.css").status_code == 404
    assert all_records(a, b) == []
    # conditional request
    r2 = httpx.get(f"http://127.0.0.1:{port}/static/app.css",
                   headers={"If-None-Match": r.headers["etag"]})
    assert r2.status_code == 304
    # a range
    r3 = httpx.get(f"http://127.0.0.1:{port}/static/app.css", headers={"Range": "bytes=0-3"})
    assert r3.status_code == 206 and r3.text == "body"


def test_sse_events_arrive_as_sent(site):
    tp, a, b, port = site
    times = []
    with httpx.stream("GET", f"http://127.0.0.1:{port}/events/__sse?n=3&interval_ms=400") as r:
        assert r.status_code == 200
        for chunk in r.iter_raw():
            if b"data:" in chunk:
                times.append(time.monotonic())
    assert len(times) >= 3
    assert times[-1] - times[0] > 0.6  # streamed, not delivered in one piece at the end


def test_read_timeout_gives_504(site):
    tp, a, b, port = site
    t0 = time.monotonic()
    r = httpx.get(f"http://127.0.0.1:{port}/slow/__slow?ms=3000", timeout=10)
    elapsed = time.monotonic() - t0
    assert r.status_code == 504
    assert 0.8 < elapsed < 2.5
    assert "upstream timed out" in tp.error_log()


def test_dead_upstream_gives_502_at_once(truehop):
    dead = free_port()
    port = free_port()
    tp = truehop("""
server {
    listen 127.0.0.1:@@PORT@@;
    location / { proxy_pass http://127.0.0.1:@@DEAD@@; }
}""", port=port, dead=dead)
    t0 = time.monotonic()
    r = httpx.get(f"http://127.0.0.1:{port}/")
    assert r.status_code == 502
    assert time.monotonic() - t0 < 1.0
    assert "connect() failed" in tp.error_log()


def test_failover_to_the_other_peer(truehop, upstream):
    dead = free_port()
    port = free_port()
    truehop("""
upstream pool { server 127.0.0.1:@@DEAD@@; server 127.0.0.1:@@UP@@; }
server {
    listen 127.0.0.1:@@PORT@@;
    location / { proxy_pass http://pool; }
}""", port=port, dead=dead, up=upstream.port)
    with httpx.Client() as c:
        for _ in range(6):
            assert c.get(f"http://127.0.0.1:{port}/").status_code == 200
    assert len(upstream.records) == 6


def test_truncated_upstream_body_aborts_client(site):
    tp, a, b, port = site
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"http://127.0.0.1:{port}/__truncate")
    assert "upstream prematurely closed" in tp.error_log()


def test_access_log_shows_client_address(site):
    tp, a, b, port = site
    httpx.get(f"http://127.0.0.1:{port}/logged", headers={"User-Agent": "probe/1"})
    line = tp.wait_for_log("GET /logged", log="access")
    assert line
    log = tp.access_log("access.log")
    assert log.startswith("127.0.0.1 - - [")
    assert '"GET /logged HTTP/1.1" 200' in log and '"probe/1"' in log


def test_websocket_echo(site):
    import websockets.sync.client as ws_client
    tp, a, b, port = site
    with ws_client.connect(f"ws://127.0.0.1:{port}/__ws") as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        ws.send(b"\x00\x01")
        assert ws.recv(timeout=5) == b"\x00\x01"
    rec = all_records(a, b)[-1]
    assert rec.header("upgrade") == "websocket"
    assert rec.header("connection") == "upgrade"


def test_pipelined_requests_answered_in_order(site):
    tp, a, b, port = site
    data = b"".join(f"GET /p{i} HTTP/1.1\r\nHost: app.example.test\r\n\r\n".encode()
                    for i in range(3))
    raw, _ = raw_request(port, data, timeout=2.0)
    resps = parse_responses(raw)
    assert [json.loads(r.body)["target"] for r in resps] == ["/p0", "/p1", "/p2"]


def test_request_bodies_content_length_and_chunked(site):
    tp, a, b, port = site
    r = httpx.post(f"http://127.0.0.1:{port}/upload", content=b"x" * 100000)
    assert r.status_code == 200
    assert r.json()["body_len"] == 100000

    def gen():
        yield b"abc"
        yield b"defg"
    r = httpx.post(f"http://127.0.0.1:{port}/upload", content=gen())
    assert r.json()["body_len"] == 7
    rec = all_records(a, b)[-1]
    assert rec.header("content-length") == "7"          # re-framed, buffered by default
    assert rec.header("transfer-encoding") is None


def test_too_large_body_is_413(truehop, upstream):
    port = free_port()
    truehop("""
server {
    listen 127.0.0.1:@@PORT@@;
    client_max_body_size 1k;
    location / { proxy_pass http://127.0.0.1:@@UP@@; }
}""", port=port, up=upstream.port)
    r = httpx.post(f"http://127.0.0.1:{port}/", content=b"x" * 5000)
    assert r.status_code == 413
    assert upstream.records == []


def test_malformed_requests_never_reach_upstream(site):
    tp, a, b, port = site
    cases = [
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"0\r\n\r\nG", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),                                     # no Host
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),               # two Hosts
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
        (b"GET /../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    ]
    for data, status in cases:
        raw, closed = raw_request(port, data)
        resps = parse_responses(raw)
        assert resps and resps[0].status == status, (data, raw[:80])
        assert closed, data
    assert all_records(a, b) == []


def test_head_and_http10(site):
    tp, a, b, port = site
    raw, closed = raw_request(port, b"HEAD /h HTTP/1.1\r\nHost: app.example.test\r\n"
                                    b"Connection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200")
    assert raw.endswith(b"\r\n\r\n")  # no body
    raw, closed = raw_request(port, b"GET /old HTTP/1.0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200")
    assert closed


def test_expect_100_continue(site):
    tp, a, b, port = site
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: app.example.test\r\nContent-Length: 5\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        s.settimeout(3)
        first = s.recv(100)
        assert first.startswith(b"HTTP/1.1 100 Continue")
        s.sendall(b"hello")
        rest = b""
        while b"body_len" not in rest:
            rest += s.recv(65536)
        assert b'"body_len": 5' in rest or b'"body_len":5' in rest


URI_RULES = """
upstream up { server 127.0.0.1:@@UP@@; }
server {
    listen 127.0.0.1:@@PORT@@;
    location /api/ { proxy_pass http://up/v1/; }
    location /raw/ { proxy_pass http://up; }
    location /rw/ {
        rewrite ^/rw/(.*)$ /rewritten/$1 break;
        proxy_pass http://up;
    }
    location = /ret { return 200 "plain text\\n"; }
    location = /redir { return 301 /elsewhere; }
    location = /gone { return 444; }
    location /err/ { proxy_pass http://up; proxy_intercept_errors on; error_page 503 = /fallback; }
    location = /fallback { return 200 "fallback page"; }
    location ~ \\.php$ { proxy_pass http://up; }
}
"""


def test_uri_replacement_rules(truehop, upstream):
    port = free_port()
    truehop(URI_RULES, port=port, up=upstream.port)
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(base + "/api/users?id=1").json()["target"] == "/v1/users?id=1"
    assert httpx.get(base + "/raw/a%20b//c?q").json()["target"] == "/raw/a%20b//c?q"
    assert httpx.get(base + "/rw/thing?x=1").json()["target"] == "/rewritten/thing?x=1"
    assert httpx.get(base + "/x.php").json()["target"] == "/x.php"


def test_return_and_error_page(truehop, upstream):
    port = free_port()
    truehop(URI_RULES, port=port, up=upstream.port)
    base = f"http://127.0.0.1:{port}"
    r = httpx.get(base + "/ret")
    assert r.status_code == 200 and r.text == "plain text\n"
    r = httpx.get(base + "/redir")
    assert r.status_code == 301
    assert r.headers["location"] == f"http://127.0.0.1:{port}/elsewhere"
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(base + "/gone")
    r = httpx.get(base + "/err/__status?code=503")
    assert r.status_code == 200 and r.text == "fallback page"


def test_proxy_redirect_default(truehop, upstream):
    port = free_port()
    truehop("""
upstream up { server 127.0.0.1:@@UP@@; }
server {
    listen 127.0.0.1:@@PORT@@;
    server_name site.test;
    location /one/ { proxy_pass http://up/two/; }
}""", port=port, up=upstream.port)
    r = httpx.get(f"http://127.0.0.1:{port}/one/__redirect?to=http://up/two/next&code=302",
                  headers={"Host": "site.test"})
    assert r.status_code == 302
    assert r.headers["location"] == f"http://site.test:{port}/one/next"


def test_slow_upstream_in_flight_while_others_served(site):
    tp, a, b, port = site
    results = {}

    def slow():
        results["slow"] = httpx.get(f"http://127.0.0.1:{port}/__slow?ms=1500", timeout=10)
    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    assert httpx.get(f"http://127.0.0.1:{port}/fast").status_code == 200
    assert time.monotonic() - t0 < 0.5
    t.join()
    assert results["slow"].status_code == 200


def test_client_gone_while_upstream_slow_is_499_at_once(site):
    tp, a, b, port = site
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /__slow?ms=3000 HTTP/1.1\r\nHost: app.example.test\r\n\r\n")
    time.sleep(0.3)
    s.close()
    t0 = time.monotonic()
    line = tp.wait_for_log('"GET /__slow?ms=3000 HTTP/1.1" 499', log="access", timeout=2.5)
    assert line and time.monotonic() - t0 < 2.0


def test_auto_redirect_for_proxied_prefix_location(truehop, upstream):
    port = free_port()
    truehop("""
server {
    listen 127.0.0.1:@@PORT@@;
    location /api/ { proxy_pass http://127.0.0.1:@@UP@@; }
    location / { return 200 "root"; }
}""", port=port, up=upstream.port)
    r = httpx.get(f"http://127.0.0.1:{port}/api?x=1")
    assert r.status_code == 301
    assert r.headers["location"] == f"http://127.0.0.1:{port}/api/?x=1"


def test_worker_connections_bound(truehop, tmp_path):
    port = free_port()
    tp = truehop("""
worker_processes 1;
events { worker_connections 4; }
http { server { listen 127.0.0.1:@@PORT@@; location / { return 200 "ok"; } } }
""", port=port, allow_log=("[alert]",))
    assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200  # readiness probe gone
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
    for s in socks:
        # a request begun: not reusable (a connection that has sent nothing would be closed
        # to make room for the new one, as nginx's ngx_drain_connections does)
        s.sendall(b"GET / HTTP/1.1\r\n")
    time.sleep(0.3)
    extra = socket.create_connection(("127.0.0.1", port))
    extra.settimeout(2)
    extra.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    try:
        got = extra.recv(100)
    except (ConnectionResetError, TimeoutError):
        got = b""
    assert got == b""
    assert "worker_connections are not enough" in tp.wait_for_log("worker_connections")
    for s in socks:
        s.close()
    extra.close()


def test_pipelining_flood_is_bounded(site):
    tp, a, b, port = site
    s = socket.create_connection(("127.0.0.1", port))
    one = b"GET /f HTTP/1.1\r\nHost: app.example.test\r\n\r\n"
    s.setblocking(False)
    sent = 0
    try:
        for _ in range(20000):  # ~900 KB of requests, never reading a response
            sent += s.send(one)
    except BlockingIOError:
        pass
    s.close()
    # the worker is still healthy
    assert httpx.get(f"http://127.0.0.1:{port}/after").status_code == 200
