"""ALPN as nginx answers it (nginx-tests h2_http2.t "sni to disabled", "default to disabled"):
a ClientHello whose ALPN list names no protocol the server chosen by SNI speaks fails the
handshake with a fatal no_application_protocol alert (ngx_http_ssl_alpn_select returns
SSL_TLSEXT_ERR_ALERT_FATAL); Python's ssl alone would complete it without ALPN."""

from __future__ import annotations

import socket
import ssl
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
    ssl_certificate @@CERT@@;
    ssl_certificate_key @@CERT@@;
    server {
        listen 127.0.0.1:@@H2DEF@@ ssl;
        server_name default;
        http2 on;
        return 200 "h2 default $server_protocol\\n";
    }
    server {
        listen 127.0.0.1:@@H2DEF@@;
        server_name disabled;
        http2 off;
        return 200 "disabled $server_protocol\\n";
    }
    server {
        listen 127.0.0.1:@@H1DEF@@ ssl;
        server_name default;
        return 200 "h1 default $server_protocol\\n";
    }
    server {
        listen 127.0.0.1:@@H1DEF@@;
        server_name http2;
        http2 on;
        return 200 "h2 $server_protocol\\n";
    }
}
"""

NAMES = ("default", "disabled", "http2")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    d = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    c = ca.issue_cert(*NAMES, "127.0.0.1")
    c.private_key_and_cert_chain_pem.write_to_path(str(d / "all.pem"))
    return SimpleNamespace(ca=str(d / "ca.pem"), cert=str(d / "all.pem"))


@pytest.fixture
def site(truehop: Any, certs: SimpleNamespace) -> SimpleNamespace:
    h2def, h1def = free_port(), free_port()
    tp = truehop(CONF, H2DEF=h2def, H1DEF=h1def, CERT=certs.cert)
    return SimpleNamespace(tp=tp, h2def=h2def, h1def=h1def, ca=certs.ca)


def connect(site: SimpleNamespace, port: int, sni: str | None, alpn: list[str],
            tls13: bool = True) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=site.ca)
    ctx.check_hostname = False
    if not tls13:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(alpn)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        return ctx.wrap_socket(raw, server_hostname=sni)
    except BaseException:
        raw.close()
        raise


def get(s: ssl.SSLSocket, host: str) -> bytes:
    s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    buf = b""
    while d := s.recv(65536):
        buf += d
    return buf


@pytest.mark.parametrize("tls13", [True, False])
def test_h2_only_to_server_without_http2_is_refused(site: SimpleNamespace,
                                                    tls13: bool) -> None:
    # by SNI (h2_http2.t 'sni to disabled') and by default (no SNI: 'default to disabled')
    for port, sni in ((site.h2def, "disabled"), (site.h1def, None)):
        with pytest.raises(ssl.SSLError, match="(?i)no.application.protocol"):
            connect(site, port, sni, ["h2"], tls13).close()
    site.tp.wait_for_log("SSL_do_handshake() failed (SSL: no application protocol)")


def test_alpn_that_matches_still_connects(site: SimpleNamespace) -> None:
    # h2 where the SNI server has http2 on, http/1.1 anywhere
    with connect(site, site.h2def, "default", ["h2"]) as s:
        assert s.selected_alpn_protocol() == "h2"
    with connect(site, site.h1def, "http2", ["h2"]) as s:
        assert s.selected_alpn_protocol() == "h2"
    with connect(site, site.h2def, "disabled", ["h2", "http/1.1"]) as s:
        assert s.selected_alpn_protocol() == "http/1.1"
        assert get(s, "disabled").endswith(b"disabled HTTP/1.1\n")
    with connect(site, site.h1def, None, ["h2", "http/1.1"]) as s:
        assert s.selected_alpn_protocol() == "http/1.1"
        assert get(s, "default").endswith(b"h1 default HTTP/1.1\n")


def test_no_alpn_or_older_http_is_not_refused(site: SimpleNamespace) -> None:
    # no ALPN extension at all: nothing to refuse
    ctx = ssl.create_default_context(cafile=site.ca)
    ctx.check_hostname = False
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", site.h1def), timeout=5),
                         server_hostname=None) as s:
        assert s.selected_alpn_protocol() is None
        assert get(s, "default").endswith(b"h1 default HTTP/1.1\n")
    # nginx would select http/1.0 (NGX_HTTP_ALPN_PROTOS); never a refusal
    with connect(site, site.h1def, None, ["http/1.0"]) as s:
        assert get(s, "default").endswith(b"h1 default HTTP/1.1\n")
