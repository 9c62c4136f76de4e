"""Fuzz invariants for the HTTP/1 parsers: any bytes, any split -> events or ProtocolError,
never another exception; and the split never changes the outcome."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from truehop.http.events import Data, EndOfMessage, Event, ProtocolError, Request, Response
from truehop.http.h1 import H1Limits, H1ServerParser, response_head_bytes
from truehop.http.h1client import H1ResponseParser, request_head_bytes

SMALL = H1Limits(max_request_line=96, max_header_line=64, max_headers_total=256,
                 max_header_count=6, max_chunk_ext=16)

# pieces that make interesting requests when glued together
REQ_PIECES = [
    b"GET ", b"POST ", b"CONNECT ", b"OPTIONS ", b"get ", b"/", b"/a", b"/../", b"%2e", b"%00",
    b"?q=1", b"#f", b"*", b"http://h/", b"ftp://h/", b" HTTP/1.1", b" HTTP/1.0", b" HTTP/2.0",
    b" HTTP/1.2", b"\r\n", b"\n", b"\r", b"Host: a", b"Host: a:80", b"Host: [::1]", b"Host: a b",
    b"Content-Length: 3", b"Content-Length: 0", b"Content-Length: +1", b"Content-Length: 5_0",
    b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip, chunked", b"Connection: close",
    b"Connection: upgrade", b"Upgrade: websocket", b"Expect: 100-continue", b"X_Y: 1",
    b"X@Y: 1", b": x", b" X: y", b"X: a\x00b", b"3\r\nabc\r\n", b"0\r\n\r\n", b"5;ext\r\n",
    b"abc", b"\x00", b"\xff", b"  ", b"\t", b"a" * 70,
]

RESP_PIECES = [
    b"HTTP/1.1 ", b"HTTP/1.0 ", b"HTTP/2 ", b"200 OK", b"101 Switching", b"100 Continue",
    b"204 No Content", b"304 Not Modified", b"404", b"\r\n", b"\n", b"\r", b"Content-Length: 3",
    b"Content-Length: 2", b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip",
    b"Connection: close", b"Connection: keep-alive", b"X: a\rb", b"3\r\nabc\r\n", b"0\r\n\r\n",
    b"abc", b"\x00", b"garbage",
]


def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out: list[bytes] = []
    prev = 0
    for p in points:
        out.append(data[prev:p])
        prev = p
    out.append(data[prev:])
    return out


def norm(events: list[Event]) -> list[Event]:
    out: list[Event] = []
    for ev in events:
        if type(ev) is Data:
            if not ev.data:
                continue
            if out and type(out[-1]) is Data:
                prev = out.pop()
                assert isinstance(prev, Data)
                ev = Data(prev.data + ev.data)
        out.append(ev)
    return out


def run_server(chunks: list[bytes]) -> tuple[list[Event], int | None, bytes | None]:
    p = H1ServerParser(SMALL)
    events: list[Event] = []
    try:
        for c in chunks:
            events += p.feed(c)
        if p.paused:
            return norm(events), None, p.take_unparsed()
        events += p.feed_eof()
    except ProtocolError as e:
        assert isinstance(e.status, int) and 400 <= e.status < 600
        return norm(events), e.status, None
    return norm(events), None, None


def run_client(chunks: list[bytes], method: str) -> tuple[list[Event], tuple[int, str] | None]:
    p = H1ResponseParser(method, max_head=256)
    events: list[Event] = []
    try:
        for c in chunks:
            events += p.feed(c)
        events += p.feed_eof()
    except ProtocolError as e:
        assert e.status == 502
        return norm(events), (e.status, e.reason)
    return norm(events), None


def check_server_events(events: list[Event]) -> None:
    """Structure: Request (Data*) EndOfMessage, repeated; heads satisfy their invariants."""
    in_msg = False
    for ev in events:
        if isinstance(ev, Request):
            assert not in_msg
            in_msg = True
            h = ev.head
            assert h.path.startswith("/") and h.target.startswith("/")
            assert h.version in ("1.0", "1.1")
            assert not (h.chunked and h.content_length is not None)
            for k, v in h.headers:
                assert k and "\r" not in v and "\n" not in v and "\0" not in v
            if h.version == "1.1":
                assert h.host
        elif isinstance(ev, Data):
            assert in_msg
        elif isinstance(ev, EndOfMessage):
            assert in_msg
            in_msg = False


server_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from(REQ_PIECES), max_size=24).map(b"".join),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=server_bytes, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_server_any_bytes_any_split(data: bytes, cuts: list[int]) -> None:
    whole = run_server([data])
    split = run_server(splits(data, cuts))
    assert whole == split
    check_server_events(whole[0])


@settings(max_examples=200, deadline=None)
@given(data=server_bytes)
def test_server_byte_by_byte(data: bytes) -> None:
    assert run_server([data]) == run_server([data[i:i + 1] for i in range(len(data))])


client_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from(RESP_PIECES), max_size=20).map(b"".join),
)


@settings(max_examples=500, deadline=None)
@given(data=client_bytes, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
       method=st.sampled_from(["GET", "HEAD", "POST"]))
def test_client_any_bytes_any_split(data: bytes, cuts: list[int], method: str) -> None:
    whole = run_client([data], method)
    split = run_client(splits(data, cuts), method)
    if whole[1] is None and split[1] is None:
        assert whole == split
    else:
        # a fault drops the events of the feed that failed, but the verdict is the same
        assert whole[1] == split[1]
    for ev in whole[0]:
        if isinstance(ev, Response):
            assert 100 <= ev.head.status <= 999


# -- writers round-trip through the parsers ---------------------------------------------------------

token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-",
                min_size=1, max_size=12)
value = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                       blacklist_characters="\x7f"), max_size=20)


@settings(max_examples=300, deadline=None)
@given(path=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/-._~", max_size=20),
       headers=st.lists(st.tuples(token, value), max_size=6))
def test_request_writer_round_trip(path: str, headers: list[tuple[str, str]]) -> None:
    headers = [(k, v) for k, v in headers
               if k.lower() not in ("host", "content-length", "transfer-encoding", "connection",
                                    "upgrade", "expect") and "_" not in k]
    target = "/" + path
    raw = request_head_bytes("GET", target, [("Host", "a")] + headers)
    p = H1ServerParser(H1Limits(max_headers_total=1 << 20))
    try:
        ev = p.feed(raw)
    except ProtocolError as e:  # only dot-segments above the root may be refused
        assert e.status == 400 and ".." in target
        return
    assert isinstance(ev[0], Request)
    assert ev[0].head.target == target
    assert ev[0].head.headers == [("Host", "a")] + [(k, v.strip(" \t")) for k, v in headers]


@settings(max_examples=300, deadline=None)
@given(status=st.integers(min_value=200, max_value=599),
       headers=st.lists(st.tuples(token, value), max_size=6))
def test_response_writer_round_trip(status: int, headers: list[tuple[str, str]]) -> None:
    headers = [(k, v) for k, v in headers
               if k.lower() not in ("content-length", "transfer-encoding", "connection")]
    raw = response_head_bytes(status, headers + [("Content-Length", "0")])
    ev = H1ResponseParser("GET").feed(raw)
    assert isinstance(ev[0], Response)
    sent = 400 if status in (494, 495, 496, 497, 499) else status
    assert ev[0].head.status == sent
    assert ev[0].head.headers[:-1] == [(k, v.strip(" \t")) for k, v in headers]


# -- bare LF line endings in a head: accepted, the same as CRLF -------------------------------------

@settings(max_examples=300, deadline=None)
@given(path=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/-._~", max_size=20),
       headers=st.lists(st.tuples(token, value), max_size=6),
       endings=st.lists(st.sampled_from([b"\r\n", b"\n"]), min_size=9, max_size=9),
       cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_bare_lf_head_same_as_crlf(path: str, headers: list[tuple[str, str]],
                                   endings: list[bytes], cuts: list[int]) -> None:
    lines = [b"GET /" + path.encode() + b" HTTP/1.1", b"Host: a"]
    lines += [k.encode() + b": " + v.encode("latin-1") for k, v in headers]
    lines.append(b"")
    crlf = b"".join(line + b"\r\n" for line in lines)
    mixed = b"".join(line + endings[i] for i, line in enumerate(lines))
    big = H1Limits(max_headers_total=1 << 20)

    def run(chunks: list[bytes]) -> tuple[list[Event], int | None]:
        p = H1ServerParser(big)
        events: list[Event] = []
        try:
            for c in chunks:
                events += p.feed(c)
        except ProtocolError as e:
            return events, e.status
        return events, None

    def wire_free(result: tuple[list[Event], int | None], size: int
                  ) -> tuple[list[Event], int | None]:
        # header_bytes is the head's size as received ($request_length); the rest is the same
        out: list[Event] = []
        for ev in result[0]:
            if isinstance(ev, Request):
                assert ev.head.header_bytes == size
                ev.head.header_bytes = 0
            out.append(ev)
        return out, result[1]

    want = wire_free(run([crlf]), len(crlf))
    assert wire_free(run([mixed]), len(mixed)) == want
    assert wire_free(run(splits(mixed, cuts)), len(mixed)) == want
