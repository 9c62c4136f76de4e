"""A stream over max_concurrent_streams is a stream error (RFC 9113 §5.1.2, issue 14 item 3):
the sans-IO layer refuses it alone with REFUSED_STREAM and keeps the connection, both while
streams are in flight and in the client's first flight, before it has seen our SETTINGS (h2
itself would end the connection with GOAWAY PROTOCOL_ERROR)."""

from __future__ import annotations

import h2.config
import h2.connection
from hyperframe.frame import HeadersFrame
from test_h2 import BASE, client_events, headers, of, pair, request

from truehop.http.h2 import (
    REFUSED_STREAM,
    ConnectionEnded,
    H2Limits,
    H2Server,
    StreamRequest,
    StreamReset,
)


def test_one_stream_over_the_limit_refused_alone() -> None:
    s, c = pair(H2Limits(max_concurrent_streams=4))
    for sid in (1, 3, 5, 7):
        assert of(request(s, c, headers(), sid=sid), StreamRequest)
    # hand-built: the h2 client itself keeps to our limit
    ev = s.feed(HeadersFrame(9, c.encoder.encode(headers()),
                             flags=["END_HEADERS", "END_STREAM"]).serialize())
    assert not of(ev, ConnectionEnded) and not of(ev, StreamRequest)
    [r] = of(ev, StreamReset)
    assert (r.stream_id, r.error_code) == (9, REFUSED_STREAM)
    assert not s.closed
    # the four are answered; the connection takes new streams once one is done
    s.send_response(1, 200, [], end_stream=True)
    s.stream_done(1)
    client_events(s, c)
    assert of(request(s, c, headers(), sid=11), StreamRequest)


def test_first_flight_over_the_limit_refused_alone() -> None:
    s = H2Server(H2Limits(max_concurrent_streams=4))
    s.start()
    c = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False,
        header_encoding=None))
    c.initiate_connection()
    flight = c.data_to_send()
    block = [(k.encode(), v.encode()) for k, v in BASE]
    for sid in (1, 3, 5, 7, 9):
        flight += HeadersFrame(sid, c.encoder.encode(block),
                               flags=["END_HEADERS", "END_STREAM"]).serialize()
    ev = s.feed(flight)             # before the client has read our SETTINGS
    assert not of(ev, ConnectionEnded)
    assert [e.stream_id for e in of(ev, StreamRequest)] == [1, 3, 5, 7]
    assert [(e.stream_id, e.error_code) for e in of(ev, StreamReset)] == [(9, REFUSED_STREAM)]
    out = s.data_to_send()
    assert b"\x00\x00\x04\x03\x00\x00\x00\x00\x09" in out      # RST_STREAM on stream 9
