"""truehop's own HTTP/2 codec below the request rules: frames (checked against hyperframe
as the oracle), SETTINGS, flow control both ways and its overflows, stream states, and a
fuzz invariant: whatever bytes arrive, in whatever pieces, `feed` returns events (a protocol
failure is a ConnectionEnded event), never an exception."""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from test_h2 import client_events, headers, of, pair, request

from truehop.http import h2frames as F
from truehop.http.h2 import (
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    PREFACE,
    PROTOCOL_ERROR,
    STREAM_CLOSED,
    ConnectionEnded,
    H2Limits,
    H2Server,
    StreamData,
    StreamEnded,
    StreamRequest,
    StreamReset,
)


def parse_all(data: bytes) -> list[Frame]:
    out = []
    pos = 0
    while pos < len(data):
        f, length = Frame.parse_frame_header(memoryview(data[pos:pos + 9]))
        f.parse_body(memoryview(data[pos + 9:pos + 9 + length]))
        out.append(f)
        pos += 9 + length
    return out


def goaway_of(s: H2Server) -> GoAwayFrame:
    [g] = [f for f in parse_all(s.data_to_send()) if isinstance(f, GoAwayFrame)]
    return g


def ended(ev: list[Any]) -> ConnectionEnded:
    [e] = of(ev, ConnectionEnded)
    return e


# -- frames -----------------------------------------------------------------------------------


def test_frames_written_are_what_hyperframe_reads() -> None:
    out = bytearray()
    F.settings_frame(out, [(F.SETTINGS_MAX_FRAME_SIZE, 1 << 20), (F.SETTINGS_ENABLE_PUSH, 0)])
    F.settings_ack(out)
    F.ping_frame(out, b"12345678", True)
    F.goaway_frame(out, 7, F.ENHANCE_YOUR_CALM, b"why")
    F.rst_stream_frame(out, 3, F.CANCEL)
    F.window_update_frame(out, 5, 1000)
    F.data_frame(out, 1, b"body", True)
    fs = parse_all(bytes(out))
    assert isinstance(fs[0], SettingsFrame) and fs[0].settings == {5: 1 << 20, 2: 0}
    assert isinstance(fs[1], SettingsFrame) and "ACK" in fs[1].flags
    assert isinstance(fs[2], PingFrame) and fs[2].opaque_data == b"12345678" and \
        "ACK" in fs[2].flags
    assert isinstance(fs[3], GoAwayFrame) and (fs[3].last_stream_id, fs[3].error_code,
                                                fs[3].additional_data) == (7, 11, b"why")
    assert isinstance(fs[4], RstStreamFrame) and (fs[4].stream_id, fs[4].error_code) == (3, 8)
    assert isinstance(fs[5], WindowUpdateFrame) and fs[5].window_increment == 1000
    assert isinstance(fs[6], DataFrame) and fs[6].data == b"body" and \
        "END_STREAM" in fs[6].flags


def test_header_block_split_into_continuation() -> None:
    out = bytearray()
    block = bytes(range(256)) * 3
    F.headers_frames(out, 9, block, True, 300)
    fs = parse_all(bytes(out))
    assert [type(f) for f in fs] == [HeadersFrame, ContinuationFrame, ContinuationFrame]
    assert b"".join(f.data for f in fs) == block            # type: ignore[attr-defined]
    assert "END_STREAM" in fs[0].flags and "END_HEADERS" not in fs[0].flags
    assert "END_HEADERS" in fs[2].flags and "END_HEADERS" not in fs[1].flags


def test_read_header_ignores_the_reserved_bit() -> None:
    raw = DataFrame(5, b"x").serialize()
    raw = raw[:5] + bytes([raw[5] | 0x80]) + raw[6:]
    assert F.read_header(raw, 0) == (1, F.DATA, 0, 5)


# -- settings, ping, goaway -----------------------------------------------------------------


def test_preface_settings_as_before() -> None:
    s = H2Server()
    s.start()
    fs = parse_all(s.data_to_send())
    assert fs[0].settings == {1: 4096, 2: 0, 4: 65536, 5: (1 << 24) - 1, 8: 0, 3: 128}
    assert isinstance(fs[1], WindowUpdateFrame) and fs[1].window_increment == (1 << 31) - 65536


def test_settings_acked_and_ping_answered() -> None:
    s, c = pair()
    s.feed(SettingsFrame(0, settings={4: 1000}).serialize()
           + PingFrame(0, opaque_data=b"abcdefgh").serialize())
    fs = parse_all(s.data_to_send())
    assert isinstance(fs[0], SettingsFrame) and "ACK" in fs[0].flags
    assert isinstance(fs[1], PingFrame) and "ACK" in fs[1].flags and \
        fs[1].opaque_data == b"abcdefgh"


def test_bad_settings_end_the_connection() -> None:
    for frame, code in (
            (SettingsFrame(0, settings={4: 1 << 31}), FLOW_CONTROL_ERROR),
            (SettingsFrame(0, settings={5: 100}), PROTOCOL_ERROR),
            (SettingsFrame(0, settings={2: 2}), PROTOCOL_ERROR)):
        s, c = pair()
        assert ended(s.feed(frame.serialize())).error_code == code
        assert goaway_of(s).error_code == code
    s, c = pair()
    out = bytearray()          # a SETTINGS frame whose length is not a multiple of 6
    F.frame_header(out, 5, F.SETTINGS, 0, 0)
    assert ended(s.feed(bytes(out) + b"\x00" * 5)).error_code == FRAME_SIZE_ERROR


def test_bad_preface() -> None:
    s = H2Server()
    s.start()
    s.data_to_send()
    ev = s.feed(b"GET / HTTP/1.1\r\n\r\n")
    assert ended(ev).error_code == PROTOCOL_ERROR


def test_client_goaway_ends_the_connection() -> None:
    s, c = pair()
    ev = s.feed(GoAwayFrame(0, last_stream_id=0, error_code=0).serialize())
    e = ended(ev)
    assert e.reason == "client sent GOAWAY" and s.closed and not s.data_to_send()


def test_unknown_frame_types_skipped() -> None:
    s, c = pair()
    out = bytearray()
    F.frame_header(out, 8, 0xEE, 0xFF, 0)
    ev = s.feed(bytes(out) + b"whatever")
    assert ev == [] and not s.closed
    assert of(request(s, c, headers()), StreamRequest)


def test_push_promise_from_client_is_protocol_error() -> None:
    s, c = pair()
    request(s, c, headers(), end=False)
    ev = s.feed(PushPromiseFrame(1, promised_stream_id=2, data=b"\x82").serialize())
    assert ended(ev).error_code == PROTOCOL_ERROR


# -- stream states ----------------------------------------------------------------------------


def test_data_on_half_closed_stream_resets_it() -> None:
    s, c = pair()
    request(s, c, headers(), end=True)
    ev = s.feed(DataFrame(1, b"late").serialize())
    [r] = of(ev, StreamReset)
    assert r.error_code == STREAM_CLOSED and not r.by_client and not s.closed
    assert [f.error_code for f in parse_all(s.data_to_send())
            if isinstance(f, RstStreamFrame)] == [STREAM_CLOSED]


def test_data_on_idle_stream_is_protocol_error() -> None:
    s, c = pair()
    assert ended(s.feed(DataFrame(5, b"x").serialize())).error_code == PROTOCOL_ERROR


def test_even_or_reused_stream_id_is_protocol_error() -> None:
    s, c = pair()
    block = c.encoder.encode(headers())
    assert ended(s.feed(HeadersFrame(2, block, flags=["END_HEADERS"]).serialize())
                 ).error_code == PROTOCOL_ERROR
    s, c = pair()
    request(s, c, headers(), sid=5)
    s.send_response(5, 200, [], end_stream=True)
    block = c.encoder.encode(headers())
    ev = s.feed(HeadersFrame(3, block, flags=["END_HEADERS", "END_STREAM"]).serialize())
    assert of(ev, ConnectionEnded)


def test_frames_inside_a_header_block_are_refused() -> None:
    s, c = pair()
    block = c.encoder.encode(headers())
    ev = s.feed(HeadersFrame(1, block[:3]).serialize()
                + PingFrame(0, opaque_data=b"12345678").serialize())
    assert ended(ev).error_code == PROTOCOL_ERROR
    s, c = pair()
    ev = s.feed(ContinuationFrame(1, b"\x82", flags=["END_HEADERS"]).serialize())
    assert ended(ev).error_code == PROTOCOL_ERROR
    s, c = pair()
    ev = s.feed(HeadersFrame(1, block[:3]).serialize()
                + ContinuationFrame(3, block[3:], flags=["END_HEADERS"]).serialize())
    assert ended(ev).error_code == PROTOCOL_ERROR


def test_trailers_without_end_stream_is_protocol_error() -> None:
    s, c = pair()
    request(s, c, headers(method="POST"), end=False)
    block = c.encoder.encode([(b"x-t", b"1")])
    ev = s.feed(HeadersFrame(1, block, flags=["END_HEADERS"]).serialize())
    assert ended(ev).error_code == PROTOCOL_ERROR


def test_trailers_end_the_stream() -> None:
    s, c = pair()
    request(s, c, headers(method="POST"), end=False)
    c.send_data(1, b"abc")
    c.send_headers(1, [(b"x-t", b"1")], end_stream=True)
    ev = s.feed(c.data_to_send())
    [d] = of(ev, StreamData)
    assert d.data == b"abc" and of(ev, StreamEnded)


def test_padded_data_counts_padding_in_flow() -> None:
    s, c = pair()
    request(s, c, headers(method="POST"), end=False)
    f = DataFrame(1, b"hello", flags=["PADDED"], pad_length=10)
    [d] = of(s.feed(f.serialize()), StreamData)
    assert d.data == b"hello" and d.flow == 16
    bad = bytearray(DataFrame(1, b"hello", flags=["PADDED"], pad_length=10).serialize())
    bad[9] = 200                                 # padding longer than the frame
    assert ended(s.feed(bytes(bad))).error_code == PROTOCOL_ERROR


def test_rst_stream_on_idle_stream_is_protocol_error() -> None:
    s, c = pair()
    assert ended(s.feed(RstStreamFrame(9, error_code=8).serialize())
                 ).error_code == PROTOCOL_ERROR


def test_frames_on_a_reset_stream_are_dropped() -> None:
    s, c = pair()
    request(s, c, headers(method="POST"), end=False)
    s.reset(1, 8)
    s.data_to_send()
    ev = s.feed(DataFrame(1, b"x" * 100).serialize())
    assert ev == [] and not s.closed
    # its bytes still count against (and come back to) the connection window
    assert s.conn.recv.current + s.conn.recv.processed == (1 << 31) - 1


# -- flow control -------------------------------------------------------------------------------


def test_connection_window_overflow() -> None:
    s, c = pair()
    ev = s.feed(WindowUpdateFrame(0, window_increment=(1 << 31) - 1).serialize())
    assert ended(ev).error_code == FLOW_CONTROL_ERROR


def test_stream_window_overflow_resets_only_the_stream() -> None:
    s, c = pair()
    request(s, c, headers())
    ev = s.feed(WindowUpdateFrame(1, window_increment=(1 << 31) - 1).serialize())
    [r] = of(ev, StreamReset)
    assert r.error_code == FLOW_CONTROL_ERROR and not s.closed


def test_settings_window_overflow_on_open_stream() -> None:
    s, c = pair()
    request(s, c, headers())
    s.feed(WindowUpdateFrame(1, window_increment=(1 << 30)).serialize())
    ev = s.feed(SettingsFrame(0, settings={4: (1 << 31) - 1}).serialize())
    assert ended(ev).error_code == FLOW_CONTROL_ERROR


def test_zero_increment() -> None:
    s, c = pair()
    # (hyperframe refuses to build a zero increment: written by hand)
    assert ended(s.feed(bytes.fromhex("000004080000000000" "00000000"))
                 ).error_code == PROTOCOL_ERROR
    s, c = pair()
    request(s, c, headers())
    ev = s.feed(bytes.fromhex("000004080000000001" "00000000"))
    [r] = of(ev, StreamReset)
    assert r.error_code == PROTOCOL_ERROR and not s.closed


def test_initial_window_change_applies_to_open_streams() -> None:
    s, c = pair()
    request(s, c, headers())
    s.feed(SettingsFrame(0, settings={4: 0}).serialize())
    s.data_to_send()
    s.send_response(1, 200, [])
    s.send_body(1, b"x" * 100)
    s.send_end(1)
    assert s.pending(1) == 100
    assert not [f for f in parse_all(s.data_to_send()) if isinstance(f, DataFrame)]
    s.feed(SettingsFrame(0, settings={4: 60}).serialize())
    data = [f for f in parse_all(s.data_to_send()) if isinstance(f, DataFrame)]
    assert [len(f.data) for f in data] == [60] and s.pending(1) == 40


def test_peer_max_frame_size_bounds_data_frames() -> None:
    s, c = pair()
    request(s, c, headers())
    s.feed(WindowUpdateFrame(0, window_increment=1 << 20).serialize()
           + WindowUpdateFrame(1, window_increment=1 << 20).serialize())
    s.data_to_send()
    s.send_response(1, 200, [])
    s.send_body(1, b"x" * 40000)
    s.send_end(1)
    sizes = [len(f.data) for f in parse_all(s.data_to_send()) if isinstance(f, DataFrame)
             and f.data]
    assert sizes == [16384, 16384, 7232]


def test_data_beyond_the_stream_window() -> None:
    s, c = pair(H2Limits(initial_window=1000))
    request(s, c, headers(method="POST"), end=False)
    ev = s.feed(DataFrame(1, b"x" * 600).serialize() + DataFrame(1, b"x" * 600).serialize())
    assert ended(ev).error_code == FLOW_CONTROL_ERROR


def test_response_headers_large_and_table_size_zero() -> None:
    # the client allows no dynamic table: our encoder says so and the h2 client decodes
    s, c = pair()
    c.update_settings({h2.settings.SettingCodes.HEADER_TABLE_SIZE: 0,
                       h2.settings.SettingCodes.MAX_FRAME_SIZE: 16384})
    s.feed(c.data_to_send())
    client_events(s, c)
    request(s, c, headers())
    big = [(f"x-h{i}", "v" * 1000) for i in range(40)]
    assert s.send_response(1, 200, big + [("server", "truehop")], end_stream=True)
    [r] = [e for e in client_events(s, c) if isinstance(e, h2.events.ResponseReceived)]
    got = dict(r.headers)
    assert got[b"x-h39"] == b"v" * 1000 and got[b"server"] == b"truehop"
    # and again, on a second stream (nothing was indexed)
    request(s, c, headers(), sid=3)
    s.send_response(3, 204, [("server", "truehop")], end_stream=True)
    [r] = [e for e in client_events(s, c) if isinstance(e, h2.events.ResponseReceived)]
    assert dict(r.headers)[b":status"] == b"204"


def test_many_responses_through_one_dynamic_table() -> None:
    s, c = pair()
    for i in range(200):
        sid = 1 + 2 * i
        request(s, c, headers(), sid=sid)
        s.send_response(sid, 200, [("server", "truehop"), ("x-n", str(i)),
                                   ("content-type", "text/plain"),
                                   ("date", f"Tue, 08 Dec 2026 00:00:{i % 60:02} GMT")],
                        end_stream=True)
        s.stream_done(sid)
        [r] = [e for e in client_events(s, c) if isinstance(e, h2.events.ResponseReceived)]
        assert dict(r.headers)[b"x-n"] == str(i).encode()


# -- fuzz: any bytes, any split ------------------------------------------------------------------


def _client_conversation() -> bytes:
    c = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False,
        header_encoding=None))
    c.initiate_connection()
    c.send_headers(1, headers([("x-a", "1")], method="POST"), end_stream=False)
    c.send_data(1, b"body" * 10, end_stream=True, pad_length=3)
    c.send_headers(3, headers([("cookie", "a=b")]), end_stream=True)
    c.increment_flow_control_window(1000)
    c.ping(b"12345678")
    return c.data_to_send()


CONVERSATION = _client_conversation()


def _feed_all(pieces: list[bytes]) -> list[Any]:
    s = H2Server()
    s.start()
    events: list[Any] = []
    for p in pieces:
        events += s.feed(p)
        s.data_to_send()
    return events


def _summary(events: list[Any]) -> list[tuple[str, int]]:
    return [(type(e).__name__, getattr(e, "stream_id", 0)) for e in events
            if type(e).__name__ != "WindowOpened"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, len(CONVERSATION) - 1), max_size=12))
def test_any_split_gives_the_same_events(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    pieces = [CONVERSATION[a:b] for a, b in zip([0] + points, points + [len(CONVERSATION)],
                                                strict=True)]
    whole = _feed_all([CONVERSATION])
    assert _summary(_feed_all(pieces)) == _summary(whole)


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=200), st.integers(0, len(CONVERSATION)))
def test_random_bytes_never_raise(junk: bytes, keep: int) -> None:
    # a valid start, cut anywhere, then anything
    for data in (PREFACE + junk, CONVERSATION[:keep] + junk):
        events = _feed_all([data])
        assert all(type(e).__module__ == "truehop.http.h2" for e in events)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 0xFF), st.integers(0, 9),
                          st.binary(max_size=40)), max_size=8))
def test_random_frames_never_raise(frames: list[tuple[int, int, int, bytes]]) -> None:
    data = PREFACE + SettingsFrame(0).serialize()
    for ftype, flags, sid, payload in frames:
        out = bytearray()
        F.frame_header(out, len(payload), ftype, flags, sid)
        data += bytes(out) + payload
    _feed_all([data])
    _feed_all([data[i:i + 7] for i in range(0, len(data), 7)])


def test_header_pending_covers_a_frame_not_complete() -> None:
    # client_header_timeout (net.h2conn) bounds a header block from its first bytes on
    s, c = pair()
    frame = HeadersFrame(1, c.encoder.encode(headers()),
                         flags=["END_HEADERS", "END_STREAM"]).serialize()
    assert s.feed(frame[:12]) == [] and s.header_pending() and not s.in_header_block
    assert of(s.feed(frame[12:]), StreamRequest) and not s.header_pending()
    s.feed(HeadersFrame(3, c.encoder.encode(headers())).serialize())
    assert s.header_pending() and s.in_header_block


def test_large_data_frame_arriving_in_pieces() -> None:
    s, c = pair(H2Limits(initial_window=1 << 20))
    request(s, c, headers(method="POST"), end=False)
    s.open_window(1, 1 << 20)
    frame = DataFrame(1, b"z" * 500_000, flags=["END_STREAM"]).serialize()
    events: list[Any] = []
    for i in range(0, len(frame), 1000):
        events += s.feed(frame[i:i + 1000])
    [d] = of(events, StreamData)
    assert d.data == b"z" * 500_000 and of(events, StreamEnded)
