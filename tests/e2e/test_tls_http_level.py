"""TLS settings written at the http level reach the servers (nginx merges them per server), and
HTTP/2 is offered in ALPN per server, as the SNI name picks it (nginx 1.25+ `http2 on|off`)."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trustme
from harness import free_port

pytestmark = pytest.mark.timeout(60)

CONF = """
error_log error.log info;
events { }
http {
    access_log access.log;
    ssl_certificate @@CERT@@;
    ssl_certificate_key @@CERT@@;
    ssl_protocols TLSv1.3;
    server {
        listen 127.0.0.1:@@TLS@@ ssl;
        server_name plain.test;
        location / { return 200 "plain $server_protocol $ssl_protocol\\n"; }
    }
    server {
        listen 127.0.0.1:@@TLS@@ ssl;
        server_name h2.test;
        http2 on;
        location / { return 200 "h2 $server_protocol\\n"; }
    }
}
"""


@pytest.fixture
def site(truehop: Any, tmp_path: Path) -> SimpleNamespace:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    pem = tmp_path / "site.pem"
    ca.issue_cert("plain.test", "h2.test").private_key_and_cert_chain_pem \
        .write_to_path(str(pem))
    port = free_port()
    tp = truehop(CONF, TLS=port, CERT=pem)
    return SimpleNamespace(tp=tp, port=port, ca=str(tmp_path / "ca.pem"))


def connect(site: SimpleNamespace, name: str, alpn: list[str] | None = None,
            tls12: bool = False) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=site.ca)
    if not name:
        ctx.check_hostname = False
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    raw = socket.create_connection(("127.0.0.1", site.port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname=name or None)


def get(s: ssl.SSLSocket, host: str) -> bytes:
    s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    buf = b""
    while chunk := s.recv(65536):
        buf += chunk
    return buf


def test_server_with_only_listen_ssl_uses_the_http_level_certificate(site):
    with connect(site, "plain.test") as s:
        assert s.version() == "TLSv1.3"
        body = get(s, "plain.test")
    assert body.startswith(b"HTTP/1.1 200")
    assert body.endswith(b"plain HTTP/1.1 TLSv1.3\n")


def test_http_level_protocols_are_inherited(site):
    # plain.test is the default server: http-level `ssl_protocols TLSv1.3` only
    with pytest.raises(ssl.SSLError):
        connect(site, "plain.test", tls12=True)


def test_alpn_h2_is_offered_per_server_chosen_by_sni(site):
    with connect(site, "h2.test", ["h2", "http/1.1"]) as s:
        assert s.selected_alpn_protocol() == "h2"
    with connect(site, "plain.test", ["h2", "http/1.1"]) as s:
        assert s.selected_alpn_protocol() == "http/1.1"
        assert get(s, "plain.test").endswith(b"plain HTTP/1.1 TLSv1.3\n")
    with connect(site, "", ["h2", "http/1.1"]) as s:    # no SNI: the default server
        assert s.selected_alpn_protocol() == "http/1.1"
