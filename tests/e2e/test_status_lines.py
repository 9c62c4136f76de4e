"""Status lines and built-in pages come from one table (http/status.py), nginx's: a status
nginx has no reason phrase for is written "HTTP/1.1 407 " and, as a special response, has no
page ("unknown code, zero body"). Compared with the real nginx where it is installed."""

from __future__ import annotations

import pytest
from harness import free_port, raw_request

CONF = """
server {
    listen 127.0.0.1:@@PORT@@;
    location /407 { return 407; }
    location /203 { return 203; }
    location /404 { return 404; }
    location /302 { return 302 /elsewhere; }
    location /401 { return 401; }
}
"""

NGINX_CONF = CONF

# status -> (status line, whether the built-in page has a body, its title)
CASES = [
    ("/407", b"HTTP/1.1 407 \r\n", 0, None),
    ("/203", b"HTTP/1.1 203 \r\n", 0, None),
    ("/404", b"HTTP/1.1 404 Not Found\r\n", 1, b"<title>404 Not Found</title>"),
    ("/302", b"HTTP/1.1 302 Moved Temporarily\r\n", 1, b"<title>302 Found</title>"),
    ("/401", b"HTTP/1.1 401 Unauthorized\r\n", 1, b"<title>401 Authorization Required</title>"),
]


def _get(port: int, path: str) -> bytes:
    data, _ = raw_request(port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                          .encode(), timeout=5.0)
    return data


@pytest.mark.parametrize("path,line,has_body,title", CASES)
def test_status_line_and_page(truehop, path, line, has_body, title):
    port = free_port()
    truehop(CONF, port=port)
    data = _get(port, path)
    assert data.startswith(line), data[:80]
    head, _, body = data.partition(b"\r\n\r\n")
    assert bool(body) == bool(has_body), data
    if title is not None:
        assert title in body
    else:
        assert b"Content-Length: 0\r\n" in head


def test_same_as_nginx(truehop, nginx):
    """The status line and the page's presence, byte for byte as nginx writes them (the
    Server line and Date aside)."""
    port, nport = free_port(), free_port()
    truehop(CONF, port=port)
    nginx(NGINX_CONF, port=nport)
    for path, *_ in CASES:
        ours, theirs = _get(port, path), _get(nport, path)
        assert ours.split(b"\r\n", 1)[0] == theirs.split(b"\r\n", 1)[0], path
        ours_body = ours.partition(b"\r\n\r\n")[2]
        theirs_body = theirs.partition(b"\r\n\r\n")[2]
        assert bool(ours_body) == bool(theirs_body), path
