"""TLS termination and HTTP/2 end to end: the real truehop, trustme certificates, httpx over
HTTP/1.1 and HTTP/2, raw sockets and raw HTTP/2 frames for what clients will not send, curl when
installed."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import h2.config
import h2.connection
import h2.events
import httpx
import pytest
import trustme
from harness import free_port, raw_request
from hyperframe.frame import HeadersFrame, RstStreamFrame

pytestmark = pytest.mark.timeout(60)

STATIC = bytes(range(256)) * 8000        # 2 MB, more than any window or buffer
PAGE_497 = b"<title>400 The plain HTTP request was sent to HTTPS port</title>"

CONF = """
error_log error.log info;
events { }
http {
    access_log access.log;
    server {
        listen 127.0.0.1:@@TLS@@ ssl;
        http2 on;
        server_name a.test;
        ssl_certificate @@A_CERT@@;
        ssl_certificate_key @@A_CERT@@;
        location / {
            proxy_pass http://127.0.0.1:@@APP@@;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-TLS "$ssl_protocol|$ssl_cipher|$ssl_server_name|$https";
            proxy_set_header X-Reused $ssl_session_reused;
        }
        location /www/ { root @@ROOT@@; }
    }
    server {
        listen 127.0.0.1:@@TLS@@ ssl;
        http2 on;
        server_name b.test;
        ssl_certificate @@B_CERT@@;
        ssl_certificate_key @@B_CERT@@;
        error_page 497 https://$host:$server_port$request_uri;
        location / { return 200 "b server $scheme $server_protocol\\n"; }
    }
    server {
        listen 127.0.0.1:@@PLAIN@@;
        http2 on;
        location / {
            proxy_pass http://127.0.0.1:@@APP@@;
            proxy_set_header X-Forwarded-Proto $scheme;
        }
    }
}
"""


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    d = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    out = SimpleNamespace(ca=str(d / "ca.pem"))
    for name in ("a.test", "b.test"):
        c = ca.issue_cert(name, "127.0.0.1")
        path = d / f"{name}.pem"
        c.private_key_and_cert_chain_pem.write_to_path(str(path))
        setattr(out, name[0], str(path))
    return out


@pytest.fixture
def site(truehop: Any, upstream: Any, certs: SimpleNamespace,
         tmp_path: Path) -> SimpleNamespace:
    tls, plain = free_port(), free_port()
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "f.bin").write_bytes(STATIC)
    tp = truehop(CONF, TLS=tls, PLAIN=plain, APP=upstream.port, A_CERT=certs.a,
                 B_CERT=certs.b, ROOT=tmp_path)
    return SimpleNamespace(tp=tp, tls=tls, plain=plain, up=upstream, ca=certs.ca,
                           verify=ssl.create_default_context(cafile=certs.ca))




def tls_client(ca: str, server_name: str, port: int,
               alpn: list[str] | None = None) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=ca)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname=server_name)


def read_all(s: socket.socket, timeout: float = 3.0) -> bytes:
    s.settimeout(timeout)
    buf = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
    except (TimeoutError, ConnectionResetError, ssl.SSLError):
        pass
    return buf


# -- TLS ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("http2", [False, True])
def test_https_reaches_upstream(site: SimpleNamespace, http2: bool) -> None:
    with httpx.Client(http2=http2, verify=site.verify) as c:
        r = c.get(f"https://127.0.0.1:{site.tls}/x?q=1", headers={"host": "a.test"},
                  extensions={"sni_hostname": "a.test"})
    assert r.status_code == 200
    assert r.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    rec = site.up.last()
    assert rec.header("X-Forwarded-Proto") == "https"
    proto, cipher, sni, https = rec.header("X-TLS").split("|")
    assert proto in ("TLSv1.2", "TLSv1.3") and cipher and sni == "a.test" and https == "on"
    assert rec.path == "/x"


def test_sni_picks_the_certificate(site: SimpleNamespace) -> None:
    for name in ("a.test", "b.test"):
        with tls_client(site.ca, name, site.tls) as s:   # verification checks the name
            cert = s.getpeercert()
            assert cert is not None
            san = cert["subjectAltName"]
            assert ("DNS", name) in san
            s.sendall(f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
            resp = read_all(s)
        if name == "b.test":
            assert resp.startswith(b"HTTP/1.1 200") and b"b server https HTTP/1.1" in resp


@pytest.mark.parametrize("http2", [False, True])
def test_static_file_over_tls(site: SimpleNamespace, http2: bool) -> None:
    with httpx.Client(http2=http2, verify=site.verify) as c:
        r = c.get(f"https://127.0.0.1:{site.tls}/www/f.bin", headers={"host": "a.test"})
        assert r.status_code == 200 and r.content == STATIC
        r = c.get(f"https://127.0.0.1:{site.tls}/www/f.bin", headers={"host": "a.test",
                                                                     "range": "bytes=10-19"})
        assert r.status_code == 206 and r.content == STATIC[10:20]
        r = c.head(f"https://127.0.0.1:{site.tls}/www/f.bin", headers={"host": "a.test"})
        assert r.status_code == 200 and r.content == b""
        assert r.headers["content-length"] == str(len(STATIC))


def test_alpn_selects_h2(site: SimpleNamespace) -> None:
    with tls_client(site.ca, "a.test", site.tls, ["h2", "http/1.1"]) as s:
        assert s.selected_alpn_protocol() == "h2"
    with tls_client(site.ca, "a.test", site.tls, ["http/1.1"]) as s:
        assert s.selected_alpn_protocol() == "http/1.1"


def _h2_over(sock: ssl.SSLSocket, host: bytes) -> bytes:
    """One GET over HTTP/2 on an established TLS socket; the response's :status."""
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                             header_encoding=None))
    c.initiate_connection()
    c.send_headers(1, [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", host),
                       (b":path", b"/reused")], end_stream=True)
    sock.sendall(c.data_to_send())
    sock.settimeout(5)
    status = b""
    while True:
        d = sock.recv(65536)
        assert d, "connection closed before the response"
        for e in c.receive_data(d):
            if isinstance(e, h2.events.ResponseReceived):
                status = dict(e.headers)[b":status"]
            if isinstance(e, h2.events.StreamEnded):
                return status
        sock.sendall(c.data_to_send())


def test_tls_session_reused_over_h2(site: SimpleNamespace) -> None:
    ctx = ssl.create_default_context(cafile=site.ca)
    ctx.set_alpn_protocols(["h2"])
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", site.tls), timeout=5),
                         server_hostname="a.test") as s1:
        assert _h2_over(s1, b"a.test") == b"200"      # TLS 1.3 tickets come after handshake
        session = s1.session
    assert site.up.last().header("X-Reused") == "."
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", site.tls), timeout=5),
                         server_hostname="a.test", session=session) as s2:
        assert s2.session_reused
        assert _h2_over(s2, b"a.test") == b"200"
    assert site.up.last().header("X-Reused") == "r"


def test_plain_http_to_tls_port_gets_400_page(site: SimpleNamespace) -> None:
    data, closed = raw_request(site.tls, b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n"), data[:200]
    assert PAGE_497 in data and closed
    assert not site.up.records
    site.tp.wait_for_log("client sent plain HTTP request to HTTPS port")


def test_error_page_497_redirects_to_https(site: SimpleNamespace) -> None:
    # server-level error_page 497 of the server the Host names (the usual nginx idiom)
    data, _ = raw_request(site.tls, b"GET /to?a=1 HTTP/1.1\r\nHost: b.test\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 302"), data[:200]
    assert f"Location: https://b.test:{site.tls}/to?a=1".encode() in data


def test_failed_handshake_is_logged_at_info(site: SimpleNamespace) -> None:
    # a TLS record header followed by garbage: a handshake failure, not a traceback
    data, closed = raw_request(site.tls, b"\x16\x03\x01\x00\x05hello" + b"\x00" * 64)
    assert closed and not data.startswith(b"HTTP/")
    site.tp.wait_for_log("SSL_do_handshake() failed")
    assert "[info]" in site.tp.wait_for_log("SSL_do_handshake() failed")


def test_tls_connection_closed_before_handshake_is_quiet(site: SimpleNamespace) -> None:
    socket.create_connection(("127.0.0.1", site.tls)).close()
    with httpx.Client(verify=site.verify) as c:
        assert c.get(f"https://127.0.0.1:{site.tls}/", headers={"host": "a.test"}).status_code == 200


# -- HTTP/2 -------------------------------------------------------------------------------------


def test_h2c_prior_knowledge_and_http1_on_the_same_port(site: SimpleNamespace) -> None:
    with httpx.Client(http1=False, http2=True) as c:
        r = c.get(f"http://127.0.0.1:{site.plain}/h2c")
    assert r.http_version == "HTTP/2" and r.status_code == 200
    assert site.up.last().header("X-Forwarded-Proto") == "http"
    with httpx.Client() as c:
        r = c.get(f"http://127.0.0.1:{site.plain}/h1")
    assert r.http_version == "HTTP/1.1" and r.status_code == 200


def test_h2_large_bodies_both_ways(site: SimpleNamespace) -> None:
    with httpx.Client(http2=True, verify=site.verify) as c:
        base = f"https://127.0.0.1:{site.tls}"
        r = c.get(f"{base}/__big?kb=4096", headers={"host": "a.test"})
        assert r.http_version == "HTTP/2" and len(r.content) == 4096 * 1024
        body = bytes(range(256)) * 3000
        r = c.post(f"{base}/__echo", content=body, headers={"host": "a.test"})
        assert r.status_code == 200 and r.content == body

        def gen() -> Any:
            for _ in range(20):
                yield b"z" * 10000
        r = c.post(f"{base}/__echo", content=gen(), headers={"host": "a.test"})
        assert r.status_code == 200 and r.content == b"z" * 200000


def test_h2_many_concurrent_streams(site: SimpleNamespace) -> None:
    import asyncio

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(http2=True, verify=site.verify) as c:
            return await asyncio.gather(*[
                c.get(f"https://127.0.0.1:{site.tls}/__big?kb=64", headers={"host": "a.test"})
                for _ in range(300)])

    rs = asyncio.run(run())
    assert {r.status_code for r in rs} == {200} and {r.http_version for r in rs} == {"HTTP/2"}
    assert all(len(r.content) == 64 * 1024 for r in rs)


class RawH2:
    """Prior-knowledge HTTP/2 over a plain socket, for frames a polite client won't send."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.c = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, validate_outbound_headers=False,
            normalize_outbound_headers=False, header_encoding=None))
        self.c.initiate_connection()
        self.sock.sendall(self.c.data_to_send())

    def request(self, hdrs: list[tuple[bytes, bytes]], sid: int = 1) -> None:
        self.c.send_headers(sid, hdrs, end_stream=True)
        self.sock.sendall(self.c.data_to_send())

    def events(self, until: type, timeout: float = 3.0) -> list[Any]:
        self.sock.settimeout(timeout)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                d = self.sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not d:
                break
            evs = self.c.receive_data(d)
            out += evs
            try:
                self.sock.sendall(self.c.data_to_send())
            except OSError:
                break
            if any(isinstance(e, until) for e in evs):
                break
        return out

    def close(self) -> None:
        self.sock.close()


def _req(method: bytes = b"GET", path: bytes = b"/") -> list[tuple[bytes, bytes]]:
    return [(b":method", method), (b":scheme", b"http"), (b":authority", b"localhost"),
            (b":path", path)]


@pytest.mark.parametrize("hdrs", [
    _req(method=b"GET /admin"),
    _req(path=b"http://evil.example/x"),
    _req() + [(b"host", b"evil.example")],
])
def test_h2_bad_pseudo_headers_answered_400_not_forwarded(site: SimpleNamespace,
                                                          hdrs: list[tuple[bytes, bytes]]) -> None:
    h = RawH2(site.plain)
    h.request(hdrs)
    evs = h.events(h2.events.StreamEnded)
    [resp] = [e for e in evs if isinstance(e, h2.events.ResponseReceived)]
    assert dict(resp.headers)[b":status"] == b"400"
    # the connection is still usable
    h.request(_req(path=b"/after"), sid=3)
    evs = h.events(h2.events.StreamEnded)
    [resp] = [e for e in evs if isinstance(e, h2.events.ResponseReceived)]
    assert dict(resp.headers)[b":status"] == b"200"
    h.close()
    assert [r.path for r in site.up.records] == ["/after"]


def test_h2_connection_specific_header_resets_stream(site: SimpleNamespace) -> None:
    h = RawH2(site.plain)
    h.request(_req() + [(b"transfer-encoding", b"chunked")])
    evs = h.events(h2.events.StreamReset)
    [r] = [e for e in evs if isinstance(e, h2.events.StreamReset)]
    assert r.error_code == 1
    h.close()
    assert not site.up.records


def test_h2_rapid_reset_bounded(site: SimpleNamespace) -> None:
    h = RawH2(site.plain)
    block = h.c.encoder.encode(_req(path=b"/rapid"))
    data = b"".join(HeadersFrame(1 + 2 * i, block, flags=["END_HEADERS", "END_STREAM"]).serialize()
                    + RstStreamFrame(1 + 2 * i, error_code=8).serialize() for i in range(2000))
    started = time.monotonic()
    h.sock.sendall(data)
    evs = h.events(h2.events.ConnectionTerminated)
    [t] = [e for e in evs if isinstance(e, h2.events.ConnectionTerminated)]
    assert t.error_code == 11  # ENHANCE_YOUR_CALM
    assert time.monotonic() - started < 1.5
    h.close()
    time.sleep(0.2)
    assert len(site.up.records) <= 2 * 128


def test_h2_graceful_reload_finishes_in_flight_stream(site: SimpleNamespace) -> None:
    result: list[httpx.Response] = []
    with httpx.Client(http2=True, verify=site.verify, timeout=10) as c:
        t = threading.Thread(target=lambda: result.append(
            c.get(f"https://127.0.0.1:{site.tls}/__slow?ms=1500", headers={"host": "a.test"})))
        t.start()
        site.up.wait_for_records(1)
        site.tp.reload()
        t.join(10)
    assert result and result[0].status_code == 200 and result[0].http_version == "HTTP/2"
    with httpx.Client(http2=True, verify=site.verify) as c:
        assert c.get(f"https://127.0.0.1:{site.tls}/", headers={"host": "a.test"}).status_code == 200


# -- curl ---------------------------------------------------------------------------------------


def _curl_has_http2() -> bool:
    curl = shutil.which("curl")
    if curl is None:
        return False
    out = subprocess.run([curl, "-V"], capture_output=True, text=True).stdout
    return "HTTP2" in out


@pytest.mark.skipif(not _curl_has_http2(), reason="curl without HTTP/2")
def test_curl_http2(site: SimpleNamespace) -> None:
    out = subprocess.run(
        ["curl", "-sS", "--http2", "--cacert", site.ca, "--resolve",
         f"a.test:{site.tls}:127.0.0.1", f"https://a.test:{site.tls}/curl",
         "-o", "/dev/null", "-w", "%{http_version} %{http_code}"],
        capture_output=True, text=True, timeout=20)
    assert out.stdout == "2 200", out.stderr
    out = subprocess.run(
        ["curl", "-sS", "--http2-prior-knowledge", f"http://127.0.0.1:{site.plain}/curl",
         "-o", "/dev/null", "-w", "%{http_version} %{http_code}"],
        capture_output=True, text=True, timeout=20)
    assert out.stdout == "2 200", out.stderr
    assert site.up.last().header("X-Forwarded-Proto") == "http"
