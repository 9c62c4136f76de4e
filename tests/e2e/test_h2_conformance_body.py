"""A request body that is not what its content-length says is answered 400 on its stream, as
nginx does (ngx_http_v2_filter_request_body; h2_proxy_request_buffering.t "much", "less"),
instead of ending the whole connection; nothing past the declared length is forwarded."""

from __future__ import annotations

from typing import Any

import pytest
from harness import free_ports
from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame
from test_h2_conformance_headers import Client

pytestmark = pytest.mark.timeout(60)

CONF = """
error_log error.log info;
events { }
http {
    http2 on;
    server {
        listen 127.0.0.1:@@PORT@@;
        location / { proxy_pass http://127.0.0.1:@@DEAD@@; }
    }
}
"""


@pytest.mark.parametrize("parts, status", [
    ([b"0123456789", b"many"], "400"),     # larger than declared
    ([b"0123", b"56789"], "400"),          # the stream ends short
    ([b"01234", b"56789"], "502"),         # exact: forwarded (no upstream listens)
])
def test_body_length_mismatch_is_400(truehop: Any, parts: list[bytes], status: str) -> None:
    port, dead = free_ports(2)
    truehop(CONF, PORT=port, DEAD=dead)
    c = Client(port)
    try:
        block = c.enc.encode([(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/"),
                              (b":authority", b"localhost"), (b"content-length", b"10")])
        c.sock.sendall(HeadersFrame(1, block, flags=["END_HEADERS"]).serialize() +
                       DataFrame(1, parts[0]).serialize() +
                       DataFrame(1, parts[1], flags=["END_STREAM"]).serialize())
        h = c.response(1)
        assert h.get(":status") == status
        assert not any(isinstance(f, GoAwayFrame) for f in c.frames)
        c.sid = 1
        sid = c.send([(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
                      (b":authority", b"localhost")])
        assert c.response(sid)[":status"] == "502"      # the connection goes on
    finally:
        c.close()
