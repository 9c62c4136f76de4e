"""The demo upstream app, tested directly (no proxy), plus the harness helpers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import trustme
import websockets
from harness import (
    NginxProcess,
    ProcessFailed,
    _ServerProcess,
    free_port,
    free_ports,
    listen_ports,
    nginx_binary,
    nginx_version,
    parse_responses,
    raw_request,
    read,
    render,
    wait_port,
)

from truehop.demo import DEMO_CONF, DEMO_DIR
from truehop.demo.app import BackgroundApp, big_body, ws_accept

# -- default endpoint ---------------------------------------------------------------------------


def test_default_json_describes_the_request(upstream: BackgroundApp) -> None:
    r = httpx.get(upstream.url("/some/path?q=1&x"), headers={"X-Mixed-Case": "v1"})
    assert r.status_code == 200
    assert r.headers["x-upstream"] == "a"
    j = r.json()
    assert j["app"] == "a"
    assert j["method"] == "GET"
    assert j["target"] == "/some/path?q=1&x"
    assert j["version"] == "1.1"
    assert ["X-Mixed-Case", "v1"] in j["headers"]
    assert j["body_len"] == 0
    assert j["peer"].startswith("127.0.0.1:")
    assert j["conn_id"] == 1 and j["conn_requests"] == 1
    rec = upstream.last()
    assert rec.target == "/some/path?q=1&x" and rec.path == "/some/path"
    assert rec.header("x-mixed-case") == "v1"


def test_headers_kept_in_order_and_case(upstream: BackgroundApp) -> None:
    data = (b"GET /h HTTP/1.1\r\nhost: h.test\r\nX-B: 2\r\nx-a: 1\r\nX-B: 3\r\n"
            b"Connection: close\r\n\r\n")
    got, closed = raw_request(upstream.port, data)
    assert closed
    (resp,) = parse_responses(got)
    j = json.loads(resp.body)
    assert j["headers"] == [["host", "h.test"], ["X-B", "2"], ["x-a", "1"], ["X-B", "3"],
                            ["Connection", "close"]]
    assert upstream.last().header_all("x-b") == ["2", "3"]
    assert resp.header("Connection") == "close"


def test_keepalive_counts_requests_per_connection(upstream: BackgroundApp) -> None:
    with httpx.Client() as c:
        js = [c.get(upstream.url(f"/{i}")).json() for i in range(3)]
    assert [j["conn_requests"] for j in js] == [1, 2, 3]
    assert len({j["conn_id"] for j in js}) == 1
    with httpx.Client() as c:
        assert c.get(upstream.url("/")).json()["conn_id"] == 2
    assert upstream.connections_opened == 2


def test_pipelined_requests_answered_in_order(upstream: BackgroundApp) -> None:
    data = b"".join(f"GET /p{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(5))
    data += b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    got, closed = raw_request(upstream.port, data)
    assert closed
    resps = parse_responses(got)
    assert [json.loads(r.body)["target"] for r in resps] == [f"/p{i}" for i in range(5)] + ["/last"]
    assert all(r.complete and r.status == 200 for r in resps)


def test_pipelined_after_slow_request_still_in_order(upstream: BackgroundApp) -> None:
    data = (b"GET /__slow?ms=200 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    got, closed = raw_request(upstream.port, data)
    targets = [json.loads(r.body)["target"] for r in parse_responses(got)]
    assert closed and targets == ["/__slow?ms=200", "/after"]


def test_content_length_body(upstream: BackgroundApp) -> None:
    r = httpx.post(upstream.url("/upload"), content=b"x" * 100_000)
    assert r.json()["body_len"] == 100_000
    assert upstream.last().body == b"x" * 100_000


def test_chunked_request_body(upstream: BackgroundApp) -> None:
    def gen() -> Iterator[bytes]:
        yield b"hello "
        yield b"chunked "
        yield b"world"

    r = httpx.post(upstream.url("/c"), content=gen())
    assert r.json()["body_len"] == len(b"hello chunked world")
    rec = upstream.last()
    assert rec.header("Transfer-Encoding") == "chunked"
    assert rec.body == b"hello chunked world"


def test_chunked_body_with_trailers_raw(upstream: BackgroundApp) -> None:
    data = (b"POST /__echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n"
            b"5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\nX-Trailer: t\r\n\r\n")
    got, closed = raw_request(upstream.port, data)
    (resp,) = parse_responses(got)
    assert resp.body == b"hello!" and closed


def test_expect_100_continue(upstream: BackgroundApp) -> None:
    with socket.create_connection(("127.0.0.1", upstream.port), timeout=2) as s:
        s.sendall(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                  b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(b"abc")
        rest = b""
        while chunk := s.recv(65536):
            rest += chunk
    assert b'"body_len": 3' in rest


def test_http10_request_closes(upstream: BackgroundApp) -> None:
    got, closed = raw_request(upstream.port, b"GET /old HTTP/1.0\r\n\r\n")
    assert closed
    (resp,) = parse_responses(got)
    assert json.loads(resp.body)["version"] == "1.0"
    assert upstream.last().keep_alive is False


def test_http10_keepalive(upstream: BackgroundApp) -> None:
    got, closed = raw_request(upstream.port, b"GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                              timeout=0.5)
    assert not closed
    assert parse_responses(got)[0].status == 200


def test_head_has_no_body(upstream: BackgroundApp) -> None:
    r = httpx.head(upstream.url("/"))
    assert r.status_code == 200 and r.content == b""
    assert int(r.headers["content-length"]) > 0


def test_malformed_request_gets_400_and_close(upstream: BackgroundApp) -> None:
    got, closed = raw_request(upstream.port, b"GARBAGE\x00 / HTTP/1.1\r\n\r\n")
    assert closed and got.startswith(b"HTTP/1.1 400 ")


def test_absolute_form_target_is_recorded_raw(upstream: BackgroundApp) -> None:
    raw_request(upstream.port, b"GET http://ex.test/abs/__status?code=201 HTTP/1.1\r\n"
                               b"Host: ex.test\r\nConnection: close\r\n\r\n")
    assert upstream.last().target == "http://ex.test/abs/__status?code=201"


# -- special endpoints --------------------------------------------------------------------------


def test_slow(upstream: BackgroundApp) -> None:
    t0 = time.monotonic()
    r = httpx.get(upstream.url("/__slow?ms=300"))
    assert r.status_code == 200 and time.monotonic() - t0 >= 0.3


def test_slow_recorded_before_answering(upstream: BackgroundApp) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(upstream.url("/__slow?ms=2000"), timeout=0.3)
    assert upstream.last().path == "/__slow"


def test_sse_streams_with_pauses(upstream: BackgroundApp) -> None:
    times, events = [], []
    with httpx.stream("GET", upstream.url("/__sse?n=3&interval_ms=150")) as r:
        assert r.headers["content-type"] == "text/event-stream"
        assert r.headers["transfer-encoding"] == "chunked"
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                times.append(time.monotonic())
    assert [e["n"] for e in events] == [0, 1, 2]
    assert times[2] - times[0] >= 0.25  # each event flushed on its own, not all at the end


def test_endpoint_chosen_by_last_segment(upstream: BackgroundApp) -> None:
    r = httpx.get(upstream.url("/events/__status?code=418"))
    assert r.status_code == 418


def test_big(upstream: BackgroundApp) -> None:
    r = httpx.get(upstream.url("/__big?kb=64"))
    assert r.status_code == 200 and len(r.content) == 64 * 1024
    assert r.content == big_body(64)
    assert httpx.get(upstream.url("/__big?kb=3000")).content == big_body(3000)


def test_truncate(upstream: BackgroundApp) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(upstream.url("/__truncate"))
    got, closed = raw_request(upstream.port, b"GET /__truncate HTTP/1.1\r\nHost: x\r\n\r\n")
    assert closed
    (resp,) = parse_responses(got)
    assert resp.header("Content-Length") == "100000"
    assert len(resp.body) == 1000 and not resp.complete


@pytest.mark.parametrize("code", [200, 204, 304, 404, 500, 502, 503])
def test_status(upstream: BackgroundApp, code: int) -> None:
    r = httpx.get(upstream.url(f"/__status?code={code}"))
    assert r.status_code == code
    if code in (204, 304):
        assert r.content == b""
    else:
        assert r.json()["app"] == "a"


def test_redirect(upstream: BackgroundApp) -> None:
    r = httpx.get(upstream.url("/__redirect?to=http://elsewhere.test/x&code=301"))
    assert r.status_code == 301 and r.headers["location"] == "http://elsewhere.test/x"
    r = httpx.get(upstream.url("/__redirect?to=/y"))
    assert r.status_code == 302 and r.headers["location"] == "/y"


def test_headers_from_query(upstream: BackgroundApp) -> None:
    r = httpx.get(upstream.url("/__headers?X-Foo=bar&Set-Cookie=a%3D1&Set-Cookie=b%3D2"))
    assert r.headers["x-foo"] == "bar"
    assert r.headers.get_list("set-cookie") == ["a=1", "b=2"]


def test_close(upstream: BackgroundApp) -> None:
    got, closed = raw_request(upstream.port, b"GET /__close HTTP/1.1\r\nHost: x\r\n\r\n")
    assert closed
    assert parse_responses(got)[0].header("Connection") == "close"
    with httpx.Client() as c:
        c.get(upstream.url("/__close"))
        c.get(upstream.url("/"))
    assert upstream.connections_opened == 3


def test_drop_and_reset(upstream: BackgroundApp) -> None:
    got, closed = raw_request(upstream.port, b"GET /__drop HTTP/1.1\r\nHost: x\r\n\r\n")
    assert got == b"" and closed
    got, closed = raw_request(upstream.port, b"GET /__reset HTTP/1.1\r\nHost: x\r\n\r\n")
    assert got == b"" and closed


def test_echo(upstream: BackgroundApp) -> None:
    r = httpx.post(upstream.url("/__echo"), content=b"\x00\x01payload",
                   headers={"Content-Type": "application/x-test"})
    assert r.content == b"\x00\x01payload"
    assert r.headers["content-type"] == "application/x-test"


def test_chunked_response(upstream: BackgroundApp) -> None:
    r = httpx.get(upstream.url("/__chunked"))
    assert r.headers["transfer-encoding"] == "chunked"
    assert r.json()["target"] == "/__chunked"


def test_chunked_response_to_http10_is_close_delimited(upstream: BackgroundApp) -> None:
    got, closed = raw_request(upstream.port, b"GET /__chunked HTTP/1.0\r\n\r\n")
    assert closed and b"Transfer-Encoding" not in got
    assert json.loads(got.split(b"\r\n\r\n", 1)[1])["version"] == "1.0"


def test_https_redirect(upstream: BackgroundApp) -> None:
    r = httpx.get(upstream.url("/__https_redirect?a=1"), headers={"Host": "app.test"})
    assert r.status_code == 301
    assert r.headers["location"] == "https://app.test/__https_redirect?a=1"
    r = httpx.get(upstream.url("/__https_redirect"), headers={"X-Forwarded-Proto": "https"})
    assert r.status_code == 200


def test_upgrade_other_than_websocket_is_ignored(upstream: BackgroundApp) -> None:
    data = (b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
            b"GET /y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    got, closed = raw_request(upstream.port, data)
    assert [r.status for r in parse_responses(got)] == [200, 200] and closed


# -- WebSocket ----------------------------------------------------------------------------------


def test_ws_accept_rfc_example() -> None:
    assert ws_accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_websocket_echo(upstream: BackgroundApp) -> None:
    async def go() -> None:
        async with websockets.connect(f"ws://{upstream.addr}/__ws", max_size=None) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\xffbin")
            assert await ws.recv() == b"\x00\xffbin"
            big = os.urandom(200_000)
            await ws.send(big)
            assert await ws.recv() == big
            await ws.send(["frag", "mented"])  # a fragmented message
            assert await ws.recv() == "fragmented"
            pong = await ws.ping(b"p")
            await asyncio.wait_for(pong, 2)
        assert ws.close_code == 1000

    asyncio.run(go())
    assert upstream.last().header("Upgrade") == "websocket"
    assert (1, b"hello") in upstream.ws_messages


def test_websocket_subprotocol_and_prefix(upstream: BackgroundApp) -> None:
    async def go() -> None:
        async with websockets.connect(f"ws://{upstream.addr}/socket/__ws",
                                      subprotocols=["chat"]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "chat"
            await ws.send("x")
            assert await ws.recv() == "x"

    asyncio.run(go())


def test_websocket_raw_handshake_and_frame_in_same_packet(upstream: BackgroundApp) -> None:
    key = base64.b64encode(b"0123456789abcdef").decode()
    mask = b"\x01\x02\x03\x04"
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(b"hi"))
    data = (f"GET /__ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    data += b"\x81\x82" + mask + payload
    got, _ = raw_request(upstream.port, data, until=b"\x81\x02hi", timeout=2)
    expect = base64.b64encode(hashlib.sha1(key.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                              .digest()).decode()
    assert got.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert f"Sec-WebSocket-Accept: {expect}".encode() in got
    assert got.endswith(b"\x81\x02hi")


def test_ws_without_upgrade_is_400(upstream: BackgroundApp) -> None:
    assert httpx.get(upstream.url("/__ws")).status_code == 400


# -- BackgroundApp ------------------------------------------------------------------------------


def test_background_app_stop_and_restart_same_port() -> None:
    app = BackgroundApp(name="z").start()
    port = app.port
    assert httpx.get(app.url()).json()["app"] == "z"
    app.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(app.url())
    app.start()
    try:
        assert app.port == port and httpx.get(app.url()).status_code == 200
        assert len(app.records) == 2
    finally:
        app.stop()


def test_background_app_stop_closes_idle_connections() -> None:
    app = BackgroundApp().start()
    s = socket.create_connection(("127.0.0.1", app.port))
    app.wait_for_records(0)
    deadline = time.monotonic() + 2
    while app.connections_active == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    app.stop()
    s.settimeout(2)
    try:
        assert s.recv(10) == b""
    except ConnectionResetError:
        pass
    finally:
        s.close()


def test_upstreams_fixture(upstreams: Callable[..., list[BackgroundApp]]) -> None:
    a, b = upstreams(2)
    assert (a.name, b.name) == ("a", "b") and a.port != b.port
    assert httpx.get(b.url()).headers["x-upstream"] == "b"


def test_cli_prints_listening_on_stderr() -> None:
    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "truehop.demo.app", "--port", str(port),
                          "--name", "cli"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_port(port, proc=p)
        assert httpx.get(f"http://127.0.0.1:{port}/").json()["app"] == "cli"
    finally:
        p.terminate()
        out, err = p.communicate(timeout=5)
    assert out == b""
    assert b"listening on http://127.0.0.1:" in err


# -- harness ------------------------------------------------------------------------------------


def test_render() -> None:
    assert render("listen @@HTTP@@; server 127.0.0.1:@@app@@;", http=1, app=2) == \
        "listen 1; server 127.0.0.1:2;"
    assert render("location / { }") == "location / { }"
    with pytest.raises(KeyError):
        render("listen @@HTTP@@;")


def test_listen_ports() -> None:
    text = """
    server { listen 127.0.0.1:8080; # listen 9999;
             listen [::1]:8443 ssl; listen 8081 default_server; listen *:82; }
    """
    assert listen_ports(text) == [("127.0.0.1", 8080), ("::1", 8443), ("127.0.0.1", 8081),
                                  ("127.0.0.1", 82)]


def test_free_ports_distinct() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5


class _DemoAppProcess(_ServerProcess):
    """The demo app CLI run through the harness's process machinery."""

    name = "demoapp"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "truehop.demo.app", "--port", str(self.ready_port)]


def test_process_machinery(tmp_path: Path) -> None:
    port = free_port()
    with _DemoAppProcess("", tmp_path, ready_port=port) as p:
        assert p.running and httpx.get(p.url("/")).status_code == 200
    assert not p.running
    assert "listening" in p.stderr()


def test_process_exit_reports_logs(tmp_path: Path) -> None:
    port = free_port()
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", port))  # bound, not listening: the app cannot bind, connect fails
    try:
        with pytest.raises(ProcessFailed, match="exited with status 1"):
            _DemoAppProcess("", tmp_path, ready_port=port).start()
    finally:
        blocker.close()


def test_check_log_flags_tracebacks(tmp_path: Path) -> None:
    p = _DemoAppProcess("", tmp_path, ready_port=free_port())
    p.error_log_path.write_text("2024/01/01 00:00:00 [crit] 1#1: boom\n")
    with pytest.raises(ProcessFailed, match=r"\[crit\] 1#1: boom"):
        p.check_log()
    p.expect_log("[crit]")
    p.check_log()
    assert read(tmp_path / "missing") == ""


# -- demo.conf under real nginx (the same file must mean the same thing on both) ------------


def _demo_conf_with(http: int, https: int, a: int, b: int) -> str:
    text = Path(DEMO_CONF).read_text()
    return (text.replace("127.0.0.1:8080", f"127.0.0.1:{http}")
            .replace("127.0.0.1:8443", f"127.0.0.1:{https}")
            .replace("127.0.0.1:3000", f"127.0.0.1:{a}").replace("127.0.0.1:3001", f"127.0.0.1:{b}"))


@pytest.mark.nginx
def test_demo_conf_under_nginx(tmp_path: Path,
                               upstreams: Callable[..., list[BackgroundApp]]) -> None:
    if nginx_binary() is None:
        pytest.skip("nginx is not installed")
    a, b = upstreams(2)
    http, https = free_ports(2)
    shutil.copytree(Path(DEMO_DIR) / "static", tmp_path / "static")
    # nginx has no built-in mime.types fallback: give it the one truehop ships
    shutil.copy(Path(DEMO_DIR).parent / "data" / "mime.types", tmp_path / "mime.types")
    leaf = trustme.CA().issue_cert("localhost")
    leaf.private_key_pem.write_to_path(str(tmp_path / "demo-key.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "demo-cert.pem"))
    conf = _demo_conf_with(http, https, a.port, b.port).replace("/dev/stderr", "access.log")
    if nginx_version() < (1, 25, 1):
        conf = conf.replace("http2 on;", "")    # the directive came with 1.25.1
    with NginxProcess(conf, tmp_path) as ng:
        with httpx.Client() as c:
            page = c.get(ng.url("/"))
            assert page.status_code == 200 and "truehop demo" in page.text
            apps = {c.get(ng.url("/api/whoami")).json()["app"] for _ in range(4)}
            assert apps == {"a", "b"}
            css = c.get(ng.url("/static/style.css"))
            assert css.status_code == 200 and b"truehop demo" in css.content
            r = c.get(ng.url("/__https_redirect"), headers={"Host": "localhost"})
            assert r.headers["location"] == "https://localhost/__https_redirect"
        rec = (a.records + b.records)[-1]
        assert rec.header("X-Forwarded-Proto") == "http"
        assert rec.header("Connection") is None  # '' from the map: header not sent

        async def ws() -> None:
            async with websockets.connect(ng.url("/__ws", scheme="ws")) as w:
                await w.send("via nginx")
                assert await w.recv() == "via nginx"

        asyncio.run(ws())
        assert "GET /static/style.css" in ng.access_log()
