"""The host of an absolute redirect (nginx's header filter): the request's Host, else the
address the connection came in on, never the server_name fallback of $host (nginx-tests
http_absolute_redirect.t #12)."""

from __future__ import annotations

import pytest
from harness import free_port, parse_responses, raw_request

CONF = """
server {
    listen 127.0.0.1:@@PORT@@;
    server_name front;
    error_page 400 /ret;

    location /ret { return 301 /redirect; }
    location /named {
        server_name_in_redirect on;
        return 301 /redirect;
    }
    location /host { return 200 "$host"; }
}
server {
    listen 127.0.0.1:@@PORT2@@;
    server_name _;
    location /ret { return 302 /redirect; }
}
"""


@pytest.fixture
def ports(truehop):
    p, p2 = free_port(), free_port()
    truehop(CONF, PORT=p, PORT2=p2)
    return p, p2


def location(port: int, req: bytes) -> str | None:
    raw, _ = raw_request(port, req)
    r = parse_responses(raw)
    assert r, raw
    return r[0].header("Location")


def test_no_host_uses_local_address(ports):
    p, p2 = ports
    assert location(p, b"GET /ret HTTP/1.0\r\n\r\n") == f"http://127.0.0.1:{p}/redirect"
    assert location(p2, b"GET /ret HTTP/1.0\r\n\r\n") == f"http://127.0.0.1:{p2}/redirect"
    # $host still falls back to server_name
    raw, _ = raw_request(p, b"GET /host HTTP/1.0\r\n\r\n")
    assert parse_responses(raw)[0].body == b"front"


def test_invalid_host_uses_local_address(ports):
    # the 400 goes to error_page, whose redirect has no valid Host to use
    p, _ = ports
    assert location(p, b"GET /x HTTP/1.0\r\nHost: .\r\n\r\n") == \
        f"http://127.0.0.1:{p}/redirect"


def test_host_and_server_name_in_redirect(ports):
    p, _ = ports
    assert location(p, b"GET /ret HTTP/1.0\r\nHost: Example.TEST:81\r\n\r\n") == \
        f"http://example.test:{p}/redirect"
    assert location(p, b"GET /named HTTP/1.0\r\nHost: other\r\n\r\n") == \
        f"http://front:{p}/redirect"
