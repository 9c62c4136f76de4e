"""HTTP/2 hardening (issue 14, items 3 and 4), frame by frame against the real truehop.

- A stream over `http2_max_concurrent_streams` is a stream error (RFC 9113 §5.1.2): refused
  alone with RST_STREAM(REFUSED_STREAM), the others served, the connection kept; also when
  the excess comes in the client's first flight, before it has seen our SETTINGS (nginx:
  "concurrent streams exceeded").
- `content-length: 0` followed by DATA (bad-input.md H02, PortSwigger's H2.CL): the request
  is malformed (RFC 9113 §8.1.1); nginx answers 400 on the stream and forwards nothing,
  whether the DATA comes in the same read as the HEADERS or later.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from harness import free_port
from hyperframe.frame import DataFrame, Frame, GoAwayFrame, HeadersFrame, RstStreamFrame
from test_h2_conformance_headers import Client, request

pytestmark = pytest.mark.timeout(60)

REFUSED_STREAM = 0x7
PROTOCOL_ERROR = 0x1

CONF = """
error_log error.log info;
events { }
http {
    http2 on;
    http2_max_concurrent_streams 4;
    server {
        listen 127.0.0.1:@@PORT@@;
        location / { proxy_pass http://127.0.0.1:@@APP@@; }
    }
}
"""


def _ended(sids: set[int]) -> Any:
    """Read until every stream in `sids` ended (END_STREAM or RST_STREAM), or GOAWAY."""
    def done(fs: list[Frame]) -> bool:
        if any(isinstance(f, GoAwayFrame) for f in fs):
            return True
        over = {f.stream_id for f in fs
                if isinstance(f, RstStreamFrame) or "END_STREAM" in f.flags}
        return sids <= over
    return done


@pytest.mark.parametrize("first_flight", [True, False])
def test_excess_stream_refused_alone(truehop: Any, upstream: Any, first_flight: bool) -> None:
    port = free_port()
    truehop(CONF, PORT=port, APP=upstream.port)
    c = Client(port)
    try:
        if not first_flight:
            # the client has seen our SETTINGS (and acknowledged them) before it exceeds them
            c.read(lambda fs: any(f.type == 0x4 and not f.flags for f in fs))
            c.sock.sendall(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")      # SETTINGS ACK
        # five streams at once, each held by the upstream for a while: the fifth is one too
        # many for http2_max_concurrent_streams 4
        blocks = []
        for _ in range(5):
            c.sid += 2
            blocks.append(HeadersFrame(c.sid, c.enc.encode(request("/__slow?ms=400")),
                                       flags=["END_HEADERS", "END_STREAM"]).serialize())
        c.sock.sendall(b"".join(blocks))
        frames = c.read(_ended({1, 3, 5, 7, 9}), wait=10.0)
        assert not [f for f in frames if isinstance(f, GoAwayFrame)], \
            "one stream too many ended the whole connection"
        resets = {f.stream_id: f.error_code for f in frames if isinstance(f, RstStreamFrame)}
        assert resets == {9: REFUSED_STREAM}
        statuses = {sid: dict(c.headers.get(sid, [])).get(":status") for sid in (1, 3, 5, 7)}
        assert statuses == {1: "200", 3: "200", 5: "200", 7: "200"}
        # the connection goes on
        sid = c.send(request("/after"))
        assert c.response(sid)[":status"] == "200"
    finally:
        c.close()
    assert [r.path for r in upstream.records].count("/__slow") == 4


def _cl0_post(c: Client) -> bytes:
    c.sid += 2
    block = c.enc.encode([(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/h2"),
                          (b":authority", b"localhost"), (b"content-length", b"0")])
    return HeadersFrame(c.sid, block, flags=["END_HEADERS"]).serialize()


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n"


@pytest.mark.parametrize("same_read", [True, False])
def test_content_length_0_then_data_is_refused(truehop: Any, upstream: Any,
                                               same_read: bool) -> None:
    """bad-input.md H02: nginx answers 400 on the stream, forwards nothing."""
    port = free_port()
    tp = truehop(CONF, PORT=port, APP=upstream.port)
    c = Client(port)
    try:
        head = _cl0_post(c)
        data = DataFrame(c.sid, SMUGGLED, flags=["END_STREAM"]).serialize()
        if same_read:
            c.sock.sendall(head + data)           # HEADERS and DATA in one segment
        else:
            c.sock.sendall(head)
            time.sleep(0.3)                       # the request is read; its DATA comes later
            c.sock.sendall(data)
        sid = c.sid
        frames = c.read(_ended({sid}), wait=5.0)
        status = dict(c.headers.get(sid, [])).get(":status")
        reset = [f.error_code for f in frames if isinstance(f, RstStreamFrame) and
                 f.stream_id == sid]
        assert status == "400" or reset == [PROTOCOL_ERROR], (status, reset)
        assert not [f for f in frames if isinstance(f, GoAwayFrame)]
        # the connection goes on, and the upstream never saw the malformed request
        sid = c.send(request("/after"))
        assert c.response(sid)[":status"] == "200"
    finally:
        c.close()
    assert [r.path for r in upstream.records] == ["/after"]
    tp.wait_for_log("client intended to send body data larger than declared")


def test_content_length_0_with_empty_end_is_forwarded(truehop: Any, upstream: Any) -> None:
    """The well-formed case: content-length 0, then an empty DATA with END_STREAM."""
    port = free_port()
    truehop(CONF, PORT=port, APP=upstream.port)
    c = Client(port)
    try:
        head = _cl0_post(c)
        c.sock.sendall(head)
        time.sleep(0.2)
        c.sock.sendall(DataFrame(c.sid, b"", flags=["END_STREAM"]).serialize())
        assert c.response(c.sid)[":status"] == "200"
    finally:
        c.close()
    rec = upstream.wait_for_records(1)
    assert rec[0].method == "POST" and rec[0].header("Content-Length") == "0"


def test_content_length_0_stream_never_ended_times_out(truehop: Any, upstream: Any) -> None:
    """Held until its stream ends, a content-length 0 request is bounded by
    client_body_timeout, as a body that stops arriving: 408, nothing forwarded."""
    port = free_port()
    truehop(CONF.replace("http2 on;", "http2 on;\n    client_body_timeout 1s;"),
            PORT=port, APP=upstream.port)
    c = Client(port)
    try:
        c.sock.sendall(_cl0_post(c))
        sid = c.sid
        t0 = time.monotonic()
        frames = c.read(_ended({sid}), wait=5.0)
        assert time.monotonic() - t0 < 4.0
        status = dict(c.headers.get(sid, [])).get(":status")
        reset = [f for f in frames if isinstance(f, RstStreamFrame) and f.stream_id == sid]
        assert status == "408" or reset, (status, frames)
        sid = c.send(request("/after"))
        assert c.response(sid)[":status"] == "200"
    finally:
        c.close()
    assert [r.path for r in upstream.records] == ["/after"]


UNBUFFERED = CONF.replace("location / {", "location / { proxy_request_buffering off;")


def test_content_length_0_unbuffered_goes_upstream_at_once(truehop: Any, upstream: Any) -> None:
    """With proxy_request_buffering off, nginx sends the head of a declared-empty request
    upstream at once, before the stream ends (nginx-tests h2_proxy_request_buffering.t,
    'empty'); holding it until END_STREAM is only the buffered behaviour."""
    port = free_port()
    truehop(UNBUFFERED, PORT=port, APP=upstream.port)
    c = Client(port)
    try:
        c.sock.sendall(_cl0_post(c))
        deadline = time.monotonic() + 5.0
        while not upstream.records and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [r.path for r in upstream.records] == ["/h2"]
        assert upstream.records[0].header("content-length") == "0"
        sid = c.sid
        c.sock.sendall(DataFrame(sid, b"", flags=["END_STREAM"]).serialize())
        frames = c.read(_ended({sid}), wait=5.0)
        assert dict(c.headers.get(sid, [])).get(":status") == "200", frames
    finally:
        c.close()
