"""$server_name is the chosen server's first name as written, and a request without Host is
routed by the empty name (a `server_name ""` server), as in nginx."""

from __future__ import annotations

import pytest
from harness import free_port, raw_request

CONF = r"""
server {
    listen 127.0.0.1:@@PORT@@;
    server_name localhost;
    location / { return 200 "s=[$server_name] h=[$host]"; }
}
server {
    listen 127.0.0.1:@@PORT@@;
    server_name "";
    location / { return 200 "s=[$server_name] h=[$host]"; }
}
server {
    listen 127.0.0.1:@@PORT@@;
    server_name ~^EXAMPLE\.COM$ other.test;
    location / { return 200 "s=[$server_name] h=[$host]"; }
}
server {
    listen 127.0.0.1:@@PORT@@;
    server_name .dot.example.com;
    location / { return 200 "s=[$server_name] h=[$host]"; }
}
server {
    listen 127.0.0.1:@@PORT@@;
    server_name *.wc.example.com;
    location / { return 200 "s=[$server_name] h=[$host]"; }
}
"""


@pytest.mark.parametrize("host,body", [
    (None, b"s=[] h=[]"),
    ("xxx", b"s=[localhost] h=[xxx]"),
    ("example.com", b"s=[~^EXAMPLE\\.COM$] h=[example.com]"),
    ("www.dot.example.com", b"s=[dot.example.com] h=[www.dot.example.com]"),
    ("a.wc.example.com", b"s=[*.wc.example.com] h=[a.wc.example.com]"),
])
def test_server_name_variable(truehop, host: str | None, body: bytes) -> None:
    port = free_port()
    truehop(CONF, port=port)
    req = b"GET / HTTP/1.0\r\n" + (f"Host: {host}\r\n".encode() if host else b"") + b"\r\n"
    raw, _ = raw_request(port, req)
    assert raw.startswith(b"HTTP/1.1 200") and raw.endswith(body), raw
