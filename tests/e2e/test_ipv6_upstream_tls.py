"""IPv6 listeners and TLS upstreams (proxy_pass https://) end to end."""

from __future__ import annotations

import socket

import httpx
import pytest
import trustme
from harness import free_port


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6_listen_and_remote_addr(truehop, upstream):
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
    truehop("""
server {
    listen [::1]:@@PORT@@;
    location / {
        proxy_pass http://127.0.0.1:@@UP@@;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Server $server_addr:$server_port;
    }
}""", port=port, up=upstream.port)
    r = httpx.get(f"http://[::1]:{port}/six")
    assert r.status_code == 200
    rec = upstream.records[-1]
    assert rec.header("x-real-ip") == "::1"
    assert rec.header("x-forwarded-for") == "::1"
    assert rec.header("x-server") == f"::1:{port}"


def backend_pem(tmp_path) -> trustme.CA:
    """A new CA and, in tmp_path/backend.pem, a key and certificate for backend.test."""
    ca = trustme.CA()
    ca.issue_cert("backend.test").private_key_and_cert_chain_pem.write_to_path(
        str(tmp_path / "backend.pem"))
    return ca


@pytest.fixture
def tls_upstream(truehop, tmp_path):
    """A second truehop terminating TLS and saying which SNI it saw."""
    backend_pem(tmp_path).cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    port = free_port()
    truehop("""
server {
    listen 127.0.0.1:@@PORT@@ ssl;
    server_name backend.test;
    ssl_certificate @@PEM@@;
    ssl_certificate_key @@PEM@@;
    location / { return 200 "tls upstream sni=$ssl_server_name uri=$request_uri\\n"; }
}""", port=port, pem=tmp_path / "backend.pem")
    return port, tmp_path / "ca.pem"


def test_proxy_pass_https_with_sni_and_verification(truehop, tls_upstream):
    up_port, ca = tls_upstream
    port = free_port()
    truehop("""
server {
    listen 127.0.0.1:@@PORT@@;
    location /plain/ {
        proxy_pass https://127.0.0.1:@@UP@@;
        proxy_ssl_server_name on;
        proxy_ssl_name backend.test;
    }
    location /verified/ {
        proxy_pass https://127.0.0.1:@@UP@@;
        proxy_ssl_server_name on;
        proxy_ssl_name backend.test;
        proxy_ssl_verify on;
        proxy_ssl_trusted_certificate @@CA@@;
    }
    location /wrong-name/ {
        proxy_pass https://127.0.0.1:@@UP@@;
        proxy_ssl_server_name on;
        proxy_ssl_name other.test;
        proxy_ssl_verify on;
        proxy_ssl_trusted_certificate @@CA@@;
    }
}""", port=port, up=up_port, ca=ca)
    r = httpx.get(f"http://127.0.0.1:{port}/plain/x?y=1")
    assert r.status_code == 200
    assert r.text == "tls upstream sni=backend.test uri=/plain/x?y=1\n"
    assert httpx.get(f"http://127.0.0.1:{port}/verified/x").status_code == 200
    assert httpx.get(f"http://127.0.0.1:{port}/wrong-name/x").status_code == 502


def test_proxy_ssl_protocols(truehop, tmp_path):
    """proxy_ssl_protocols bounds the TLS versions toward the upstream (it was accepted and
    ignored): a TLSv1.3-only upstream is unreachable with `proxy_ssl_protocols TLSv1.2`."""
    backend_pem(tmp_path)
    up = free_port()
    truehop("""
server {
    listen 127.0.0.1:@@PORT@@ ssl;
    ssl_certificate @@PEM@@;
    ssl_certificate_key @@PEM@@;
    ssl_protocols TLSv1.3;
    location / { return 200 "$ssl_protocol\\n"; }
}""", port=up, pem=tmp_path / "backend.pem")
    port = free_port()
    truehop("""
server {
    listen 127.0.0.1:@@PORT@@;
    location /v12/ { proxy_pass https://127.0.0.1:@@UP@@; proxy_ssl_protocols TLSv1.2; }
    location /v13/ { proxy_pass https://127.0.0.1:@@UP@@; proxy_ssl_protocols TLSv1.2 TLSv1.3; }
}""", port=port, up=up, allow_log=["SSL_do_handshake() failed"])
    r = httpx.get(f"http://127.0.0.1:{port}/v13/")
    assert (r.status_code, r.text) == (200, "TLSv1.3\n")
    assert httpx.get(f"http://127.0.0.1:{port}/v12/").status_code == 502
