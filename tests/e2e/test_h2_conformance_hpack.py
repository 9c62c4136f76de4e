"""A header block that cannot be decoded ends the connection as nginx ends it (nginx-tests
h2_headers.t "invalid index", "zero index", "invalid table size", "invalid index length"):
GOAWAY COMPRESSION_ERROR naming the stream of that block, or FRAME_SIZE_ERROR when a field
runs past the end of the block ("client sent header block with incorrect length")."""

from __future__ import annotations

from typing import Any

import pytest
from harness import free_port
from hyperframe.frame import GoAwayFrame, HeadersFrame
from test_h2_conformance_keepalive import RawH2, ended, goaway

pytestmark = pytest.mark.timeout(60)

CONF = """
error_log error.log info;
events { }
http {
    server {
        listen 127.0.0.1:@@PORT@@ http2;
        location / { return 200 "ok"; }
    }
}
"""


def send_block(c: RawH2, sid: int, block: bytes) -> list[Any]:
    c.sock.sendall(HeadersFrame(sid, block, flags=["END_HEADERS", "END_STREAM"]).serialize())
    return c.read(lambda x: goaway(x) is not None)


def good_prefix(c: RawH2) -> bytes:
    return c.enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/"),
                         (":authority", "localhost")])


@pytest.mark.parametrize("tail, code", [
    (b"\xfe", 9),             # index 126: beyond both tables
    (b"\x80", 9),             # index 0 is never valid (RFC 7541 §6.1)
    (b"\xff", 6),             # an index whose integer runs past the block
    (b"\x42\xff", 6),         # a literal whose length runs past the block
])
def test_undecodable_block_goaway(truehop: Any, tail: bytes, code: int) -> None:
    port = free_port()
    truehop(CONF, PORT=port)
    c = RawH2(port)
    try:
        sid = c.get("/")                       # a good stream first: the GOAWAY names the bad one
        c.read(ended(sid))
        assert c.status[sid] == "200"
        fs = send_block(c, 3, good_prefix(c) + tail)
        g = goaway(fs)
        assert isinstance(g, GoAwayFrame)
        assert (g.error_code, g.last_stream_id) == (code, 3)
    finally:
        c.close()


def test_table_size_above_settings_is_compression_error(truehop: Any) -> None:
    port = free_port()
    truehop(CONF, PORT=port)
    c = RawH2(port)
    try:
        # a dynamic table size update to 4097, above SETTINGS_HEADER_TABLE_SIZE (4096)
        fs = send_block(c, 1, b"\x3f\xe2\x1f" + good_prefix(c))
        g = goaway(fs)
        assert isinstance(g, GoAwayFrame)
        assert (g.error_code, g.last_stream_id) == (9, 1)
    finally:
        c.close()
