"""HTTP/2 connection end as nginx does it (nginx-tests h2_keepalive.t): keepalive_requests and
keepalive_timeout 0 make a stream the connection's last one, announced by GOAWAY naming it;
every close is GOAWAY then a lingering close, so frames the client sends after the server is
done (a PING) do not make the kernel reset the connection and destroy the response and GOAWAY
the client has not read yet. Raw frames (hyperframe + hpack): the h2 library as a client stops
reading at GOAWAY."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import hpack
import pytest
import trustme
from harness import free_port
from hyperframe.frame import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

pytestmark = pytest.mark.timeout(60)

BIG = b"SEE-THAT" * 50000      # 400000 bytes, as h2_keepalive.t

CONF = """
error_log error.log info;
events { }
http {
    http2 on;
    server {
        listen 127.0.0.1:@@MAXREQ@@ sndbuf=1m;
        keepalive_requests 2;
        location / { root @@ROOT@@; }
    }
    server {
        listen 127.0.0.1:@@TLS@@ ssl;
        ssl_certificate @@CERT@@;
        ssl_certificate_key @@CERT@@;
        keepalive_requests 1;
        location / { root @@ROOT@@; }
    }
    server {
        listen 127.0.0.1:@@KAT0@@;
        keepalive_timeout 0;
        location / { root @@ROOT@@; }
    }
}
"""


class RawH2:
    """A client speaking HTTP/2 with prior knowledge, frame by frame."""

    def __init__(self, port: int, rcvbuf: int | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.connect(("127.0.0.1", port))
        if tls is not None:
            s = tls.wrap_socket(s, server_hostname="localhost")
            assert s.selected_alpn_protocol() == "h2"
        self.sock = s
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.buf = b""
        self.next_sid = 1
        self.status: dict[int, str] = {}
        settings = SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 2 ** 20})
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + settings.serialize() +
                  WindowUpdateFrame(0, window_increment=2 ** 21).serialize())

    def get(self, path: str) -> int:
        sid = self.next_sid
        self.next_sid += 2
        block = self.enc.encode([(":method", "GET"), (":scheme", "http"), (":path", path),
                                 (":authority", "localhost")])
        self.sock.sendall(HeadersFrame(sid, block, flags=["END_HEADERS", "END_STREAM"]
                                       ).serialize())
        return sid

    def ping(self) -> None:
        self.sock.sendall(PingFrame(0, opaque_data=b"SEE-THIS").serialize())

    def read(self, until: Any, wait: float = 5.0) -> list[Frame]:
        """Frames until `until(frames)` is true, the connection ends, or `wait` seconds pass
        without data."""
        frames: list[Frame] = []
        self.sock.settimeout(wait)
        while not until(frames):
            while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
                try:
                    d = self.sock.recv(65536)
                except (TimeoutError, ConnectionResetError, ssl.SSLError):
                    return frames
                if not d:
                    return frames
                self.buf += d
            f, n = Frame.parse_frame_header(memoryview(self.buf[:9]))
            f.parse_body(memoryview(self.buf[9:9 + n]))
            self.buf = self.buf[9 + n:]
            if isinstance(f, HeadersFrame):     # HPACK state: every block, in order
                self.status.setdefault(f.stream_id, dict(self.dec.decode(f.data))[":status"])
            frames.append(f)
        return frames

    def close(self) -> None:
        self.sock.close()


def ended(sid: int) -> Any:
    return lambda fs: any(f.stream_id == sid and "END_STREAM" in f.flags for f in fs)


def goaway(fs: list[Frame]) -> GoAwayFrame | None:
    return next((f for f in fs if isinstance(f, GoAwayFrame)), None)


def body(fs: list[Frame], sid: int) -> int:
    return sum(len(f.data) for f in fs if isinstance(f, DataFrame) and f.stream_id == sid)


def status(c: RawH2, fs: list[Frame], sid: int) -> str | None:
    return c.status.get(sid)


@pytest.fixture
def site(truehop: Any, tmp_path: Path) -> SimpleNamespace:
    root = tmp_path / "www"      # under the server's own directory: readable by its workers
    root.mkdir()
    (root / "index.html").write_bytes(BIG)
    (root / "t.html").write_bytes(b"SEE-THAT")
    ca = trustme.CA()
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(
        str(tmp_path / "cert.pem"))
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    ctx.set_alpn_protocols(["h2"])
    maxreq, kat0, tls = free_port(), free_port(), free_port()
    tp = truehop(CONF, MAXREQ=maxreq, KAT0=kat0, TLS=tls, ROOT=root, CERT=tmp_path / "cert.pem")
    return SimpleNamespace(tp=tp, maxreq=maxreq, kat0=kat0, tls=tls, ctx=ctx)


def test_keepalive_requests_last_stream_goaway_and_lingering_close(
        site: SimpleNamespace) -> None:
    c = RawH2(site.maxreq, rcvbuf=64 * 1024)
    try:
        sid = c.get("/")
        fs = c.read(ended(sid))
        assert status(c, fs, sid) == "200" and body(fs, sid) == len(BIG)
        fs += c.read(lambda x: goaway(x) is not None, wait=0.5)
        assert goaway(fs) is None              # one request of two: the connection stays

        sid = c.get("/")
        time.sleep(0.2)            # the server is done with it; a close now loses the PING
        c.ping()
        fs = c.read(lambda x: ended(sid)(x) and goaway(x) is not None)
        assert status(c, fs, sid) == "200"
        assert body(fs, sid) == len(BIG)       # no reset destroyed the unread response
        g = goaway(fs)
        assert g is not None and g.last_stream_id == sid and g.error_code == 0
    finally:
        c.close()


def test_stream_after_the_last_is_refused(site: SimpleNamespace) -> None:
    c = RawH2(site.maxreq)
    try:
        c.get("/t.html")
        last = c.get("/t.html")
        extra = c.get("/t.html")               # sent before the client could see a GOAWAY
        fs = c.read(lambda x: goaway(x) is not None)
        assert status(c, fs, last) == "200"
        assert any(isinstance(f, RstStreamFrame) and f.stream_id == extra and
                   f.error_code == 7 for f in fs)          # REFUSED_STREAM: safe to retry
        g = goaway(fs)
        assert g is not None and g.last_stream_id == last
    finally:
        c.close()


def test_keepalive_timeout_0_serves_one_stream(site: SimpleNamespace) -> None:
    c = RawH2(site.kat0)
    try:
        time.sleep(0.1)           # nginx waits client_header_timeout for the first stream
        sid = c.get("/t.html")
        fs = c.read(lambda x: ended(sid)(x) and goaway(x) is not None)
        assert status(c, fs, sid) == "200" and body(fs, sid) == 8
        g = goaway(fs)
        assert g is not None and g.last_stream_id == sid
    finally:
        c.close()


def test_graceful_shutdown_in_idle_lingers(site: SimpleNamespace) -> None:
    c = RawH2(site.maxreq, rcvbuf=64 * 1024)
    try:
        sid = c.get("/")
        time.sleep(0.1)
        site.tp.reload(wait_for="reconfiguring done")
        time.sleep(0.3)
        c.ping()
        fs = c.read(lambda x: ended(sid)(x) and goaway(x) is not None)
        assert status(c, fs, sid) == "200"
        assert body(fs, sid) == len(BIG)
        g = goaway(fs)
        assert g is not None and g.last_stream_id == sid
    finally:
        c.close()


def test_tls_lingering_close(site: SimpleNamespace) -> None:
    # over TLS: GOAWAY, close_notify, then the same lingering read (nginx: ngx_ssl_shutdown,
    # then shutdown(SHUT_WR))
    c = RawH2(site.tls, rcvbuf=64 * 1024, tls=site.ctx)
    try:
        sid = c.get("/")
        time.sleep(0.3)
        c.ping()
        fs = c.read(lambda x: ended(sid)(x) and goaway(x) is not None)
        assert status(c, fs, sid) == "200"
        assert body(fs, sid) == len(BIG)
        g = goaway(fs)
        assert g is not None and g.last_stream_id == sid
        c.sock.settimeout(5)
        assert c.sock.recv(100) == b""        # close_notify: a clean TLS end
    finally:
        c.close()
