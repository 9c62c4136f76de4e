"""HTTP/2 request and response headers as nginx handles them (nginx-tests h2_headers.t):
header blocks larger than 16 kB in one frame (nginx advertises SETTINGS_MAX_FRAME_SIZE 2^24-1)
and response header frames cut at the client's SETTINGS_MAX_FRAME_SIZE; a request with an
invalid header name or value answered 400 on its stream; large_client_header_buffers ending
the connection with GOAWAY ENHANCE_YOUR_CALM; an overlong HPACK integer refused before its
frame is complete. Raw frames (hyperframe + hpack)."""

from __future__ import annotations

import socket
from typing import Any

import hpack
import pytest
from harness import free_ports
from hyperframe.frame import (
    ContinuationFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

pytestmark = pytest.mark.timeout(60)

CONF = """
error_log error.log info;
events { }
http {
    http2 on;
    server {
        listen 127.0.0.1:@@MAIN@@;
        listen 127.0.0.1:@@SMALLBUF@@ sndbuf=128;
        server_name localhost;
        large_client_header_buffers 2 64k;
        location / {
            add_header X-Sent-Foo $http_x_foo;
            add_header X-Referer $http_referer;
            return 200;
        }
        location /continuation {
            add_header X-LongHeader $arg_h;
            add_header X-LongHeader $arg_h;
            add_header X-LongHeader $arg_h;
            return 200 body;
        }
    }
    server {
        listen 127.0.0.1:@@FIELD@@;
        large_client_header_buffers 4 512;
        location / { return 200 ok; }
    }
    server {
        listen 127.0.0.1:@@TOTAL@@;
        large_client_header_buffers 1 512;
        location / { return 200 ok; }
    }
    server {
        listen 127.0.0.1:@@KEEP@@;
        ignore_invalid_headers off;
        location / {
            add_header X-Sent-Foo $http_x_foo always;
            return 200;
        }
    }
}
"""

Fields = list[tuple[bytes, bytes]]


class Client:
    """HTTP/2 with prior knowledge, frame by frame; header blocks reassembled across
    CONTINUATION and decoded in order."""

    def __init__(self, port: int, settings: dict[int, int] | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.dec.max_header_list_size = 1 << 20
        self.buf = b""
        self.sid = -1
        self.headers: dict[int, list[tuple[str, str]]] = {}
        self._block = b""
        init = {SettingsFrame.INITIAL_WINDOW_SIZE: 2 ** 20}
        init.update(settings or {})
        self.sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" +
                          SettingsFrame(0, settings=init).serialize() +
                          WindowUpdateFrame(0, window_increment=2 ** 21).serialize())

    def send(self, fields: Fields, huffman: bool = False) -> int:
        self.sid += 2
        block = self.enc.encode(fields, huffman=huffman)
        self.sock.sendall(HeadersFrame(self.sid, block, flags=["END_HEADERS", "END_STREAM"]
                                       ).serialize())
        return self.sid

    def read(self, until: Any, wait: float = 5.0) -> list[Frame]:
        frames: list[Frame] = []
        self.sock.settimeout(wait)
        while not until(frames):
            while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
                try:
                    d = self.sock.recv(65536)
                except (TimeoutError, ConnectionResetError):
                    return frames
                if not d:
                    return frames
                self.buf += d
            f, n = Frame.parse_frame_header(memoryview(self.buf[:9]))
            f.parse_body(memoryview(self.buf[9:9 + n]))
            f.length = n    # type: ignore[attr-defined]
            self.buf = self.buf[9 + n:]
            if isinstance(f, (HeadersFrame, ContinuationFrame)):
                self._block += f.data
                if "END_HEADERS" in f.flags:
                    self.headers[f.stream_id] = [
                        (k.decode(), v.decode()) for k, v in self.dec.decode(self._block,
                                                                             raw=True)]
                    self._block = b""
            frames.append(f)
        return frames

    def response(self, sid: int) -> dict[str, Any]:
        """Frames until the stream ends or GOAWAY; the response's header fields (lists for
        repeated ones)."""
        def done(fs: list[Frame]) -> bool:
            return any(isinstance(f, GoAwayFrame) or
                       (f.stream_id == sid and "END_STREAM" in f.flags) for f in fs)
        self.frames = self.read(done)
        out: dict[str, Any] = {}
        for k, v in self.headers.get(sid, []):
            out.setdefault(k, []).append(v)
        return {k: v[0] if len(v) == 1 else v for k, v in out.items()}

    def goaway(self) -> GoAwayFrame | None:
        for f in getattr(self, "frames", []):
            if isinstance(f, GoAwayFrame):
                return f
        return None

    def close(self) -> None:
        self.sock.close()


def request(path: str = "/", extra: Fields = (), authority: bytes = b"localhost",  # type: ignore[assignment]
            drop: bytes | None = None) -> Fields:
    base = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", path.encode()),
            (b":authority", authority)]
    return [f for f in base if f[0] != drop] + list(extra)


@pytest.fixture
def server(truehop: Any) -> dict[str, int]:
    names = ["MAIN", "SMALLBUF", "FIELD", "TOTAL", "KEEP"]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    truehop(CONF, **ports)
    return ports


def test_large_header_frames_both_ways(server: dict[str, int]) -> None:
    # h2_headers.t "response header - parts": a 32 kB request header block in one HEADERS
    # frame (nginx reads frames up to 2^24-1); the client allows 2^17-byte frames, so the
    # 96 kB response header block may come in one HEADERS frame, written in parts (sndbuf=128)
    c = Client(server["SMALLBUF"], {SettingsFrame.MAX_FRAME_SIZE: 2 ** 17})
    try:
        sid = c.send(request("/continuation?h=" + "x" * 2 ** 15))
        h = c.response(sid)
        assert c.goaway() is None
        assert h[":status"] == "200"
        assert len("".join(h["x-longheader"])) == 98304
        hdr = [f for f in c.frames if isinstance(f, (HeadersFrame, ContinuationFrame))]
        assert max(f.length for f in hdr) <= 2 ** 17    # type: ignore[attr-defined]
    finally:
        c.close()


def test_response_header_block_split_at_default_frame_size(server: dict[str, int]) -> None:
    # h2_headers.t "response header split": the client's default 16 kB frame size
    c = Client(server["SMALLBUF"])
    try:
        sid = c.send(request("/continuation?h=" + "x" * 2 ** 15))
        h = c.response(sid)
        assert len("".join(h["x-longheader"])) == 98304
        hdr = [f for f in c.frames if isinstance(f, (HeadersFrame, ContinuationFrame))]
        assert len(hdr) > 1 and max(f.length for f in hdr) <= 2 ** 14  # type: ignore[attr-defined]
    finally:
        c.close()


@pytest.mark.parametrize("fields, why", [
    (request("/", [(b"x-foo", b"x-bar\r\nreferer:see-this")]), "newline in value"),
    (request("/", [(b"x:foo", b"x-bar"), (b"referer", b"see-this")]), "colon in name"),
    (request("/", [(b"x foo", b"bar")]), "space in name"),
    (request("/", [(b"foo\x02", b"bar")]), "control in name"),
    (request("/", [(b"X-Foo", b"bar")]), "upper case in name"),
    (request("/", [(b"x-foo", b"a\x00b")]), "NUL in value"),
    (request("/", drop=b":scheme"), "no :scheme"),
    (request("/", drop=b":path"), "no :path"),
])
def test_invalid_request_header_answered_400(server: dict[str, int], fields: Fields,
                                             why: str) -> None:
    c = Client(server["MAIN"])
    try:
        sid = c.send(fields)
        h = c.response(sid)
        assert h.get(":status") == "400", why
        assert h.get("x-referer") != "see-this"
        # the stream is answered, and the connection serves the next one
        sid = c.send(request("/"))
        assert c.response(sid)[":status"] == "200"
    finally:
        c.close()


def test_invalid_name_dropped_or_kept(server: dict[str, int]) -> None:
    # "after invalid header name": '_' (underscores_in_headers off) or '.' only make the
    # field invalid; ignore_invalid_headers drops it and reads on
    c = Client(server["MAIN"])
    try:
        sid = c.send(request("/", [(b"x_foo", b"x-bar"), (b"x.foo", b"1"),
                                   (b"referer", b"see-this")]))
        h = c.response(sid)
        assert h[":status"] == "200" and h["x-referer"] == "see-this"
        assert "x-sent-foo" not in h
    finally:
        c.close()
    c = Client(server["KEEP"])           # ignore_invalid_headers off: kept
    try:
        sid = c.send(request("/", [(b"x_foo", b"x-bar")]))
        assert c.response(sid)["x-sent-foo"] == "x-bar"     # $http_x_foo finds x_foo
        sid = c.send(request("/", [(b"x.y", b"1"), (b"x-foo", b"x-baz")]))
        assert c.response(sid)["x-sent-foo"] == "x-baz"
    finally:
        c.close()


@pytest.mark.parametrize("field", [(b"x" * 513, b"value"), (b"name", b"x" * 513)])
def test_field_over_buffer_size_goaway(server: dict[str, int], field: tuple[bytes, bytes]
                                       ) -> None:
    # "field name/value size greater": large_client_header_buffers 4 512
    c = Client(server["FIELD"])
    try:
        ok = c.send(request("/", [(field[0][:512], field[1][:512])]))
        assert c.response(ok)[":status"] == "200"
        sid = c.send(request("/", [field]))
        c.response(sid)
        g = c.goaway()
        assert g is not None and (g.error_code, g.last_stream_id) == (0xB, sid)
        assert sid not in c.headers
    finally:
        c.close()


def test_header_list_over_size_times_number_goaway(server: dict[str, int]) -> None:
    # "header size equal/greater", "header size indexed greater": large_client_header_buffers
    # 1 512 bounds the decoded names and values, pseudo-headers included
    base = sum(len(n) + len(v) for n, v in request("/t2.html"))
    c = Client(server["TOTAL"])
    try:
        sid = c.send(request("/t2.html", [(b"longname", b"x" * (512 - base - 8))]))
        assert c.response(sid)[":status"] == "200"
        sid = c.send(request("/t2.html", [(b"longname", b"x" * (513 - base - 8))]))
        c.response(sid)
        g = c.goaway()
        assert g is not None and g.error_code == 0xB
    finally:
        c.close()
    c = Client(server["TOTAL"])
    try:
        lit = [(b"longname", b"x" * 400)]
        sid = c.send(request("/t2.html", lit))         # into the dynamic table
        assert c.response(sid)[":status"] == "200"
        sid = c.send(request("/t2.html", lit * 2))     # two indexed bytes, 800 decoded
        c.response(sid)
        g = c.goaway()
        assert g is not None and g.error_code == 0xB
    finally:
        c.close()


@pytest.mark.parametrize("payload", [b"\xff\xff\xff\xff", b"\x42\xff\xff\xff\xff"])
def test_too_long_integer_refused_without_waiting(server: dict[str, int], payload: bytes
                                                  ) -> None:
    # "too long index" / "too long literal": the frame announces one byte more than is sent;
    # nginx answers COMPRESSION_ERROR from the 4 octets it has
    c = Client(server["MAIN"])
    try:
        c.sock.sendall(len(payload + b"\x00").to_bytes(3, "big") + b"\x01\x05" +
                       (1).to_bytes(4, "big") + payload)
        c.frames = c.read(lambda fs: any(isinstance(f, GoAwayFrame) for f in fs), wait=3.0)
        g = c.goaway()
        assert g is not None and (g.error_code, g.last_stream_id) == (0x9, 1)
    finally:
        c.close()
