"""The sans-IO HTTP/2 server layer (truehop.http.h2): frames built by a client-side h2
connection (or by hand with hyperframe for what h2 refuses to send) go in, events and limits
come out."""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest
from hyperframe.frame import ContinuationFrame, HeadersFrame, PingFrame, RstStreamFrame

from truehop.http.h2 import (
    ENHANCE_YOUR_CALM,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    ConnectionEnded,
    GoAwayComplete,
    H2Limits,
    H2Server,
    StreamBodyError,
    StreamData,
    StreamEnded,
    StreamError,
    StreamRequest,
    StreamReset,
)

BASE = [(":method", "GET"), (":scheme", "https"), (":authority", "example.test"),
        (":path", "/")]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def pair(limits: H2Limits | None = None,
         clock: Clock | None = None) -> tuple[H2Server, h2.connection.H2Connection]:
    """A started server and a client that has exchanged prefaces and SETTINGS with it."""
    s = H2Server(limits, clock or Clock())
    s.start()
    c = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False,
        header_encoding=None))
    c.initiate_connection()
    c.receive_data(s.data_to_send())
    assert s.feed(c.data_to_send()) is not None
    c.receive_data(s.data_to_send())
    s.feed(c.data_to_send())
    return s, c


def headers(extra: list[tuple[str, str]] | None = None, /,
            **pseudo: str) -> list[tuple[bytes, bytes]]:
    out = []
    for k, v in BASE:
        out.append((k, pseudo.get(k[1:], v)))
    out += list(extra or [])
    return [(k.encode(), v.encode()) for k, v in out]


def request(s: H2Server, c: h2.connection.H2Connection, hdrs: list[tuple[bytes, bytes]],
            sid: int = 1, end: bool = True) -> list[Any]:
    c.send_headers(sid, hdrs, end_stream=end)
    return s.feed(c.data_to_send())


def client_events(s: H2Server, c: h2.connection.H2Connection) -> list[Any]:
    return c.receive_data(s.data_to_send())


def of(events: list[Any], t: type) -> list[Any]:
    return [e for e in events if isinstance(e, t)]


# -- requests ---------------------------------------------------------------------------------


def test_request_head_mapping() -> None:
    s, c = pair()
    ev = request(s, c, headers([("cookie", "a=1"), ("cookie", "b=2"), ("x-y", " z "),
                                ("te", "trailers")], path="/p/q?x=1&y"))
    [r] = of(ev, StreamRequest)
    h = r.head
    assert (h.method, h.target, h.path, h.query, h.version) == ("GET", "/p/q?x=1&y", "/p/q",
                                                               "x=1&y", "2.0")
    assert h.host == "example.test" and h.keep_alive and h.upgrade is None
    assert h.get("host") == "example.test"
    assert h.get("cookie") == "a=1; b=2"
    assert h.get("x-y") == "z"
    assert h.content_length is None and not h.chunked
    assert r.end_stream and of(ev, StreamEnded)


def test_body_without_length_is_chunked_and_flow_controlled() -> None:
    s, c = pair()
    ev = request(s, c, headers(method="POST"), end=False)
    [r] = of(ev, StreamRequest)
    assert r.head.chunked and r.head.content_length is None and not r.end_stream
    c.send_data(1, b"x" * 1000, end_stream=True)
    ev = s.feed(c.data_to_send())
    [d] = of(ev, StreamData)
    assert d.data == b"x" * 1000 and d.flow == 1000
    assert of(ev, StreamEnded)


def test_content_length_kept() -> None:
    s, c = pair()
    ev = request(s, c, headers([("content-length", "3")], method="PUT"), end=False)
    [r] = of(ev, StreamRequest)
    assert r.head.content_length == 3 and not r.head.chunked


def test_host_header_without_authority() -> None:
    s, c = pair()
    hdrs = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
            (b"host", b"Example.TEST:8080")]
    [r] = of(request(s, c, hdrs), StreamRequest)
    assert r.head.host == "example.test:8080"


def test_underscore_header_dropped_by_default() -> None:
    s, c = pair()
    [r] = of(request(s, c, headers([("x_a", "1"), ("x-b", "2")])), StreamRequest)
    assert r.head.get("x_a") is None and r.head.get("x-b") == "2"


def test_byte_by_byte_same_result() -> None:
    s, c = pair()
    c.send_headers(1, headers([("x-a", "1")]), end_stream=True)
    data = c.data_to_send()
    events: list[Any] = []
    for i in range(len(data)):
        events += s.feed(data[i:i + 1])
    [r] = of(events, StreamRequest)
    assert r.head.get("x-a") == "1"


# -- malformed requests: stream errors, never forwarded ----------------------------------------


@pytest.mark.parametrize("hdrs, why", [
    # nginx accepts these (its proxy drops the hop-by-hop fields); truehop keeps RFC 9113's
    # "malformed" for them, so nothing reaches an HTTP/1.1 serializer
    (headers([("connection", "keep-alive")]), "connection header"),
    (headers([("transfer-encoding", "chunked")]), "transfer-encoding"),
    (headers([("upgrade", "h2c")]), "upgrade"),
    (headers([("keep-alive", "1")]), "keep-alive"),
    (headers([("te", "gzip")]), "te other than trailers"),
    (headers([("x-a", "1"), (":method", "GET")])[1:] + [(b":path", b"/")], "pseudo after"),
])
def test_malformed_header_block_resets_stream(hdrs: list[tuple[bytes, bytes]], why: str) -> None:
    s, c = pair()
    ev = request(s, c, hdrs)
    assert not of(ev, StreamRequest), why
    [r] = of(ev, StreamReset)
    assert r.error_code == PROTOCOL_ERROR and r.reason
    ce = client_events(s, c)
    resets = [e for e in ce if isinstance(e, h2.events.StreamReset)]
    assert resets and resets[0].error_code == PROTOCOL_ERROR
    # the connection itself survives: a good request on the next stream works
    assert of(request(s, c, headers(), sid=3), StreamRequest)


@pytest.mark.parametrize("hdrs, why", [
    # ngx_http_v2_validate_header (h2_headers.t: newline, colon, space, control in name)
    (headers([("X-Foo", "a")]), "upper-case name"),
    (headers([("x y", "a")]), "space in name"),
    (headers([("x:y", "a")]), "colon in name"),
    (headers([("foo\x02", "a")]), "control in name"),
    (headers([("foo\x7f", "a")]), "DEL in name"),
    ([(b":Path", b"/")] + headers()[:3], "upper-case pseudo-header"),
    (headers([("x-foo", "bar\r\nTransfer-Encoding: chunked")]), "CRLF in value"),
    (headers([("x-foo", "bar\nx-injected: 1")]), "LF in value"),
    (headers([("x-foo", "bar\x00baz")]), "NUL in value"),
    # the first refused field decides, even before a field truehop would reset the stream for
    (headers([("x y", "a"), ("connection", "close")]), "bad name before connection"),
    # ngx_http_v2_pseudo_header / ngx_http_v2_construct_request_line (h2_headers.t: incomplete)
    ([(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a")], "no :path"),
    ([(b":method", b"GET"), (b":path", b"/"), (b":authority", b"a")], "no :scheme"),
    ([(b":scheme", b"http"), (b":path", b"/"), (b":authority", b"a")], "no :method"),
    (headers() + [(b":path", b"/again")], "duplicate :path"),
    (headers() + [(b":method", b"GET")], "duplicate :method"),
    (headers() + [(b":protocol", b"websocket")], "unknown pseudo"),
    (headers([("host", "a"), ("host", "a")]), "duplicate host"),
    (headers([("content-length", "1"), ("content-length", "1")], method="POST"),
     "duplicate content-length"),
])
def test_invalid_header_answered_400(hdrs: list[tuple[bytes, bytes]], why: str) -> None:
    s, c = pair()
    ev = request(s, c, hdrs, end=why != "duplicate content-length")
    assert not of(ev, StreamRequest) and not of(ev, StreamReset), why
    [e] = of(ev, StreamError)
    assert e.status == 400 and e.stream_id == 1 and e.reason, why
    # the stream is answered, not reset; the connection goes on
    assert not [x for x in client_events(s, c) if isinstance(x, h2.events.StreamReset)]
    assert of(request(s, c, headers(), sid=3), StreamRequest)


@pytest.mark.parametrize("name", ["x.foo", "x_foo", "x(foo", 'x"foo'])
def test_invalid_header_name_dropped_or_kept(name: str) -> None:
    # nginx: other characters only mark the field invalid; ignore_invalid_headers (default)
    # drops it and the request goes on, "off" keeps it
    s, c = pair()
    [r] = of(request(s, c, headers([(name, "v"), ("x-after", "1")])), StreamRequest)
    assert r.head.get(name) is None and r.head.get("x-after") == "1"
    s, c = pair(H2Limits(ignore_invalid_headers=False))
    [r] = of(request(s, c, headers([(name, "v"), ("x-after", "1")])), StreamRequest)
    assert r.head.get(name) == "v"


@pytest.mark.parametrize("pseudo, status", [
    ({"method": "GET /admin"}, 400),
    ({"method": ""}, 400),
    ({"method": "get"}, 400),                   # nginx: A-Z, '_' and '-' only
    ({"path": "http://evil.example/x"}, 400),
    ({"path": ""}, 400),
    ({"path": "*"}, 400),                       # ngx_http_parse_uri: '/' first, even OPTIONS
    ({"path": "/a b"}, 400),
    ({"path": "/a#frag"}, 400),
    ({"scheme": "1http"}, 400),                 # a letter first
    ({"authority": "a b"}, 400),
    ({"method": "CONNECT"}, 405),               # ngx_http_v2_run_request: not allowed
    ({"method": "TRACE"}, 405),
])
def test_semantic_errors_answered_400(pseudo: dict[str, str], status: int) -> None:
    s, c = pair()
    ev = request(s, c, headers(**pseudo))
    assert not of(ev, StreamRequest)
    [e] = of(ev, StreamError)
    assert e.status == status and e.stream_id == 1


def test_unknown_methods_nginx_accepts() -> None:
    s, c = pair()
    [r] = of(request(s, c, headers(method="M-SEARCH")), StreamRequest)
    assert r.head.method == "M-SEARCH"
    [r] = of(request(s, c, headers(method="OPTIONS", path="/"), sid=3), StreamRequest)


def test_authority_and_host_disagree() -> None:
    s, c = pair()
    [e] = of(request(s, c, headers([("host", "evil.example")])), StreamError)
    assert e.status == 400
    # nginx compares the values as sent
    s, c = pair()
    [e] = of(request(s, c, headers([("host", "EXAMPLE.test")])), StreamError)
    assert e.status == 400
    s, c = pair()
    assert of(request(s, c, headers([("host", "example.test")])), StreamRequest)


def test_conflicting_or_invalid_content_length_is_400() -> None:
    # nginx: content-length is a unique header line, and must be digits (400 on the stream);
    # h2's own check (a connection error) is off
    for cls in (["5", "6"], ["-1"], ["5x"]):
        s, c = pair()
        ev = request(s, c, headers([("content-length", v) for v in cls]), end=False)
        assert not of(ev, StreamRequest) and not of(ev, ConnectionEnded)
        [e] = of(ev, StreamError)
        assert e.status == 400


def test_content_length_with_end_stream_is_400() -> None:
    s, c = pair()
    [e] = of(request(s, c, headers([("content-length", "5")], method="POST")), StreamError)
    assert e.status == 400


def test_body_longer_than_content_length_is_400_on_the_stream() -> None:
    # ngx_http_v2_filter_request_body: "larger than declared" -> 400; the extra bytes are
    # never reported (nothing past content-length reaches an upstream)
    s, c = pair()
    request(s, c, headers([("content-length", "0")], method="POST"), end=False)
    c.send_data(1, b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", end_stream=True)
    ev = s.feed(c.data_to_send())
    assert not of(ev, StreamData) and not of(ev, ConnectionEnded) and not s.closed
    [e] = of(ev, StreamBodyError)
    assert e.status == 400 and e.stream_id == 1
    assert of(request(s, c, headers(), sid=3), StreamRequest)


def test_body_shorter_than_content_length_is_400_on_the_stream() -> None:
    s, c = pair()
    request(s, c, headers([("content-length", "10")], method="POST"), end=False)
    c.send_data(1, b"0123", end_stream=False)
    [d] = of(s.feed(c.data_to_send()), StreamData)
    assert d.data == b"0123"
    c.send_data(1, b"56", end_stream=True)
    ev = s.feed(c.data_to_send())
    [e] = of(ev, StreamBodyError)
    assert e.status == 400 and not of(ev, StreamEnded) and not s.closed
    assert not of(ev, StreamData)       # the short last part is not forwarded (nginx)
    # an END_STREAM on its own, short
    s, c = pair()
    request(s, c, headers([("content-length", "10")], method="POST"), end=False)
    c.send_data(1, b"0123", end_stream=False)
    s.feed(c.data_to_send())
    c.end_stream(1)
    ev = s.feed(c.data_to_send())
    assert of(ev, StreamBodyError) and not of(ev, StreamEnded)
    # exact: the body ends normally
    s, c = pair()
    request(s, c, headers([("content-length", "4")], method="POST"), end=False)
    c.send_data(1, b"0123", end_stream=True)
    ev = s.feed(c.data_to_send())
    assert of(ev, StreamEnded) and not of(ev, StreamBodyError)


def test_too_many_fields_494() -> None:
    s, c = pair(H2Limits(max_header_count=10))
    [e] = of(request(s, c, headers([(f"x-{i}", "v") for i in range(11)])), StreamError)
    assert e.status == 494
    # cookies are not counted (nginx joins them, ngx_http_v2_cookie)
    s, c = pair(H2Limits(max_header_count=10))
    assert of(request(s, c, headers([("cookie", f"c{i}=1") for i in range(11)])), StreamRequest)


def test_field_size_is_the_string_as_sent() -> None:
    # nginx compares the HPACK string length (Huffman-coded or not) with the buffer size:
    # 9000 'v's Huffman-code to 7875 bytes, under 8k, and the 9 kB field is taken
    s, c = pair()
    [r] = of(request(s, c, headers([("x-big", "v" * 9000)])), StreamRequest)
    assert r.head.get("x-big") == "v" * 9000


def test_oversized_header_list_ends_connection() -> None:
    s, c = pair()
    # 70 kB decoded (over SETTINGS_MAX_HEADER_LIST_SIZE) in fewer encoded bytes (Huffman)
    hdrs = headers([(f"x-{i}", "a" * 7000) for i in range(10)])
    ev = request(s, c, hdrs)
    assert not of(ev, StreamRequest)
    [end] = of(ev, ConnectionEnded)
    assert s.closed
    goaways = [e for e in client_events(s, c) if isinstance(e, h2.events.ConnectionTerminated)]
    assert goaways


def test_trailers_with_pseudo_header_reset() -> None:
    s, c = pair()
    request(s, c, headers(method="POST"), end=False)
    block = c.encoder.encode([(b":path", b"/x")])
    f = HeadersFrame(1, block, flags=["END_HEADERS", "END_STREAM"])
    ev = s.feed(f.serialize())
    [r] = of(ev, StreamReset)
    assert r.error_code == PROTOCOL_ERROR


# -- abuse limits -------------------------------------------------------------------------------


def _headers_and_rst(c: h2.connection.H2Connection, sid: int) -> bytes:
    block = c.encoder.encode([(k.encode(), v.encode()) for k, v in BASE])
    return (HeadersFrame(sid, block, flags=["END_HEADERS", "END_STREAM"]).serialize()
            + RstStreamFrame(sid, error_code=8).serialize())


def test_rapid_reset_in_one_read_never_reported() -> None:
    s, c = pair()
    data = b"".join(_headers_and_rst(c, 1 + 2 * i) for i in range(2000))
    ev = s.feed(data)
    assert not of(ev, StreamRequest)
    [end] = of(ev, ConnectionEnded)
    assert end.calm and end.error_code == ENHANCE_YOUR_CALM
    assert not s.active
    out = client_events(s, c)
    [t] = [e for e in out if isinstance(e, h2.events.ConnectionTerminated)]
    assert t.error_code == ENHANCE_YOUR_CALM


def test_rapid_reset_across_reads_bounded() -> None:
    lim = H2Limits(max_concurrent_streams=8)
    s, c = pair(lim)
    started = 0
    ended = None
    for i in range(200):
        sid = 1 + 2 * i
        block = c.encoder.encode([(k.encode(), v.encode()) for k, v in BASE])
        ev = s.feed(HeadersFrame(sid, block, flags=["END_HEADERS", "END_STREAM"]).serialize())
        started += len(of(ev, StreamRequest))
        ev = s.feed(RstStreamFrame(sid, error_code=8).serialize())
        for e in of(ev, StreamReset):
            s.stream_done(e.stream_id)     # what the connection does for a cancelled task
        if of(ev, ConnectionEnded):
            ended = of(ev, ConnectionEnded)[0]
            break
    assert ended is not None and ended.calm
    assert started <= 2 * lim.max_concurrent_streams + 1


def test_reset_budget_refills_over_time() -> None:
    clock = Clock()
    lim = H2Limits(max_concurrent_streams=4)
    s, c = pair(lim, clock)
    for i in range(100):
        sid = 1 + 2 * i
        block = c.encoder.encode([(k.encode(), v.encode()) for k, v in BASE])
        ev = s.feed(HeadersFrame(sid, block, flags=["END_HEADERS", "END_STREAM"]).serialize())
        ev += s.feed(RstStreamFrame(sid, error_code=8).serialize())
        for e in of(ev, StreamReset):
            s.stream_done(e.stream_id)
        assert not of(ev, ConnectionEnded)
        clock.t += 0.5        # a reset every half second is a client, not an attack


def test_streams_beyond_concurrency_refused() -> None:
    lim = H2Limits(max_concurrent_streams=2)
    s, c = pair(lim)
    assert of(request(s, c, headers(), sid=1), StreamRequest)
    assert of(request(s, c, headers(), sid=3), StreamRequest)
    # the client cancels both; their pipelines are still running (no stream_done yet)
    c.reset_stream(1, 8)
    c.reset_stream(3, 8)
    ev = s.feed(c.data_to_send())
    assert len(of(ev, StreamReset)) == 2
    ev = request(s, c, headers(), sid=5)
    assert not of(ev, StreamRequest)
    [r] = of(ev, StreamReset)
    assert r.error_code == REFUSED_STREAM
    s.stream_done(1)
    assert of(request(s, c, headers(), sid=7), StreamRequest)


def test_continuation_flood_bounded() -> None:
    s, c = pair()
    block = c.encoder.encode([(k.encode(), v.encode()) for k, v in BASE])
    assert s.feed(HeadersFrame(1, block).serialize()) == []
    fed = 0
    end = None
    for _ in range(3000):
        f = ContinuationFrame(1, b"\x82" * 30).serialize()     # indexed fields, valid HPACK
        fed += len(f)
        ev = s.feed(f)
        if of(ev, ConnectionEnded):
            end = of(ev, ConnectionEnded)[0]
            break
    assert end is not None and end.calm and fed <= 70 * 1024


def test_continuation_block_limit_in_bytes() -> None:
    s, c = pair()
    data = HeadersFrame(1, b"\x82" * 16000).serialize()
    for _ in range(5):
        data += ContinuationFrame(1, b"\x82" * 16000).serialize()
    ev = s.feed(data)
    [end] = of(ev, ConnectionEnded)
    assert end.calm and end.error_code == ENHANCE_YOUR_CALM


def test_ping_flood_ends_connection() -> None:
    s, c = pair()
    ev = s.feed(b"".join(PingFrame(0, opaque_data=b"12345678").serialize() for _ in range(2000)))
    [end] = of(ev, ConnectionEnded)
    assert end.calm
    assert len(s.data_to_send()) < 1024     # no pile of PING ACKs


def test_header_block_in_progress_flag() -> None:
    s, c = pair()
    block = c.encoder.encode([(k.encode(), v.encode()) for k, v in BASE])
    s.feed(HeadersFrame(1, block[:5]).serialize())
    assert s.in_header_block
    s.feed(ContinuationFrame(1, block[5:], flags=["END_HEADERS"]).serialize())
    assert not s.in_header_block


# -- responses, flow control, shutdown ----------------------------------------------------------


def test_response_respects_client_window() -> None:
    s, c = pair()
    request(s, c, headers())
    assert s.send_response(1, 200, [("Content-Type", "text/plain"), ("Connection", "close"),
                                    ("Transfer-Encoding", "chunked")])
    s.send_body(1, b"x" * 200_000)
    s.send_end(1)
    assert s.pending(1) > 0           # the client's default 64 KiB window
    got = 0
    resp = None
    for _ in range(50):
        for e in client_events(s, c):
            if isinstance(e, h2.events.ResponseReceived):
                resp = dict(e.headers)
            if isinstance(e, h2.events.DataReceived):
                got += len(e.data)
                c.acknowledge_received_data(e.flow_controlled_length, 1)
            if isinstance(e, h2.events.StreamEnded):
                assert got == 200_000 and s.pending(1) == 0
                assert resp is not None
                assert resp[b":status"] == b"200" and b"connection" not in resp
                assert b"transfer-encoding" not in resp and resp[b"content-type"] == b"text/plain"
                return
        s.feed(c.data_to_send())
    raise AssertionError("body never completed")


def test_request_body_window_reopens_only_when_acked() -> None:
    s, c = pair(H2Limits(initial_window=65535))
    request(s, c, headers(method="POST"), end=False)
    window0 = c.local_flow_control_window(1)
    for _ in range(4):
        c.send_data(1, b"y" * 15000)
    s.feed(c.data_to_send())
    client_events(s, c)
    assert c.local_flow_control_window(1) == window0 - 60000
    s.ack(1, 60000)
    client_events(s, c)
    assert c.local_flow_control_window(1) == window0


def test_reset_from_server() -> None:
    s, c = pair()
    request(s, c, headers())
    s.send_response(1, 200, [])
    s.reset(1)
    [r] = [e for e in client_events(s, c) if isinstance(e, h2.events.StreamReset)]
    assert r.error_code == 2  # INTERNAL_ERROR
    assert not s.closed


def test_graceful_goaway_lets_streams_finish() -> None:
    s, c = pair()
    request(s, c, headers())
    s.data_to_send()
    s.goaway()
    out = s.data_to_send()
    # GOAWAY(last stream 2^31-1, NO_ERROR) then a PING
    assert out[3] == 0x7 and int.from_bytes(out[9:13], "big") == 0x7FFFFFFF
    assert int.from_bytes(out[13:17], "big") == 0 and out[17 + 3] == 0x6
    ping = out[17 + 9:17 + 17]
    ev = s.feed(PingFrame(0, opaque_data=ping, flags=["ACK"]).serialize())
    assert of(ev, GoAwayComplete) and s.goaway_id == 1
    # stream 1 still completes after the GOAWAY
    s.send_response(1, 200, [("content-length", "2")])
    s.send_body(1, b"ok")
    s.send_end(1)
    out = s.data_to_send()
    assert b"ok" in out
    # a new stream above the last id is refused
    block = c.encoder.encode([(k.encode(), v.encode()) for k, v in BASE])
    ev = s.feed(HeadersFrame(3, block, flags=["END_HEADERS", "END_STREAM"]).serialize())
    assert not of(ev, StreamRequest)


# -- priority (RFC 7540 §5.3 as nginx keeps it) -------------------------------------------------


def _blocked_pair() -> tuple[H2Server, h2.connection.H2Connection]:
    """Stream 1 has used the whole connection window (65535 of a longer body); streams 3 and
    5 have their bodies queued behind it."""
    s, c = pair()
    for sid in (1, 3, 5):
        request(s, c, headers(), sid=sid)
    s.send_response(1, 200, [])
    s.send_body(1, b"1" * 65616)
    s.send_end(1)
    for sid in (3, 5):
        s.send_response(sid, 200, [])
        s.send_body(sid, str(sid).encode() * 8)
        s.send_end(sid)
    got = sum(len(e.data) for e in client_events(s, c) if isinstance(e, h2.events.DataReceived))
    assert got == 65535
    return s, c


def _data_order(s: H2Server, c: h2.connection.H2Connection) -> list[int]:
    c.increment_flow_control_window(2**17, 1)
    c.increment_flow_control_window(2**17)
    s.feed(c.data_to_send())
    return [e.stream_id for e in client_events(s, c) if isinstance(e, h2.events.DataReceived)]


def test_priority_weight_orders_data() -> None:
    s, c = _blocked_pair()
    c.prioritize(1, weight=1)
    c.prioritize(3, weight=256)
    c.prioritize(5, weight=100)
    assert _data_order(s, c) == [3, 5, 1]


def test_priority_dependency_sends_parent_first() -> None:
    s, c = _blocked_pair()
    c.prioritize(5, weight=16, depends_on=3)
    c.prioritize(1, weight=256, depends_on=5)
    assert _data_order(s, c) == [3, 5, 1]
    # without priority frames: the order they were queued in
    s, c = _blocked_pair()
    assert _data_order(s, c) == [1, 3, 5]


def test_priority_from_headers_frame() -> None:
    s, c = pair()
    c.prioritize(3, weight=16)           # an idle stream placed in the tree first
    s.feed(c.data_to_send())
    c.send_headers(1, headers(), end_stream=True, priority_weight=16, priority_depends_on=3)
    c.send_headers(3, headers(), end_stream=True)
    s.feed(c.data_to_send())
    assert s.prio.key(3) < s.prio.key(1)
    # a HEADERS frame without priority keeps what a PRIORITY frame gave its stream
    assert s.prio.nodes[1].parent is s.prio.nodes[3]


def test_exclusive_dependency_and_cycle() -> None:
    s, c = pair()
    c.prioritize(1, weight=16)
    c.prioritize(3, weight=16, depends_on=1)
    c.prioritize(5, weight=16, depends_on=1, exclusive=True)
    s.feed(c.data_to_send())
    n = s.prio.nodes
    assert n[5].parent is n[1] and n[3].parent is n[5] and n[1].children == [n[5]]
    # 1 made to depend on its own descendant 3: 3 first moves up to 1's old place
    c.prioritize(1, weight=16, depends_on=3)
    s.feed(c.data_to_send())
    assert n[3].parent is s.prio.root and n[1].parent is n[3] and n[5].parent is n[1]
    assert (n[3].rank, n[1].rank, n[5].rank) == (1, 2, 3)


def test_closed_nodes_are_reused_children_move_up() -> None:
    s, c = pair()
    c.prioritize(1, weight=16)
    c.prioritize(3, weight=32, depends_on=1)
    c.prioritize(5, weight=16, depends_on=3)
    s.feed(c.data_to_send())
    n3, n5 = s.prio.nodes[3], s.prio.nodes[5]
    # 30 more idle streams: past 32 kept nodes the oldest closed one (1) is dropped; its
    # child 3 moves up to the root with its weight scaled to 1's share (16 * 32 / 32)
    for sid in range(7, 7 + 2 * 30, 2):
        c.prioritize(sid, weight=16)
    s.feed(c.data_to_send())
    assert 1 not in s.prio.nodes and len(s.prio.nodes) == 32
    assert n3.parent is s.prio.root and (n3.rank, n3.weight) == (1, 16)
    assert n5.parent is n3 and n5.rank == 2
    assert n3 in s.prio.root.children


def test_data_frame_spans_queued_chunks() -> None:
    s, c = _blocked_pair()
    # stream 1: 81 bytes left, queued as two writes of 1 and 80 bytes -> one DATA frame
    c.increment_flow_control_window(2**17, 1)
    c.increment_flow_control_window(2**17)
    s.feed(c.data_to_send())
    sizes = [(e.stream_id, len(e.data)) for e in client_events(s, c)
             if isinstance(e, h2.events.DataReceived)]
    assert sizes == [(1, 81), (3, 8), (5, 8)]
    s2, c2 = pair()
    request(s2, c2, headers())
    s2.send_response(1, 200, [])
    c2.receive_data(s2.data_to_send())
    for part in (b"ab", b"cde", b"f"):
        s2.conn.outbound_flow_control_window = 0
        s2.send_body(1, part)
    s2.conn.outbound_flow_control_window = 65535
    s2.pump()
    data = [e.data for e in client_events(s2, c2) if isinstance(e, h2.events.DataReceived)]
    assert data == [b"abcdef"]


def test_headers_depending_on_itself_goaway_names_previous_stream() -> None:
    s, c = pair()
    request(s, c, headers(), sid=1)
    block = c.encoder.encode(headers())
    f = HeadersFrame(3, block, flags=["END_HEADERS", "END_STREAM", "PRIORITY"],
                     depends_on=3, stream_weight=15)
    [ev] = s.feed(f.serialize())
    assert isinstance(ev, ConnectionEnded) and ev.error_code == PROTOCOL_ERROR
    [g] = [e for e in client_events(s, c) if isinstance(e, h2.events.ConnectionTerminated)]
    assert g.last_stream_id == 1 and g.error_code == PROTOCOL_ERROR


def test_request_length_is_the_header_block_size() -> None:
    # nginx's $request_length over HTTP/2: the HPACK bytes of HEADERS (+ CONTINUATION)
    s, c = pair()
    c.send_headers(1, headers(), end_stream=True)
    wire = c.data_to_send()
    block = int.from_bytes(wire[0:3], "big")      # one HEADERS frame
    [r] = of(s.feed(wire), StreamRequest)
    assert r.head.header_bytes == block
    # the same block split over HEADERS + CONTINUATION counts both payloads
    s, c = pair()
    frames = HeadersFrame(1, flags=["END_STREAM"])
    hblock = c.encoder.encode(headers())
    frames.data = hblock[:5]
    cont = ContinuationFrame(1, flags=["END_HEADERS"])
    cont.data = hblock[5:]
    [r] = of(s.feed(frames.serialize() + cont.serialize()), StreamRequest)
    assert r.head.header_bytes == len(hblock)
