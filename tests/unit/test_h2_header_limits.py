"""Header block limits of the sans-IO HTTP/2 layer, as nginx's streaming parser applies them
(ngx_http_v2_state_field_len, _process_header, ngx_http_parse_int): frame sizes up to the
2^24-1 nginx advertises, one HPACK string against large_client_header_buffers' size, the
decoded list against size x number, integers longer than 4 octets, empty names."""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
from hyperframe.frame import ContinuationFrame, DataFrame, HeadersFrame

from truehop.http.h2 import (
    COMPRESSION_ERROR,
    ENHANCE_YOUR_CALM,
    FLOW_CONTROL_ERROR,
    PROTOCOL_ERROR,
    ConnectionEnded,
    H2Limits,
    H2Server,
    StreamRequest,
)

BASE = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
        (b":authority", b"localhost")]


def pair(limits: H2Limits | None = None) -> tuple[H2Server, h2.connection.H2Connection]:
    s = H2Server(limits)
    s.start()
    c = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False,
        header_encoding=None))
    c.initiate_connection()
    c.receive_data(s.data_to_send())
    s.feed(c.data_to_send())
    c.receive_data(s.data_to_send())
    s.feed(c.data_to_send())
    return s, c


def raw_block(fields: list[tuple[bytes, bytes]]) -> bytes:
    """Literal fields without indexing, new names, no Huffman: lengths as given."""
    return hpack.Encoder().encode(fields, huffman=False)


def goaways(s: H2Server, c: h2.connection.H2Connection) -> list[Any]:
    return [e for e in c.receive_data(s.data_to_send())
            if isinstance(e, h2.events.ConnectionTerminated)]


def ended(ev: list[Any]) -> ConnectionEnded:
    [e] = [x for x in ev if isinstance(x, ConnectionEnded)]
    return e


def test_settings_advertise_nginx_frame_size_and_no_header_list_size() -> None:
    s = H2Server()
    s.start()
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.receive_data(s.data_to_send())
    assert c.remote_settings.max_frame_size == (1 << 24) - 1
    assert h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE not in c.remote_settings


def test_header_block_larger_than_16k_in_one_frame() -> None:
    # h2_headers.t "response header - parts": nginx reads a 32 kB HEADERS frame (it
    # advertises 2^24-1); truehop used to end the connection ("overlong frame")
    s, c = pair(H2Limits(max_field_size=65536, header_limit=131072))
    block = raw_block(BASE[:2] + [(b":path", b"/x?h=" + b"x" * 32768), BASE[3]])
    assert len(block) > 32768
    ev = s.feed(HeadersFrame(1, block, flags=["END_HEADERS", "END_STREAM"]).serialize())
    [r] = [e for e in ev if isinstance(e, StreamRequest)]
    assert r.head.query == "h=" + "x" * 32768


def test_field_longer_than_buffer_ends_connection() -> None:
    # h2_headers.t "field name/value size greater": large_client_header_buffers 4 512
    lim = H2Limits(max_field_size=512, header_limit=2048)
    for name, value in ((b"x" * 512, b"v"), (b"n", b"x" * 512)):
        s, c = pair(lim)
        ev = s.feed(HeadersFrame(1, raw_block(BASE + [(name, value)]),
                                 flags=["END_HEADERS", "END_STREAM"]).serialize())
        assert [e for e in ev if isinstance(e, StreamRequest)]
    for name, value in ((b"x" * 513, b"v"), (b"n", b"x" * 513)):
        s, c = pair(lim)
        ev = s.feed(HeadersFrame(1, raw_block(BASE + [(name, value)]),
                                 flags=["END_HEADERS", "END_STREAM"]).serialize())
        assert ended(ev).error_code == ENHANCE_YOUR_CALM and s.closed
        [g] = goaways(s, c)
        assert g.error_code == ENHANCE_YOUR_CALM and g.last_stream_id == 1


def test_field_limit_applies_before_the_frame_is_complete() -> None:
    s, c = pair(H2Limits(max_field_size=512, header_limit=2048))
    frame = HeadersFrame(1, raw_block(BASE + [(b"n", b"x" * 5000)]),
                         flags=["END_HEADERS", "END_STREAM"]).serialize()
    assert ended(s.feed(frame[:200])).error_code == ENHANCE_YOUR_CALM


def test_decoded_list_over_size_times_number_ends_connection() -> None:
    # h2_headers.t "header size equal/greater" (large_client_header_buffers 1 512): names and
    # values of every field, pseudo-headers included, no per-field overhead
    lim = H2Limits(max_field_size=512, header_limit=512)
    base = sum(len(n) + len(v) for n, v in BASE)
    s, c = pair(lim)
    ok = BASE + [(b"longname", b"x" * (512 - base - 8))]
    assert [e for e in s.feed(HeadersFrame(1, raw_block(ok), flags=[
        "END_HEADERS", "END_STREAM"]).serialize()) if isinstance(e, StreamRequest)]
    # the same list through the dynamic table: a few indexed bytes decode over the limit
    c.send_headers(3, BASE + [(b"longname", b"x" * 400), (b"longname2", b"y" * 60)],
                   end_stream=True)
    ev = s.feed(c.data_to_send())
    assert ended(ev).error_code == ENHANCE_YOUR_CALM
    [g] = goaways(s, c)
    assert g.last_stream_id == 3


def test_too_long_integer_refused_before_the_frame_is_complete() -> None:
    # h2_headers.t "too long index" / "too long literal": a frame one byte short, nginx
    # answers COMPRESSION_ERROR once 4 octets of an integer are in
    for payload in (b"\xff\xff\xff\xff", b"\x42\xff\xff\xff\xff"):
        s, c = pair()
        frame = HeadersFrame(1, payload + b"\x00", flags=["END_HEADERS", "END_STREAM"])
        ev = s.feed(frame.serialize()[:-1])
        assert ended(ev).error_code == COMPRESSION_ERROR
        [g] = goaways(s, c)
        assert g.error_code == COMPRESSION_ERROR and g.last_stream_id == 1


def test_integer_of_four_octets_is_fine() -> None:
    # index 127 + 0x7f + 0x7f*128 would be out of range, but a 3-octet length is a length
    s, c = pair(H2Limits(max_field_size=1 << 20, header_limit=1 << 21))
    value = b"v" * 20000                     # 0x7f, then two octets: 3 in all
    block = raw_block(BASE + [(b"x-big", value)])
    ev = s.feed(HeadersFrame(1, block, flags=["END_HEADERS", "END_STREAM"]).serialize())
    [r] = [e for e in ev if isinstance(e, StreamRequest)]
    assert r.head.get("x-big") == "v" * 20000


def test_zero_length_name_ends_connection() -> None:
    s, c = pair()
    block = raw_block(BASE) + b"\x00\x00\x01v"
    ev = s.feed(HeadersFrame(1, block, flags=["END_HEADERS", "END_STREAM"]).serialize())
    assert ended(ev).error_code == PROTOCOL_ERROR


def test_walker_follows_padding_priority_and_continuation() -> None:
    lim = H2Limits(max_field_size=512, header_limit=4096)
    block = raw_block(BASE + [(b"x-a", b"1" * 300), (b"x-b", b"2" * 300)])
    # padded + priority HEADERS, the block split mid-string across CONTINUATION
    s, c = pair(lim)
    h = HeadersFrame(1, block[:40], flags=["PADDED", "PRIORITY", "END_STREAM"], pad_length=7,
                     depends_on=0, stream_weight=15)
    data = h.serialize() + ContinuationFrame(1, block[40:], flags=["END_HEADERS"]).serialize()
    for i in range(0, len(data), 13):          # and fed a few bytes at a time
        ev = s.feed(data[i:i + 13])
        if i + 13 >= len(data):
            [r] = [e for e in ev if isinstance(e, StreamRequest)]
            assert r.head.get("x-b") == "2" * 300
            # $request_length: the block, not the padding or the priority fields
            assert r.head.header_bytes == len(block)
        else:
            assert not ev
    # and a too long field in the CONTINUATION part is still seen
    s, c = pair(lim)
    block = raw_block(BASE + [(b"x-a", b"1" * 300), (b"x-b", b"2" * 600)])
    h = HeadersFrame(1, block[:40], flags=["PADDED", "END_STREAM"], pad_length=3)
    ev = s.feed(h.serialize() + ContinuationFrame(1, block[40:],
                                                  flags=["END_HEADERS"]).serialize())
    assert ended(ev).error_code == ENHANCE_YOUR_CALM


def test_data_frame_larger_than_any_window_refused_unbuffered() -> None:
    s, c = pair(H2Limits(initial_window=65536))
    c.send_headers(1, BASE, end_stream=False)
    s.feed(c.data_to_send())
    frame = DataFrame(1, b"x" * 70000).serialize()
    assert ended(s.feed(frame[:100])).error_code == FLOW_CONTROL_ERROR
