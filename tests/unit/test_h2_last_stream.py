"""The connection's last stream, decided as nginx does when a stream opens
(ngx_http_v2_state_headers): keepalive_requests (`max_requests`), keepalive_time
(`max_lifetime`); streams after it are refused and the final GOAWAY names it."""

from __future__ import annotations

from hyperframe.frame import HeadersFrame
from test_h2 import BASE, Clock, client_events, headers, of, pair, request

from truehop.http.h2 import H2Limits, StreamRequest


def test_max_requests_names_the_last_stream() -> None:
    s, c = pair(H2Limits(max_requests=2))
    assert of(request(s, c, headers(), sid=1), StreamRequest)
    assert s.accept_until is None
    assert of(request(s, c, headers(), sid=3), StreamRequest)
    assert s.accept_until == 3
    ev = request(s, c, headers(), sid=5)
    assert not of(ev, StreamRequest)
    [rst] = [e for e in client_events(s, c) if type(e).__name__ == "StreamReset"]
    assert rst.stream_id == 5 and rst.error_code == 7      # REFUSED_STREAM
    assert s.goaway_final()
    [ga] = [e for e in client_events(s, c) if type(e).__name__ == "ConnectionTerminated"]
    assert ga.last_stream_id == 3 and ga.error_code == 0


def test_max_lifetime_makes_the_next_stream_the_last() -> None:
    clock = Clock()
    s, c = pair(H2Limits(max_lifetime=1.0), clock)
    assert of(request(s, c, headers(), sid=1), StreamRequest)
    assert s.accept_until is None
    clock.t += 1.1
    assert of(request(s, c, headers(), sid=3), StreamRequest)    # served, and the last
    assert s.accept_until == 3
    block = c.encoder.encode([(k.encode(), v.encode()) for k, v in BASE])
    ev = s.feed(HeadersFrame(5, block, flags=["END_HEADERS", "END_STREAM"]).serialize())
    assert not of(ev, StreamRequest)


def test_no_limits_by_default() -> None:
    s, c = pair()
    for sid in range(1, 40, 2):
        assert of(request(s, c, headers(), sid=sid), StreamRequest)
        s.stream_done(sid)
    assert s.accept_until is None
