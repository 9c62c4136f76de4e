"""HTTP/2 per virtual server (nginx 1.25.1+ `http2 on|off` in server blocks): a stream whose
Host picks a server with HTTP/2 off is answered 421 on that stream, as nginx does."""

from __future__ import annotations

from typing import Any

import h2.events
import pytest
from harness import free_port
from test_tls_h2 import RawH2

pytestmark = pytest.mark.timeout(60)

CONF = """
error_log error.log info;
events { }
http {
    access_log access.log;
    server {
        listen 127.0.0.1:@@PORT@@;
        server_name on.test;
        http2 on;
        location / { return 200 "on $server_protocol\\n"; }
    }
    server {
        listen 127.0.0.1:@@PORT@@;
        server_name off.test;
        http2 off;
        location / { return 200 "off $server_protocol\\n"; }
    }
}
"""


def _get(h: RawH2, host: bytes, sid: int) -> tuple[bytes, bytes]:
    h.request([(b":method", b"GET"), (b":scheme", b"http"), (b":authority", host),
               (b":path", b"/")], sid=sid)
    evs = h.events(h2.events.StreamEnded)
    [resp] = [e for e in evs if isinstance(e, h2.events.ResponseReceived)
              and e.stream_id == sid]
    body = b"".join(e.data for e in evs if isinstance(e, h2.events.DataReceived)
                    and e.stream_id == sid)
    return dict(resp.headers)[b":status"], body


def test_stream_to_server_with_http2_off_is_misdirected(truehop: Any) -> None:
    port = free_port()
    tp = truehop(CONF, PORT=port)
    h = RawH2(port)
    try:
        assert _get(h, b"on.test", 1) == (b"200", b"on HTTP/2.0\n")
        status, _ = _get(h, b"off.test", 3)
        assert status == b"421"
        # the connection goes on serving the server that has HTTP/2
        assert _get(h, b"on.test", 5)[0] == b"200"
    finally:
        h.close()
    assert "for which the negotiated protocol is disabled" in tp.error_log()
