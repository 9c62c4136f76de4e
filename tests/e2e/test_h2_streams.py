"""HTTP/2 streams as request flows (net.h2conn runs each as a net.flow.Flow), frame by frame
against the real truehop: a stream reset while its request waits on the upstream is stopped
as a client gone (499, at once), and a stream opened and reset in the same read never reaches
the pipeline; the connection goes on in both cases.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from harness import free_port
from hyperframe.frame import HeadersFrame, RstStreamFrame
from test_h2_conformance_headers import Client, request

pytestmark = pytest.mark.timeout(60)

CANCEL = 0x8

CONF = """
error_log error.log info;
events { }
http {
    http2 on;
    server {
        listen 127.0.0.1:@@PORT@@;
        location / { proxy_pass http://127.0.0.1:@@APP@@; }
    }
}
"""


def test_stream_reset_while_upstream_slow_is_499_at_once(truehop: Any, upstream: Any) -> None:
    port = free_port()
    tp = truehop(CONF, PORT=port, APP=upstream.port)
    c = Client(port)
    try:
        sid = c.send(request("/__slow?ms=3000"))
        upstream.wait_for_records(1)
        c.sock.sendall(RstStreamFrame(sid, error_code=CANCEL).serialize())
        t0 = time.monotonic()
        tp.wait_for_log('"GET /__slow?ms=3000 HTTP/2.0" 499', log="access", timeout=2.5)
        assert time.monotonic() - t0 < 2.0
        after = c.send(request("/after"))
        assert c.response(after)[":status"] == "200"
    finally:
        c.close()


def test_stream_opened_and_reset_in_one_read_never_starts(truehop: Any, upstream: Any) -> None:
    port = free_port()
    tp = truehop(CONF, PORT=port, APP=upstream.port)
    c = Client(port)
    try:
        c.sid += 2
        block = c.enc.encode(request("/gone"))
        c.sock.sendall(HeadersFrame(c.sid, block, flags=["END_HEADERS", "END_STREAM"])
                       .serialize() + RstStreamFrame(c.sid, error_code=CANCEL).serialize())
        after = c.send(request("/after"))
        assert c.response(after)[":status"] == "200"
    finally:
        c.close()
    assert [r.path for r in upstream.records] == ["/after"]
    tp.wait_for_log('"GET /after HTTP/2.0" 200', log="access")
    assert "/gone" not in tp.access_log()
