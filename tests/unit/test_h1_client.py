"""H1ResponseParser: upstream faults (bad-input.md table K, §5.2) and normal framing, fed whole
and byte by byte; request_head_bytes validation."""

from __future__ import annotations

import pytest

from truehop.http.events import (
    Data,
    EndOfMessage,
    Event,
    InformationalResponse,
    ProtocolError,
    Response,
)
from truehop.http.h1client import MAX_INTERIM, H1ResponseParser, request_head_bytes


def merge(events: list[Event]) -> list[Event]:
    out: list[Event] = []
    for ev in events:
        if type(ev) is Data and out and type(out[-1]) is Data:
            prev = out.pop()
            assert isinstance(prev, Data)
            out.append(Data(prev.data + ev.data))
        else:
            out.append(ev)
    return out


def run(data: bytes, split: bool, method: str = "GET", eof: bool = True,
        max_head: int = 65536) -> tuple[list[Event], tuple[int, str] | None]:
    p = H1ResponseParser(method, max_head=max_head)
    events: list[Event] = []
    try:
        if split:
            for i in range(len(data)):
                events += p.feed(data[i:i + 1])
        else:
            events += p.feed(data)
        if eof:
            events += p.feed_eof()
    except ProtocolError as e:
        return merge(events), (e.status, e.reason)
    return merge(events), None


def both(data: bytes, method: str = "GET", eof: bool = True, max_head: int = 65536
         ) -> tuple[list[Event], tuple[int, str] | None]:
    whole = run(data, False, method, eof, max_head)
    split = run(data, True, method, eof, max_head)
    if whole[1] is None:
        assert whole == split
    else:
        # a fault raises at once: events of the failing feed are not delivered; the error is
        assert whole[1] == split[1]
    return whole


def body(events: list[Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Data))


# -- table K / §5.2: faults -----------------------------------------------------------------------

FAULTS = [
    ("R08", b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000,
     "upstream prematurely closed connection while reading upstream"),
    ("R09", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
     "upstream prematurely closed connection while reading upstream"),
    ("R10", b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"a" * 65536 + b"\r\n\r\n",
     "upstream sent too big header"),
    ("R11", b"HELLO WORLD\r\n\r\n", "upstream sent no valid HTTP/1.0 header"),
    ("R12", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 4\r\n\r\nabcd",
     "upstream sent duplicate header line: \"Content-Length\""),
    ("R12b", b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd",
     "upstream sent duplicate header line: \"Content-Length\""),
    ("R13", b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"0\r\n\r\n",
     "upstream sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time"),
    ("R14", b"HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 0\r\n\r\n",
     "upstream sent invalid header"),
    ("obs-fold", b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",
     "upstream sent invalid header"),
    ("nul", b"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 0\r\n\r\n",
     "upstream sent invalid header"),
    ("bad-cl", b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
     "upstream sent invalid \"Content-Length\" header"),
    ("cl-underscore", b"HTTP/1.1 200 OK\r\nContent-Length: 5_0\r\n\r\nhello",
     "upstream sent invalid \"Content-Length\" header"),
    ("te-gzip", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx",
     "upstream sent unknown \"Transfer-Encoding\""),
    ("te-gzip-chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
     "upstream sent unknown \"Transfer-Encoding\""),
    ("te-twice", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked"
                 b"\r\n\r\n0\r\n\r\n",
     "upstream sent duplicate header line: \"Transfer-Encoding\""),
    ("http09", b"<html>hello</html>", "upstream sent no valid HTTP/1.0 header"),
    ("http2", b"HTTP/2.0 200 OK\r\n\r\n", "upstream sent no valid HTTP/1.0 header"),
    ("status-2digit", b"HTTP/1.1 20 OK\r\n\r\n", "upstream sent no valid HTTP/1.0 header"),
    ("status-letters", b"HTTP/1.1 2x0 OK\r\n\r\n", "upstream sent no valid HTTP/1.0 header"),
    ("reason-ctl", b"HTTP/1.1 200 O\x01K\r\n\r\n", "upstream sent no valid HTTP/1.0 header"),
    ("chunk-bad", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
     "upstream sent invalid chunked response"),
    ("chunk-bare-lf", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n",
     "upstream sent invalid chunked response"),
    ("nothing", b"", "upstream prematurely closed connection while reading response header from "
                     "upstream"),
    ("half-head", b"HTTP/1.1 200 OK\r\nContent-Le",
     "upstream prematurely closed connection while reading response header from upstream"),
    ("space-before-colon", b"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
     "upstream sent invalid header"),
]


@pytest.mark.parametrize("data,reason", [(d, r) for _, d, r in FAULTS],
                         ids=[i for i, _, _ in FAULTS])
def test_faults_are_502(data: bytes, reason: str) -> None:
    _, err = both(data)
    assert err == (502, reason)


def test_r10_limit_is_max_head() -> None:
    head = b"HTTP/1.1 200 OK\r\nX: " + b"a" * 5000 + b"\r\nContent-Length: 0\r\n\r\n"
    _, err = both(head, max_head=4096)
    assert err == (502, "upstream sent too big header")
    ev, err = both(head, max_head=8192)
    assert err is None and isinstance(ev[0], Response)


def test_too_many_interim() -> None:
    data = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" * (MAX_INTERIM + 1)
    _, err = both(data + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert err is not None and err[0] == 502


# -- framing ---------------------------------------------------------------------------------------


def test_content_length() -> None:
    ev, err = both(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX:  v \r\n\r\nhello", eof=False)
    assert err is None
    assert isinstance(ev[0], Response)
    h = ev[0].head
    assert (h.status, h.reason, h.version, h.content_length, h.chunked, h.keep_alive,
            h.until_close) == (200, "OK", "1.1", 5, False, True, False)
    assert h.headers == [("Content-Length", "5"), ("X", "v")]
    assert body(ev) == b"hello" and isinstance(ev[-1], EndOfMessage)


def test_chunked_with_trailers_dropped() -> None:
    ev, err = both(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n"
                   b"6\r\n world\r\n0\r\nX-T: 1\r\n\r\n", eof=False)
    assert err is None and body(ev) == b"hello world" and isinstance(ev[-1], EndOfMessage)
    assert isinstance(ev[0], Response)
    assert ev[0].head.chunked and ev[0].head.content_length is None


def test_until_close() -> None:
    ev, err = both(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome bytes")
    assert err is None
    assert isinstance(ev[0], Response)
    assert ev[0].head.until_close and not ev[0].head.keep_alive
    assert body(ev) == b"some bytes" and isinstance(ev[-1], EndOfMessage)


def test_http10_keep_alive_rules() -> None:
    ev, _ = both(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", eof=False)
    assert isinstance(ev[0], Response) and not ev[0].head.keep_alive
    ev, _ = both(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
                 eof=False)
    assert isinstance(ev[0], Response) and ev[0].head.keep_alive
    ev, _ = both(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", eof=False)
    assert isinstance(ev[0], Response) and not ev[0].head.keep_alive


@pytest.mark.parametrize("method,status", [("HEAD", 200), ("GET", 204), ("GET", 304)])
def test_no_body(method: str, status: int) -> None:
    data = b"HTTP/1.1 %d X\r\nContent-Length: 10\r\n\r\n" % status
    ev, err = both(data, method=method, eof=False)
    assert err is None
    assert [type(e) for e in ev] == [Response, EndOfMessage]


def test_head_response_chunked_has_no_body() -> None:
    ev, err = both(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", method="HEAD",
                   eof=False)
    assert err is None and [type(e) for e in ev] == [Response, EndOfMessage]


def test_interim_then_final() -> None:
    ev, err = both(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n"
                   b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", eof=False)
    assert err is None
    assert [type(e) for e in ev] == [InformationalResponse, InformationalResponse, Response,
                                     Data, EndOfMessage]
    assert isinstance(ev[1], InformationalResponse) and ev[1].head.status == 103


@pytest.mark.parametrize("split", [False, True])
def test_101_hands_over_leftover(split: bool) -> None:
    data = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi")
    p = H1ResponseParser("GET")
    ev: list[Event] = []
    if split:
        for i in range(len(data)):
            ev += p.feed(data[i:i + 1])
    else:
        ev += p.feed(data)
    assert len(ev) == 1 and isinstance(ev[0], Response) and ev[0].head.status == 101
    assert p.feed_eof() == []
    assert p.take_unparsed() == b"\x81\x02hi"


def test_extra_bytes_after_response_spoil_keepalive() -> None:
    p = H1ResponseParser("GET")
    ev = p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")
    assert isinstance(ev[0], Response) and not ev[0].head.keep_alive
    assert isinstance(ev[-1], EndOfMessage)
    p = H1ResponseParser("GET")
    ev = p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert isinstance(ev[0], Response) and ev[0].head.keep_alive
    p.feed(b"late")
    assert not ev[0].head.keep_alive


@pytest.mark.parametrize("data", [
    b"HTTP/1.1 200 OK\nContent-Length: 2\nX-A:  b \n\nhi",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\nX-A:  b \n\r\nhi",
    b"HTTP/1.1 200 OK\nContent-Length: 2\r\nX-A:  b \r\n\nhi",
], ids=["all-lf", "mixed", "lf-empty-line"])
def test_bare_lf_heads_accepted_as_nginx_does(data: bytes) -> None:
    # nginx reads upstream heads with bare LF line ends (nginx-tests proxy.t relies on it)
    ev, err = both(data)
    assert err is None
    head = ev[0]
    assert isinstance(head, Response)
    assert head.head.headers == [("Content-Length", "2"), ("X-A", "b")]
    assert body(ev) == b"hi" and isinstance(ev[-1], EndOfMessage)


def test_bare_lf_head_without_fields() -> None:
    ev, err = both(b"HTTP/1.0 200 OK\n\nbody", eof=True)
    assert err is None and body(ev) == b"body"


def test_status_without_reason() -> None:
    ev, err = both(b"HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", eof=False)
    assert err is None and isinstance(ev[0], Response)
    assert (ev[0].head.status, ev[0].head.reason) == (404, "")


def test_fast_fail_on_non_http() -> None:
    p = H1ResponseParser("GET")
    with pytest.raises(ProtocolError) as e:
        p.feed(b"SSH-2.0-OpenSSH")
    assert e.value.status == 502


# -- request writer ----------------------------------------------------------------------------------


def test_request_head_bytes() -> None:
    out = request_head_bytes("GET", "/a?b", [("Host", "x"), ("X-A", "1")])
    assert out == b"GET /a?b HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n"
    out = request_head_bytes("POST", "/", [], "1.0")
    assert out == b"POST / HTTP/1.0\r\n\r\n"


@pytest.mark.parametrize("method,target,headers", [
    ("GET", "/", [("X", "a\r\nInjected: 1")]),
    ("GET", "/", [("X", "a\nb")]),
    ("GET", "/", [("X", "a\rb")]),
    ("GET", "/", [("X", "a\0b")]),
    ("GET", "/", [("X\r\nY", "1")]),
    ("GET", "/", [("X Y", "1")]),
    ("GET", "/", [("", "1")]),
    ("GET /x", "/", []),
    ("GET", "/a b", []),
    ("GET", "/a\r\nHost: x", []),
    ("GET", "", []),
    ("GET", "/", [("X", "\u20ac")]),
])
def test_request_head_bytes_refuses(method: str, target: str,
                                    headers: list[tuple[str, str]]) -> None:
    with pytest.raises(ValueError):
        request_head_bytes(method, target, headers)
