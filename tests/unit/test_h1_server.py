"""H1ServerParser against the bad-input corpus (shared/research/bad-input.md, tables A-H).

Every row is fed whole and byte by byte; both must give the same events (adjacent Data merged)
and the same final error. `ERR` rows give the status truehop answers; `OK` rows give a check on
the requests parsed. Rows where truehop deliberately differs from nginx 1.22 say so in `note`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from truehop.http.events import Data, EndOfMessage, Event, ProtocolError, Request, RequestHead
from truehop.http.h1 import (
    LAST_CHUNK,
    H1Limits,
    H1ServerParser,
    chunk,
    parse_host,
    response_head_bytes,
    status_line,
)

# -- helpers -------------------------------------------------------------------------------------


@dataclass
class Msg:
    head: RequestHead
    body: bytes
    complete: bool


def merge(events: list[Event]) -> list[Event]:
    out: list[Event] = []
    for ev in events:
        if type(ev) is Data and out and type(out[-1]) is Data:
            prev = out.pop()
            assert isinstance(prev, Data)
            out.append(Data(prev.data + ev.data))
        elif type(ev) is Data and not ev.data:
            continue
        else:
            out.append(ev)
    return out


def run(data: bytes, split: bool, limits: H1Limits | None = None, eof: bool = True
        ) -> tuple[list[Event], int | None]:
    p = H1ServerParser(limits or H1Limits())
    events: list[Event] = []
    try:
        if split:
            for i in range(len(data)):
                events += p.feed(data[i:i + 1])
        else:
            events += p.feed(data)
        if p.paused:
            return merge(events), None
        if eof:
            events += p.feed_eof()
    except ProtocolError as e:
        return merge(events), e.status
    return merge(events), None


def messages(events: list[Event]) -> list[Msg]:
    out: list[Msg] = []
    for ev in events:
        if isinstance(ev, Request):
            out.append(Msg(ev.head, b"", False))
        elif isinstance(ev, Data):
            out[-1].body += ev.data
        elif isinstance(ev, EndOfMessage):
            out[-1].complete = True
    return out


def both(data: bytes, limits: H1Limits | None = None, eof: bool = True
         ) -> tuple[list[Msg], int | None]:
    whole = run(data, False, limits, eof)
    split = run(data, True, limits, eof)
    assert whole == split, f"whole {whole!r}\nsplit {split!r}"
    return messages(whole[0]), whole[1]


# -- the corpus ----------------------------------------------------------------------------------


@dataclass
class Row:
    id: str
    data: bytes
    status: int | None                       # expected error status (None: no error)
    check: Callable[[list[Msg]], Any] | None = None
    note: str = ""                           # deviation from nginx 1.22's observed answer


def one(msgs: list[Msg]) -> Msg:
    assert len(msgs) == 1 and msgs[0].complete
    return msgs[0]


def body_is(b: bytes, cl: int | None = None, chunked: bool = False) -> Callable[[list[Msg]], Any]:
    def check(msgs: list[Msg]) -> None:
        m = one(msgs)
        assert m.body == b
        assert m.head.chunked is chunked
        assert m.head.content_length == cl
    return check


H = b"Host: localhost\r\n"

ROWS = [
    # A. body framing
    Row("S01", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 6\r\nTransfer-Encoding: chunked"
        b"\r\n\r\n0\r\n\r\nG", 400),
    Row("S02", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 4\r\nTransfer-Encoding: chunked"
        b"\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n", 400),
    Row("S03", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501),
    Row("S03b", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\nContent-Length: 5"
        b"\r\n\r\n0\r\n\r\n", 501),
    Row("S04", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding:  chunked\r\n\r\n0\r\n\r\n", None,
        body_is(b"", None, True)),
    Row("S05", b"POST / HTTP/1.1\r\n Transfer-Encoding: chunked\r\n" + H +
        b"Content-Length: 5\r\n\r\n0\r\n\r\n", 400),
    Row("S06", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    Row("S07", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    Row("S08", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, chunked\r\n\r\n"
        b"0\r\n\r\n", 501),
    Row("S09", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501),
    Row("S10", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        501),
    Row("S11", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\n\r\n0\r\n\r\n", 501),
    Row("S12", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n", None,
        body_is(b"", None, True)),
    Row("S13", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n", 400,
        note="nginx 501; llhttp refuses the VT byte first"),
    Row("S14", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\x00\r\n\r\n0\r\n\r\n", 400),
    Row("S15", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding:\n chunked\r\n\r\n0\r\n\r\n", 400),
    Row("S16", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n", 501),
    Row("S17", b"POST / HTTP/1.1\r\n" + H + b"Transfer_Encoding: chunked\r\nContent-Length: 5"
        b"\r\n\r\n0\r\n\r\n", None,
        lambda ms: (body_is(b"0\r\n\r\n", 5)(ms),
                    [k for k, _ in ms[0].head.headers] == ["Host", "Content-Length"])),
    Row("S18", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        400),
    Row("S19", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0\r\nContent-Length: 31\r\n\r\n"
        b"GET /evil HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    Row("S20", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5, 5\r\n\r\nhello", 400),
    Row("S21", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello", 400),
    Row("S22", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0x5\r\n\r\nhello", 400),
    Row("S23", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400),
    Row("S24", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999999\r\n\r\n",
        400),
    Row("S25", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: \r\n\r\n", 400),
    Row("S26", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5 \r\n\r\nhello", None,
        body_is(b"hello", 5)),
    Row("S27", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 005\r\n\r\nhello", None,
        body_is(b"hello", 5)),
    Row("S27b", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5_0\r\n\r\nhello", 400),
    Row("S28", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
        b"fffffffffffffffff1\r\nx\r\n0\r\n\r\n", 400),
    Row("S29", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n"
        b"0\r\n\r\n", 400),
    Row("S30", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n"
        b"0\r\n\r\n", 400),
    Row("S31", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0_5\r\nhello\r\n"
        b"0\r\n\r\n", 400),
    Row("S31b", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n-0\r\n\r\n", 400),
    Row("S32", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n"
        b"0\r\n\r\n", 400),
    Row("S33", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5;\rx\r\nhello\r\n"
        b"0\r\n\r\n", 400),
    Row("S34", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n",
        400, note="nginx 200 (accepts bare LF in chunked framing)"),
    Row("S35", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n"
        b"X:POST / HTTP/1.1\r\n\r\n", None, body_is(b"", None, True)),
    Row("S35b", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        b"0\r\nContent-Length: 99\r\n\r\n", None, body_is(b"hello", None, True)),
    Row("S55", b"POST / HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        b"0\r\n\r\n", 400),
    Row("S87", b"GET / HTTP/1.1\r\n" + H + b"Content-Length: 0\r\nTransfer-Encoding: chunked"
        b"\r\n\r\n0\r\n\r\n", 400),
    Row("S81", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5;" +
        b"a" * 20000 + b"\r\nhello\r\n0\r\n\r\n", 400, note="nginx 200 (no chunk-ext limit)"),
    Row("G02", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\r;ABCD\r\n"
        b"34\r\nE\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        400),
    Row("G03", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 010\r\n\r\n0123456789", None,
        body_is(b"0123456789", 10)),
    Row("G05", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\n\r\n", 400),
    Row("G07", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \xa0chunked\xa0\r\n\r\n"
        b"0\r\n\r\n", 501),
    Row("G09", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1Z\r\n\r\nZ", 400),
    Row("G10", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nINVALID!!!\r\n"
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    Row("G14", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4294967296\r\n\r\n", 400,
        lambda ms: ms[0].head.content_length == 4294967296,
        note="head parsed (CL 4294967296, the pipeline answers 413); EOF mid-body -> 400"),
    Row("G16", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nZ\r\n0\r\n"
        b"\r\n\x00", 400, lambda ms: ms[0].body == b"Z" and ms[0].complete),
    Row("G19", b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked \r\n\r\n0\r\n\r\n", None,
        body_is(b"", None, True)),
    Row("G20", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        b"0\r\nX-Trailer: 1\r\n\r\n", None, body_is(b"hello", None, True)),
    # B. header-field syntax
    Row("S36", b"GET / HTTP/1.1\nHost: localhost\n\n", None,
        lambda ms: one(ms).head.headers == [("Host", "localhost")]),
    Row("S36b", b"GET / HTTP/1.1\r\nHost: localhost\nX-A: 1\r\n\n", None,
        lambda ms: one(ms).head.headers == [("Host", "localhost"), ("X-A", "1")]),
    Row("S36c", b"GET / HTTP/1.1\nHost: localhost\r\n\r\n", None,
        lambda ms: one(ms).head.host == "localhost"),
    Row("S36d", b"GET / HTTP/1.1\r\nHost: localhost\n\r\n", None,
        lambda ms: one(ms).head.host == "localhost"),
    Row("S36e", b"GET / HTTP/1.0\n\n", None, lambda ms: one(ms).head.headers == []),
    Row("S36f", b"POST / HTTP/1.1\nHost: localhost\nContent-Length: 5\n\nhello", None,
        body_is(b"hello", 5)),
    Row("S36g", b"POST / HTTP/1.1\nHost: localhost\nTransfer-Encoding: chunked\n\n"
        b"5\r\nhello\r\n0\r\n\r\n", None, body_is(b"hello", None, True)),
    Row("S36h", b"POST / HTTP/1.1\nHost: localhost\nTransfer-Encoding: chunked\n\n"
        b"5\nhello\n0\n\n", 400, note="bare-LF head accepted, bare LF in chunked framing is not"),
    Row("S36i", b"GET /p1 HTTP/1.1\nHost: localhost\n\nGET /p2 HTTP/1.1\r\n" + H + b"\r\n"
        b"\nGET /p3 HTTP/1.1\n" + H + b"\n", None,
        lambda ms: [m.head.path for m in ms] == ["/p1", "/p2", "/p3"] and all(m.complete
                                                                             for m in ms)),
    Row("S36j", b"GET / HTTP/1.1\r\rHost: localhost\r\n\r\n", 400),
    Row("S36k", b"GET / HTTP/1.1\r\r\nHost: localhost\r\n\r\n", 400),
    Row("S36l", b"GET / HTTP/1.1\nHost: localhost\r\r\n\n", 400),
    Row("S36m", b"GET / HTTP/1.1\nHost: localhost\n\r\r\n", 400),
    Row("S36n", b"GET / HTTP/1.1\nHost: localhost\nX: a\rb\n\n", 400),
    Row("S36o", b"GET / HTTP/1.1\nHost: localhost\n X: folded\n\n", 400),
    Row("S37", b"GET / HTTP/1.1\r\n" + H + b"X: a\rY: b\r\n\r\n", 400),
    Row("S38", b"GET / HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n", 400),
    Row("S39", b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n b\r\n\r\n", 400),
    Row("G17", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", 400),
    Row("S40", b"GET / HTTP/1.1\r\n" + H + b"X Y: 1\r\n\r\n", 400),
    Row("S41", b"GET / HTTP/1.1\r\n" + H + b"X@Y: 1\r\n\r\n", 400,
        note="nginx 200, header dropped; not a token -> 400"),
    Row("S42", b"GET / HTTP/1.1\r\n" + H + b": x\r\n\r\n", 400),
    Row("S43", b"GET / HTTP/1.1\r\n" + H + b"Foo\r\n\r\n", 400, note="nginx 200, forwards 'Foo: '"),
    Row("G04", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-\r\nEncoding: chunked\r\n"
        b"Content-Length: 5\r\n\r\n0\r\n\r\n", 400, note="nginx 200, forwards 'Transfer-: '"),
    Row("S44", b"GET / HTTP/1.1\r\n" + H + b"\xefoo: bar\r\n\r\n", 400,
        note="nginx 200, header dropped"),
    Row("G06", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length\x85: 10\r\n\r\n0123456789", 400,
        note="nginx 200+400"),
    Row("S45", b"GET / HTTP/1.1\r\n" + H + b"X_Real_IP: 6.6.6.6\r\nX_Forwarded_For: 6.6.6.6\r\n\r\n",
        None, lambda ms: [k for k, _ in one(ms).head.headers] == ["Host"]),
    Row("G01", b"GET / HTTP/1.1\r\nHost: a\r\n\rZGET /evil: HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    Row("S86", b"GET / HTTP/1.1\r\n" + H + b"X-A: \xc3\xa9t\xc3\xa9\r\n\r\n", None,
        lambda ms: one(ms).head.get("x-a") == "\xc3\xa9t\xc3\xa9"),
    # C. request line, method, target, version, Host
    Row("S46", b"GET / HTTP/1.1\r\n\r\n", 400),
    Row("S47", b"GET / HTTP/1.1\r\n" + H + b"Host: evil.example\r\n\r\n", 400),
    Row("S48", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    Row("S49", b"GET / HTTP/1.1\r\nHost: localhost\x00.evil.example\r\n\r\n", 400),
    Row("S49b", b"GET / HTTP/1.1\r\nHost: localhost/../x\r\n\r\n", 400),
    Row("S49c", b"GET / HTTP/1.1\r\nHost: evil.example@localhost\r\n\r\n", 400,
        note="nginx 200; userinfo is not a host"),
    Row("S52", b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n", 405,
        note="nginx 1.22: 400; current nginx source: 405"),
    Row("S52b", b"CONNECT / HTTP/1.1\r\n" + H + b"\r\n", 400, note="not authority-form"),
    Row("S52c", b"CONNECT localhost HTTP/1.1\r\n" + H + b"\r\n", 400, note="no port"),
    Row("S53", b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n", 400),
    Row("S54", b"GET /\r\n", 400, note="nginx serves HTTP/0.9"),
    Row("G08", b"GET /\nHTTP/1.1\r\n\r\n", 400, note="nginx: HTTP/0.9"),
    Row("S56", b"GET / HTTP/1.2\r\n" + H + b"\r\n", None, lambda ms: one(ms).head.version == "1.1"),
    Row("S57", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    Row("S57b", b"GET / HTTP/1.10\r\n" + H + b"\r\n", 400, note="nginx 200"),
    Row("S58", b"GET / http/1.1\r\n" + H + b"\r\n", 400),
    Row("S59", b"G@T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    Row("G11", b'G=":<>(e),[T];?" /get HTTP/1.1\r\nHost: a\r\n\r\n', 400),
    Row("S60", b"get / HTTP/1.1\r\n" + H + b"\r\n", 400),
    Row("S61", b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", 400),
    Row("S62", b"GET /a\x01b HTTP/1.1\r\n" + H + b"\r\n", 400),
    Row("S63", b"GET /a#frag HTTP/1.1\r\n" + H + b"\r\n", None,
        lambda m: one(m).head.target == "/a" and one(m).head.path == "/a",
        note="nginx 1.22 forwarded #frag; 1.30 and truehop drop the fragment"),
    Row("S63b", b"GET /a?x=1#frag HTTP/1.1\r\n" + H + b"\r\n", None,
        lambda m: (one(m).head.target == "/a?x=1", one(m).head.query == "x=1")),
    Row("S63c", b"GET #frag HTTP/1.1\r\n" + H + b"\r\n", 400),
    Row("S63d", b"GET /a#b#c HTTP/1.1\r\n" + H + b"\r\n", 400),
    Row("S64", b"GET /../../etc/passwd HTTP/1.1\r\n" + H + b"\r\n", 400),
    Row("S64b", b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n" + H + b"\r\n", 400),
    Row("S65", b"GET /x%00.png HTTP/1.1\r\n" + H + b"\r\n", 400),
    Row("S66", b"\r\nGET / HTTP/1.1\r\n" + H + b"\r\n", None, lambda ms: one(ms).head.path == "/"),
    Row("S66b", b"GET  / HTTP/1.1\r\n" + H + b"\r\n", 400, note="nginx 200 (double SP)"),
    Row("G12", b" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    Row("G13", b"GET\t/\tHTTP/1.1\r\nHost: a\r\n\r\n", 400),
    Row("S79", b"TRACE / HTTP/1.1\r\n" + H + b"\r\n", 405),
    Row("S80", b"GET / HTTP/1.1\r\nHost: localhost:99999999999\r\n\r\n", 400,
        note="nginx 200; port must be 0-65535"),
    Row("S85", b"GET /?a=\xff\xfe HTTP/1.1\r\n" + H + b"\r\n", 400,
        note="nginx 200; raw non-ASCII bytes in the target are refused"),
    # D. absolute-form
    Row("S50", b"GET http://evil.example/abs HTTP/1.1\r\n" + H + b"\r\n", None,
        lambda ms: (one(ms).head.host == "evil.example" and ms[0].head.target == "/abs"
                    and ms[0].head.scheme == "http")),
    Row("S51", b"GET ftp://evil.example/abs HTTP/1.1\r\n" + H + b"\r\n", 400,
        note="nginx 200; only http/https"),
    # E. hop-by-hop, upgrade
    Row("S78", b"GET / HTTP/1.1\r\n" + H + b"Connection: close, X-Real-IP, X-Forwarded-For\r\n"
        b"X-Custom: keepme?\r\n\r\n", None, lambda ms: one(ms).head.keep_alive is False),
    Row("S78b", b"GET / HTTP/1.1\r\n" + H + b"Connection: keep-alive, X-Custom\r\n"
        b"X-Custom: should-be-stripped\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n"
        b"Proxy-Connection: keep-alive\r\n\r\n", None, lambda ms: one(ms).head.keep_alive),
    Row("S83", b"GET / HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nContent-Length: 0\r\n\r\n",
        None, lambda ms: one(ms).head.expect_continue),
    # F. size limits
    Row("S71b", b"GET / HTTP/1.1\r\n" + H + b"a: b\r\n" * 3000 + b"\r\n", 494,
        note="494 is nginx's internal code, sent as 400 'Request Header Or Cookie Too Large'"),
    Row("S69", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    Row("S70", b"GET / HTTP/1.1\r\n" + H + b"X-Long: " + b"a" * 9000 + b"\r\n\r\n", 494),
    Row("S71", b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-H%d: " % i + b"a" * 7000 + b"\r\n"
                                                     for i in range(5)) + b"\r\n", 494),
    Row("S72", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 2000\r\n\r\n" + b"x" * 2000, None,
        body_is(b"x" * 2000, 2000)),
    Row("S73", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 2000\r\nExpect: 100-continue"
        b"\r\n\r\n", 400, lambda ms: ms[0].head.expect_continue and not ms[0].complete,
        note="head parsed; EOF mid-body -> 400"),
    Row("S74", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n7d0\r\n" +
        b"x" * 2000 + b"\r\n0\r\n\r\n", None, body_is(b"x" * 2000, None, True)),
    # G. pipelining
    Row("S67", b"GET /p1 HTTP/1.1\r\n" + H + b"\r\nGET /p2 HTTP/1.1\r\n" + H + b"\r\n", None,
        lambda ms: [m.head.path for m in ms] == ["/p1", "/p2"] and all(m.complete for m in ms)),
    Row("S68", b"GET /p1 HTTP/1.1\r\n" + H + b"Content-Length: 33\r\n\r\nGET /hidden HTTP/1.1"
        b"\r\nHost: x\r\n\r\nGET /p2 HTTP/1.1\r\n" + H + b"\r\n", None,
        lambda ms: ([m.head.path for m in ms] == ["/p1", "/p2"]
                    and ms[0].body == b"GET /hidden HTTP/1.1\r\nHost: x\r\n\r\n")),
    Row("S68b", b"GET /p1 HTTP/1.1\r\n" + H + b"\r\nINVALID\r\n\r\n", 400,
        lambda ms: [m.head.path for m in ms] == ["/p1"]),
    Row("S82", b"GET /pp HTTP/1.1\r\n" + H + b"\r\n" * 1 + b"" +
        (b"GET /pp HTTP/1.1\r\n" + H + b"\r\n") * 99, None, lambda ms: len(ms) == 100),
    Row("S84", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nhelloGET /p2 HTTP/1.1\r\n" +
        H + b"\r\n", None, lambda ms: [m.body for m in ms] == [b"hello", b""]),
    Row("G15", b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n1234567890", None,
        body_is(b"1234567890", 10)),
    # H. WebSocket heads (the parser's part: what `upgrade` says)
    Row("W04", b"GET /ws HTTP/1.0\r\n" + H + b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", None,
        lambda ms: one(ms).head.upgrade is None),
    Row("W07", b"POST /ws HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\nhello", None,
        lambda ms: one(ms).head.upgrade is None and ms[0].body == b"hello"),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_corpus(row: Row) -> None:
    msgs, status = both(row.data)
    assert status == row.status, (row.id, status, row.note)
    if row.check is not None:
        result = row.check(msgs)
        if isinstance(result, tuple):
            assert all(x is not False for x in result), row.id
        else:
            assert result is not False, row.id


# -- upgrade / tunnel hand-over ------------------------------------------------------------------

WS = (b"GET /ws/ok HTTP/1.1\r\n" + H + b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


@pytest.mark.parametrize("split", [False, True])
def test_w01_upgrade_leftover(split: bool) -> None:
    frame = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
    p = H1ServerParser(H1Limits())
    data = WS + frame
    events: list[Event] = []
    if split:
        for i in range(len(data)):
            events += p.feed(data[i:i + 1])
    else:
        events += p.feed(data)
    assert p.paused
    assert isinstance(events[0], Request) and events[0].head.upgrade == "websocket"
    assert isinstance(events[1], EndOfMessage) and len(events) == 2
    assert p.feed(b"more") == []
    assert p.take_unparsed() == frame + b"more"
    with pytest.raises(ProtocolError):
        p.feed(b"x")


def test_w02_not_tunnelled_resume() -> None:
    """A 426 from the upstream: no tunnel; the held bytes are parsed as HTTP again."""
    p = H1ServerParser(H1Limits())
    ev = p.feed(WS + b"GET /deny/secret HTTP/1.1\r\n" + H + b"\r\n")
    assert len(ev) == 2 and p.paused
    ev = p.resume()
    assert isinstance(ev[0], Request) and ev[0].head.path == "/deny/secret"


def test_s75_h2c_upgrade_flagged() -> None:
    msgs, status = both(b"GET / HTTP/1.1\r\n" + H + b"Upgrade: h2c\r\nHTTP2-Settings: "
                        b"AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n")
    assert status is None and one(msgs).head.upgrade == "h2c"


def test_connect_never_tunnels() -> None:
    p = H1ServerParser(H1Limits())
    with pytest.raises(ProtocolError) as e:
        p.feed(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n")
    assert e.value.status == 405


# -- head fields -----------------------------------------------------------------------------------


def test_request_head_fields() -> None:
    data = (b"POST /a/b?x=1&y HTTP/1.1\r\nHOST: Example.COM:8080\r\nX-A:  v  \r\n"
            b"Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nExpect: 100-Continue\r\n"
            b"Content-Length: 3\r\n\r\nabc")
    msgs, status = both(data)
    assert status is None
    h = one(msgs).head
    assert (h.method, h.target, h.path, h.query, h.version) == ("POST", "/a/b?x=1&y", "/a/b",
                                                                "x=1&y", "1.1")
    assert h.host == "example.com:8080"
    assert h.headers[1] == ("X-A", "v")
    assert h.content_length == 3 and not h.chunked and h.keep_alive
    assert h.upgrade is None  # a request with a body is not an upgrade
    assert h.expect_continue
    assert h.header_bytes == len(data) - 3
    assert one(msgs).body == b"abc"


@pytest.mark.parametrize("data,ka", [
    (b"GET / HTTP/1.0\r\n\r\n", False),
    (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", True),
    (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", True),
    (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: x, Close\r\n\r\n", False),
])
def test_keep_alive(data: bytes, ka: bool) -> None:
    msgs, status = both(data)
    assert status is None and one(msgs).head.keep_alive is ka


def test_http10_without_host() -> None:
    msgs, status = both(b"GET / HTTP/1.0\r\n\r\n")
    assert status is None and one(msgs).head.host == ""


@pytest.mark.parametrize("raw,expected", [
    ("localhost", "localhost"),
    ("Example.COM.", "example.com"),
    ("a.b:8080", "a.b:8080"),
    ("127.0.0.1:80", "127.0.0.1:80"),
    ("[::1]:8080", "[::1]:8080"),
    ("[2001:DB8::1]", "[2001:db8::1]"),
    ("under_score", "under_score"),
    ("", None), ("a b", None), ("a/b", None), ("a..b", None), ("u@h", None), ("h:99999", None),
    ("h:8x", None), ("[::1", None), ("[zz]", None), ("[::1]x", None), ("h\\x", None),
    (".", None), ("é", None),
])
def test_parse_host(raw: str, expected: str | None) -> None:
    assert parse_host(raw) == expected


def test_underscores_and_invalid_headers_kept_when_configured() -> None:
    data = b"GET / HTTP/1.1\r\nHost: a\r\nX_Y: 1\r\nX.Z: 2\r\n\r\n"
    msgs, _ = both(data)
    assert [k for k, _ in one(msgs).head.headers] == ["Host"]
    msgs, _ = both(data, H1Limits(underscores_in_headers=True))
    assert [k for k, _ in one(msgs).head.headers] == ["Host", "X_Y"]
    msgs, _ = both(data, H1Limits(ignore_invalid_headers=False))
    assert [k for k, _ in one(msgs).head.headers] == ["Host", "X_Y", "X.Z"]


def test_underscore_host_header_ignored() -> None:
    # a dropped header never counts as Host / Content-Length / Transfer-Encoding
    msgs, status = both(b"GET / HTTP/1.1\r\nHost: a\r\nHo_st: b\r\nContent_Length: 5\r\n\r\n")
    assert status is None and one(msgs).head.host == "a" and msgs[0].head.content_length is None


@pytest.mark.parametrize("target", [b"/a/../b", b"/./x", b"/a/%2e%2e/b", b"/..x", b"/a?x=/../.."])
def test_dot_segments_inside_root_ok(target: bytes) -> None:
    _, status = both(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status is None


@pytest.mark.parametrize("target", [b"/a/../../b", b"/..", b"/%2E%2E/x", b"/a/..%2f..%2fb",
                                    b"/%zz", b"/%4", b"/%00"])
def test_bad_paths(target: bytes) -> None:
    _, status = both(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status == 400


# -- limits -----------------------------------------------------------------------------------------


def test_limits_exact_boundaries() -> None:
    lim = H1Limits(max_request_line=64, max_header_line=64, max_headers_total=200,
                   max_header_count=3)
    line = b"GET /" + b"a" * (64 - len(b"GET / HTTP/1.1\r\n")) + b" HTTP/1.1\r\n"
    assert len(line) == 64
    _, status = both(line + b"Host: a\r\n\r\n", lim)
    assert status is None
    _, status = both(line[:5] + b"a" + line[5:] + b"Host: a\r\n\r\n", lim)
    assert status == 414
    hdr = b"X: " + b"v" * (64 - 5) + b"\r\n"
    assert len(hdr) == 64
    _, status = both(b"GET / HTTP/1.1\r\nHost: a\r\n" + hdr + b"\r\n", lim)
    assert status is None
    _, status = both(b"GET / HTTP/1.1\r\nHost: a\r\nX: v" + hdr[3:] + b"\r\n", lim)
    assert status == 494
    _, status = both(b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", lim)
    assert status == 494
    _, status = both(b"GET / HTTP/1.1\r\nHost: a\r\n" + hdr * 3 + b"\r\n", lim)
    assert status == 494


def test_limits_bare_lf_count_bytes_received() -> None:
    lim = H1Limits(max_request_line=64, max_header_line=64, max_headers_total=200,
                   max_header_count=3)
    line = b"GET /" + b"a" * (64 - len(b"GET / HTTP/1.1\n")) + b" HTTP/1.1\n"
    assert len(line) == 64
    _, status = both(line + b"Host: a\n\n", lim)
    assert status is None
    _, status = both(line[:5] + b"a" + line[5:] + b"Host: a\n\n", lim)
    assert status == 414
    hdr = b"X: " + b"v" * (64 - 4) + b"\n"
    assert len(hdr) == 64
    _, status = both(b"GET / HTTP/1.1\nHost: a\n" + hdr + b"\n", lim)
    assert status is None
    _, status = both(b"GET / HTTP/1.1\nHost: a\nX: v" + hdr[3:] + b"\n", lim)
    assert status == 494
    _, status = both(b"GET / HTTP/1.1\nHost: a\nA: 1\nB: 2\nC: 3\n\n", lim)
    assert status == 494
    _, status = both(b"GET / HTTP/1.1\nHost: a\n" + hdr * 3 + b"\n", lim)
    assert status == 494


def test_bare_lf_head_same_as_crlf() -> None:
    crlf = (b"POST /x?y=1 HTTP/1.1\r\nHost: a:8080\r\nX-A:  v \r\nConnection: close\r\n"
            b"Content-Length: 2\r\n\r\nok")
    head, body = crlf.split(b"\r\n\r\n")
    want = both(crlf)
    for n in range(head.count(b"\r\n") + 2):
        # the first n line endings (the empty line counts) as bare LF
        mixed = (head + b"\r\n\r\n").replace(b"\r\n", b"\n", n) + body
        got = both(mixed)
        assert got[1] is None
        assert [(m.head.method, m.head.target, m.head.headers, m.head.keep_alive, m.body)
                for m in got[0]] == [(m.head.method, m.head.target, m.head.headers,
                                      m.head.keep_alive, m.body) for m in want[0]]


def test_endless_head_is_bounded() -> None:
    p = H1ServerParser(H1Limits())
    p.feed(b"GET / HTTP/1.1\r\nX: ")
    with pytest.raises(ProtocolError) as e:
        for _ in range(100):
            p.feed(b"a" * 1000)
    assert e.value.status == 494


def test_endless_request_line_is_414() -> None:
    p = H1ServerParser(H1Limits())
    with pytest.raises(ProtocolError) as e:
        for _ in range(100):
            p.feed(b"GET /" + b"a" * 1000)
    assert e.value.status == 414


def test_garbage_fails_fast() -> None:
    p = H1ServerParser(H1Limits())
    with pytest.raises(ProtocolError) as e:
        p.feed(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a TLS ClientHello
    assert e.value.status == 400


# -- EOF -------------------------------------------------------------------------------------------


def test_eof() -> None:
    p = H1ServerParser(H1Limits())
    assert p.feed_eof() == []
    p = H1ServerParser(H1Limits())
    p.feed(b"GET / HT")
    assert p.has_partial()
    with pytest.raises(ProtocolError):
        p.feed_eof()


def test_pending_error_after_good_requests() -> None:
    p = H1ServerParser(H1Limits())
    ev = p.feed(b"GET /p1 HTTP/1.1\r\nHost: a\r\n\r\nBAD REQUEST\r\n\r\n")
    assert len(ev) == 2 and p.pending_error is not None and p.pending_error.status == 400
    with pytest.raises(ProtocolError):
        p.feed(b"")


def test_pipelining_three_in_one_feed() -> None:
    data = (b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
            b"POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
            b"0\r\n\r\n"
            b"PUT /3 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nxy")
    p = H1ServerParser(H1Limits())
    ev = p.feed(data)
    kinds = [type(e).__name__ for e in ev]
    assert kinds == ["Request", "EndOfMessage", "Request", "Data", "EndOfMessage", "Request",
                     "Data", "EndOfMessage"]
    msgs = messages(ev)
    assert [(m.head.method, m.head.path, m.body) for m in msgs] == [
        ("GET", "/1", b""), ("POST", "/2", b"abc"), ("PUT", "/3", b"xy")]


def test_unknown_method_accepted_like_nginx() -> None:
    msgs, status = both(b"PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status is None and one(msgs).head.method == "PURGE"


# -- writer ----------------------------------------------------------------------------------------


def test_status_lines() -> None:
    assert status_line(200) == b"HTTP/1.1 200 OK\r\n"
    assert status_line(302) == b"HTTP/1.1 302 Moved Temporarily\r\n"
    assert status_line(494) == b"HTTP/1.1 400 Bad Request\r\n"
    assert status_line(299) == b"HTTP/1.1 299 \r\n"
    # statuses nginx's table has no text for are written without one, as nginx does
    for code in (203, 205, 300, 407, 417, 422, 426, 451, 506):
        assert status_line(code) == b"HTTP/1.1 %d \r\n" % code
    assert status_line(200, "1.1", "Fine") == b"HTTP/1.1 200 Fine\r\n"
    assert status_line(200, "1.1", "Bad\r\nX: y") == b"HTTP/1.1 200 OK\r\n"


def test_response_head_bytes() -> None:
    out = response_head_bytes(200, [("Content-Length", "3"), ("X", "a b")])
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX: a b\r\n\r\n"
    out = response_head_bytes(404, [])
    assert out == b"HTTP/1.1 404 Not Found\r\n\r\n"
    # an injection attempt is cut at its CR/LF, never written; a name that is not a token is
    # dropped; other CTLs and non-latin-1 text are written as nginx writes them
    out = response_head_bytes(200, [("X", "a\r\nSet-Cookie: evil"), ("Bad Name", "x"),
                                    ("Y", "ok"), ("Z", "\u20ac"), ("W", "a\x02b"),
                                    ("V", "map\n"), ("U", "nul\x00x")])
    assert out == (b"HTTP/1.1 200 OK\r\nX: a\r\nY: ok\r\nZ: \xe2\x82\xac\r\nW: a\x02b\r\n"
                   b"V: map\r\nU: nul\r\n\r\n")


def test_chunk() -> None:
    assert chunk(b"hello") == b"5\r\nhello\r\n"
    assert chunk(b"") == b""
    assert chunk(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"
    assert LAST_CHUNK == b"0\r\n\r\n"


def test_ipvfuture_host_accepted_lower_cased() -> None:
    from truehop.http.h1 import parse_host
    sym = "[v0123456789aBcDeF.!$&'()*+,;=-._~AbCdEfGhIjKlMnOpQrStUvWxYz0123456789:]"
    assert parse_host(sym) == sym.lower()
    assert parse_host("[v1.fe80::a+en1]:8080") == "[v1.fe80::a+en1]:8080"
    assert parse_host("[v1.a..b]") is None
    assert parse_host("[vz.abc]") is None
    assert parse_host("[v1.a/b]") is None


def test_host_cache_keeps_only_short_valid_names() -> None:
    from truehop.http import h1

    h1._HOSTS.clear()
    assert parse_host("Example.COM:8080") == "example.com:8080"
    assert h1._HOSTS == {"Example.COM:8080": "example.com:8080"}
    assert parse_host("Example.COM:8080") == "example.com:8080"   # from the cache
    long_name = "a" * 400 + ".example"
    assert parse_host(long_name) == long_name                    # parsed, not kept
    assert parse_host("bad host") is None                        # refused, not kept
    assert set(h1._HOSTS) == {"Example.COM:8080"}
