"""Request bodies nobody reads, and HTTP/2 request-body flow control, as nginx-tests'
body_chunked.t and h2_request_body.t check them.

HTTP/1: a request answered without reading its body (`return`, a static file) has the body
discarded first (ngx_http_discard_request_body); a malformed chunk already read is then the
answer, nginx's 400 page, and the connection closes.

HTTP/2: a stream's window is http2_body_preread_size (64k) until the body is read
(ngx_http_v2_read_request_body): a body read whole is then no longer flow-controlled (the
window goes to 2^31-1), a streamed one gets a window of client_body_buffer_size. A response
sent before the request body ended is followed by RST_STREAM(NO_ERROR) (RFC 9113 §8.1)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest
from harness import TruehopProcess, free_port, parse_responses, raw_request, render

pytestmark = pytest.mark.timeout(60)

CONF = """
error_log error.log info;
events { }
http {
    access_log access.log;
    server {
        listen 127.0.0.1:@@PORT@@;
        listen 127.0.0.1:@@H2@@;
        server_name localhost;
        http2 on;
        root @@ROOT@@;

        location /discard { return 200 "TEST\\n"; }
        location /redirect { return 302 /elsewhere; }
        location /ep { error_page 400 /handled; return 200 "TEST\\n"; }
        location /handled { return 200 "handled\\n"; }
        location /proxy { proxy_pass http://127.0.0.1:@@UP@@; }
        location /unbuffered {
            proxy_request_buffering off;
            client_body_buffer_size 1m;
            client_max_body_size 10m;
            proxy_pass http://127.0.0.1:@@UP@@;
        }
    }
    server {
        listen 127.0.0.1:@@UP@@;
        client_max_body_size 10m;
        location / { return 200 "len=$content_length\\n"; }
    }
}
"""


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    d = tmp_path_factory.mktemp("discard")
    root = d / "html"
    root.mkdir()
    (root / "file.txt").write_text("FILE\n")
    p, p2, up = free_port(), free_port(), free_port()
    proc = TruehopProcess(render(CONF, PORT=p, H2=p2, UP=up, ROOT=root), d / "run")
    proc.start()
    yield p, p2
    proc.stop(check=True)


# -- HTTP/1: a malformed chunked body that is discarded ----------------------------------------

RUNAWAY = b"4\r\nSEE-THIS\r\n0\r\n\r\n"     # the chunk is longer than its size says


def _chunked(path: str, body: bytes, close: bool = True) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: localhost\r\n"
            + ("Connection: close\r\n" if close else "")
            + "Transfer-Encoding: chunked\r\n\r\n").encode() + body


@pytest.mark.parametrize("close", [True, False])
def test_runaway_chunk_with_return_is_400(ports: tuple[int, int], close: bool) -> None:
    # body_chunked.t "runaway chunk discard": 400, nginx's page, and the connection closed
    raw, closed = raw_request(ports[0], _chunked("/discard", RUNAWAY, close))
    [r] = parse_responses(raw)
    assert r.status == 400
    assert b"<title>400 Bad Request</title>" in r.body
    assert r.header("Connection") == "close"
    assert closed


def test_runaway_chunk_with_return_redirect_is_400(ports: tuple[int, int]) -> None:
    # `return 302 url` is sent by ngx_http_send_response too, which discards first
    raw, closed = raw_request(ports[0], _chunked("/redirect", RUNAWAY))
    [r] = parse_responses(raw)
    assert r.status == 400 and r.header("Location") is None and closed


def test_runaway_chunk_to_static_file_is_400(ports: tuple[int, int]) -> None:
    # ngx_http_static_handler discards the body once the file is open
    raw, closed = raw_request(ports[0], _chunked("/file.txt", RUNAWAY))
    [r] = parse_responses(raw)
    assert r.status == 400 and b"FILE" not in r.body and closed


def test_discard_error_goes_to_error_page_once(ports: tuple[int, int]) -> None:
    # the 400 takes error_page 400; the error page's own `return` finds the body handled
    # (nginx's r->request_body is set by the first discard) and answers with the 400 status
    raw, closed = raw_request(ports[0], _chunked("/ep", RUNAWAY))
    [r] = parse_responses(raw)
    assert (r.status, r.body) == (400, b"handled\n") and closed


# -- HTTP/2 ------------------------------------------------------------------------------------

class H2Client:
    """A prior-knowledge HTTP/2 client over a plain socket (h2 library), frame by frame."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.c = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding=None))
        self.c.initiate_connection()
        self.sock.sendall(self.c.data_to_send())
        self.events: list[Any] = []
        self.wait(lambda: any(isinstance(e, h2.events.RemoteSettingsChanged)
                              for e in self.events))

    def send(self) -> None:
        data = self.c.data_to_send()
        if data:
            self.sock.sendall(data)

    def wait(self, done: Any, timeout: float = 3.0) -> bool:
        """Read until `done()` holds (True) or `timeout` passes (False)."""
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return False
            if not data:
                return False
            self.events += self.c.receive_data(data)
            self.send()
        return True

    def post(self, path: str, length: int) -> int:
        sid = self.c.get_next_available_stream_id()
        self.c.send_headers(sid, [(b":method", b"POST"), (b":scheme", b"http"),
                                  (b":authority", b"localhost"), (b":path", path.encode()),
                                  (b"content-length", str(length).encode())])
        self.send()
        return sid

    def updates(self, sid: int) -> list[int]:
        return [e.delta for e in self.events
                if isinstance(e, h2.events.WindowUpdated) and e.stream_id == sid]

    def response(self, sid: int) -> tuple[bytes, bytes]:
        assert self.wait(lambda: any(isinstance(e, h2.events.StreamEnded) and e.stream_id == sid
                                     for e in self.events))
        [resp] = [e for e in self.events
                  if isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid]
        body = b"".join(e.data for e in self.events
                        if isinstance(e, h2.events.DataReceived) and e.stream_id == sid)
        return dict(resp.headers)[b":status"], body

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def h2c(ports: tuple[int, int]) -> Iterator[H2Client]:
    c = H2Client(ports[1])
    yield c
    c.close()


def test_h2_windows_are_nginx_preread_and_max(h2c: H2Client) -> None:
    # SETTINGS_INITIAL_WINDOW_SIZE is http2_body_preread_size (64k); the connection's window
    # is opened to NGX_HTTP_V2_MAX_WINDOW with the preface
    assert h2c.c.remote_settings[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] == 65536
    assert h2c.wait(lambda: h2c.c.outbound_flow_control_window == 2**31 - 1)


def test_h2_buffered_body_window_opened_when_read(h2c: H2Client) -> None:
    # h2_request_body.t "big request body - WINDOW_UPDATE": the whole preread window is sent,
    # and the stream's window is opened (by at least 64k) without the body being consumed
    # piecemeal; the rest of the body may then come in frames larger than the preread window
    sid = h2c.post("/proxy", 65536 + 300000)
    for _ in range(4):
        h2c.c.send_data(sid, b"01234567" * 2048)
        h2c.send()
    assert h2c.wait(lambda: bool(h2c.updates(sid)))
    assert h2c.updates(sid)[0] >= 65536
    h2c.c.max_outbound_frame_size = h2c.c.remote_settings.max_frame_size
    h2c.c.send_data(sid, b"x" * 300000, end_stream=True)    # one DATA frame
    h2c.send()
    assert h2c.response(sid) == (b"200", b"len=365536\n")


def test_h2_streamed_body_window_is_client_body_buffer_size(h2c: H2Client) -> None:
    # proxy_request_buffering off: the window becomes client_body_buffer_size (1m) when the
    # body is read: one WINDOW_UPDATE of 1m - 64k
    sid = h2c.post("/unbuffered", 2 * 1024 * 1024)
    assert h2c.wait(lambda: bool(h2c.updates(sid)))
    assert h2c.updates(sid)[0] == 1024 * 1024 - 65536


def test_h2_response_before_body_end_resets_with_no_error(h2c: H2Client) -> None:
    # h2_request_body.t "request body discarded - zero RST_STREAM": the body is never read
    # (`return`), the complete response is followed by RST_STREAM(NO_ERROR)
    sid = h2c.post("/discard", 10)
    assert h2c.wait(lambda: any(isinstance(e, h2.events.StreamReset) for e in h2c.events))
    [rst] = [e for e in h2c.events if isinstance(e, h2.events.StreamReset)]
    assert rst.stream_id == sid and rst.error_code == h2.errors.ErrorCodes.NO_ERROR
    status, body = h2c.response(sid)
    assert (status, body) == (b"200", b"TEST\n")
    # the preread window was never opened for a body nobody reads
    assert h2c.updates(sid) == []
    # the connection goes on; a stream whose request was complete is not reset
    sid2 = h2c.post("/discard", 4)
    h2c.c.send_data(sid2, b"TEST", end_stream=True)
    h2c.send()
    assert h2c.response(sid2) == (b"200", b"TEST\n")
    h2c.wait(lambda: False, timeout=0.3)
    assert [e.stream_id for e in h2c.events if isinstance(e, h2.events.StreamReset)] == [sid]
