"""A directive set to 0 means what nginx makes of 0, not its default: merged settings carry
the configured value, and no use site re-applies a default over it (issue 13). Checked
against nginx where it is installed."""

from __future__ import annotations

import pytest
from harness import free_port, parse_responses, raw_request

CONF = """
server {
    listen 127.0.0.1:@@PORT@@;
    location /requests0 { keepalive_requests 0; return 204; }
    location /default { return 204; }
}
"""

TWO = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\nGET /default HTTP/1.1\r\nHost: x\r\n\r\n"


def _answers(port: int, path: str) -> list[str | None]:
    data, _ = raw_request(port, TWO % path.encode(), timeout=3.0)
    return [r.header("connection") for r in parse_responses(data)]


@pytest.mark.parametrize("path,expected", [
    ("/requests0", ["close"]),          # 1 request >= 0: not kept alive (ngx_http_core)
    ("/default", ["keep-alive", "keep-alive"]),
])
def test_zero_is_not_the_default(truehop, path, expected):
    port = free_port()
    truehop(CONF, port=port)
    assert _answers(port, path) == expected


def test_same_as_nginx(truehop, nginx):
    port, nport = free_port(), free_port()
    truehop(CONF, port=port)
    nginx(CONF, port=nport)
    for path in ("/requests0", "/default"):
        assert _answers(port, path) == _answers(nport, path), path
