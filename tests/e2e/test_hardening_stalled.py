"""Clients that stop reading are let go (issue 14, item 1; bad-input.md §5.4 "Slow reader").

A client that never reads its response must not keep its connection past `send_timeout`
(and the keep-alive / lingering timeouts that follow) plus a few seconds: the server side
socket is closed, and its `worker_connections` slot comes back. asyncio's `transport.close()`
waits without a deadline for the write buffer to drain, so before the fix these sockets stayed
ESTABLISHED, owned by the worker, for ever: HTTP/1.1 responses whose tail fits below the
transport's high-water mark (about 3.8-3.9 MB on loopback, the rest sitting in the kernel's
send buffer), HTTP/2 (h2c and over TLS) after the stream's send timeout, and WebSocket
tunnels after their idle timeout.

Each test starts stuck clients (a 4 KiB receive buffer, never read), checks in
/proc/net/tcp that no server-side ESTABLISHED socket is left on the port within the
deadline, then that a worker with a low `worker_connections` serves new clients: with the
stuck connections still counted, most of them would be refused.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hpack
import pytest
import trustme
from harness import close_all, free_ports, parse_responses
from hyperframe.frame import HeadersFrame, SettingsFrame, WindowUpdateFrame

pytestmark = pytest.mark.timeout(90)

SEND_TIMEOUT = 2.0
SLACK = 5.0                 # "a few seconds" past the timeouts
RCVBUF = 4096
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# -- what the kernel says ---------------------------------------------------------------------

def server_sockets(port: int) -> list[int]:
    """Remote ports of the ESTABLISHED sockets whose local port is `port` (the server side)."""
    out = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if f[3] == "01" and int(f[1].rsplit(":", 1)[1], 16) == port:
            out.append(int(f[2].rsplit(":", 1)[1], 16))
    return out


def wait_released(port: int, deadline: float) -> list[int]:
    """Poll until no server-side socket is left on `port`, or `deadline` (monotonic) passes;
    the remote ports still held."""
    while True:
        left = server_sockets(port)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def stalled(port: int, payload: bytes, tls: ssl.SSLContext | None = None,
            name: str = "a.test") -> socket.socket:
    """A client with a small receive buffer that sends `payload` and never reads."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    if tls is not None:
        s = tls.wrap_socket(s, server_hostname=name)
    s.sendall(payload)
    return s


def served(port: int, n: int, tls: ssl.SSLContext | None = None) -> int:
    """`n` new clients connected at once (all held open), each asking one small request: how
    many got a 200."""
    socks = []
    ok = 0
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            if tls is not None:
                try:
                    s = tls.wrap_socket(s, server_hostname="a.test")
                except (OSError, ssl.SSLError):
                    continue
            socks.append(s)
        time.sleep(0.3)
        for s in socks:
            try:
                s.sendall(b"GET /small HTTP/1.1\r\nHost: a.test\r\n\r\n")
                data = b""
                while b"\r\n\r\n" not in data or not parse_responses(data):
                    d = s.recv(65536)
                    if not d:
                        break
                    data += d
                rs = parse_responses(data)
                ok += bool(rs and rs[0].status == 200)
            except (OSError, ssl.SSLError):
                pass
    finally:
        for s in socks:
            s.close()
    return ok


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    d = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    ca.issue_cert("a.test", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(d / "a.pem"))
    return str(d / "ca.pem"), str(d / "a.pem")


def client_tls(ca: str, alpn: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols([alpn])
    return ctx


CONF = """
worker_processes 1;
error_log error.log info;
events { worker_connections @@CONNS@@; }
http {
    access_log off;
    send_timeout 2s;
    keepalive_timeout 3s;
    server {
        listen 127.0.0.1:@@PORT@@;
        listen 127.0.0.1:@@TLS@@ ssl;
        http2 on;
        server_name a.test;
        ssl_certificate @@CERT@@;
        ssl_certificate_key @@CERT@@;
        location / { proxy_pass http://127.0.0.1:@@APP@@; }
        location = /small { return 200 "small\\n"; }
        location /ws {
            proxy_pass http://127.0.0.1:@@WS@@;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout @@WS_IDLE@@;
        }
    }
}
"""

ALLOW = ("[alert]",)     # "worker_connections are not enough" while the stuck ones are held


def start(truehop: Any, certs: tuple[str, str], app: int, conns: int = 20, ws: int = 1,
          ws_idle: str = "3s") -> tuple[Any, int, int]:
    port, tls = free_ports(2)
    tp = truehop(CONF, PORT=port, TLS=tls, CERT=certs[1], APP=app, WS=ws, CONNS=conns,
                 WS_IDLE=ws_idle, allow_log=ALLOW)
    return tp, port, tls


def check_released(port: int, socks: list[socket.socket], after: float, what: str,
                   labels: dict[int, str] | None = None) -> None:
    left = wait_released(port, time.monotonic() + after)
    stuck = labels or {}
    assert not left, f"{len(left)} {what} still held by the worker {after:.0f}s after their " \
                     f"timeouts: {sorted(str(stuck.get(p, p)) for p in left)}"


# -- HTTP/1.1 ---------------------------------------------------------------------------------

def absorbed_kb(port: int, tls: ssl.SSLContext | None) -> int:
    """How much of a response the kernel takes for a client that never reads (the server's
    send queue and the client's receive queue), in KiB: a response a little larger than this
    ends with its tail in the transport's buffer, below its high-water mark, so nothing ever
    waits on it (before the fix, the close then waited for ever)."""
    s = stalled(port, b"GET /__big?kb=16384 HTTP/1.1\r\nHost: a.test\r\n"
                      b"Connection: close\r\n\r\n", tls)
    try:
        time.sleep(1.0)             # less than send_timeout: the queues are full by now
        me = s.getsockname()[1]
        total = 0
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            f = line.split()
            local = int(f[1].rsplit(":", 1)[1], 16)
            remote = int(f[2].rsplit(":", 1)[1], 16)
            tx, rx = (int(x, 16) for x in f[4].split(":"))
            if local == port and remote == me:
                total += tx
            elif local == me and remote == port:
                total += rx
        return total // 1024
    finally:
        s.close()


KEEPALIVE = 3.0


@pytest.mark.parametrize("use_tls", [False, True])
def test_h1_non_reading_clients_released(truehop: Any, upstream: Any, certs: tuple[str, str],
                                         use_tls: bool) -> None:
    tp, port, tls_port = start(truehop, certs, upstream.port)
    ctx = client_tls(certs[0], "http/1.1") if use_tls else None
    target = tls_port if use_tls else port
    base = absorbed_kb(target, ctx)
    # around the size whose tail stays in the transport's buffer (about 3.8-3.9 MB for the
    # issue's clients; less with a 4 KiB receive buffer), then larger ones
    sizes = [base - 40 + 12 * i for i in range(13)] + [8192, 20480]
    socks = []
    labels = {}
    try:
        for i, kb in enumerate(sizes):
            conn = b"close" if i % 2 else b"keep-alive"
            s = stalled(target, b"GET /__big?kb=%d HTTP/1.1\r\nHost: a.test\r\n"
                                b"Connection: %s\r\n\r\n" % (kb, conn), ctx)
            labels[s.getsockname()[1]] = f"{kb}KiB/{conn.decode()}"
            socks.append(s)
        time.sleep(1.0)         # the upstream has answered; the responses wait on the clients
        # keep-alive connections whose response the kernel holds whole are idle: they go at
        # keepalive_timeout, as nginx's
        check_released(target, socks, max(SEND_TIMEOUT, KEEPALIVE) + SLACK,
                       f"HTTP/1.1 non-reading clients (kernel takes {base} KiB)", labels)
        assert served(target, 10, ctx) == 10
    finally:
        close_all(socks)


def test_h1_slow_reader_gets_everything(truehop: Any, upstream: Any,
                                        certs: tuple[str, str]) -> None:
    """The deadline is send_timeout between progress, not a grace period: a client that
    starts late and reads slowly (never pausing for send_timeout) gets whole responses, the
    tail still queued when the response ended or the connection closed included."""
    tp, port, _ = start(truehop, certs, upstream.port)
    for kb, conn in ((6144, b"close"), (6144, b"keep-alive"), (3000, b"close")):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            s.sendall(b"GET /__big?kb=%d HTTP/1.1\r\nHost: a.test\r\n"
                      b"Connection: %s\r\n\r\n" % (kb, conn))
            time.sleep(SEND_TIMEOUT * 0.6)      # nothing read yet: the queues fill up
            data = b""
            want = kb * 1024
            t_end = time.monotonic() + 60
            while time.monotonic() < t_end:
                d = s.recv(64 * 1024)
                if not d:
                    break
                data += d
                if len(data) > want:
                    rs = parse_responses(data)
                    if rs and len(rs[0].body) >= want:
                        break
                time.sleep(0.01)                # a few MB/s at most
            rs = parse_responses(data)
            assert rs and rs[0].status == 200 and len(rs[0].body) == want, (kb, conn, len(data))
        finally:
            s.close()


# -- HTTP/2 -----------------------------------------------------------------------------------

def h2_big_request(kb: int) -> bytes:
    """Preface, SETTINGS with the largest window, and one GET for a `kb` KiB response: the
    server may send all of it at once."""
    block = hpack.Encoder().encode([(b":method", b"GET"), (b":scheme", b"http"),
                                    (b":path", b"/__big?kb=%d" % kb),
                                    (b":authority", b"a.test")])
    return (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" +
            SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 2 ** 31 - 1}
                          ).serialize() +
            WindowUpdateFrame(0, window_increment=2 ** 30).serialize() +
            HeadersFrame(1, block, flags=["END_HEADERS", "END_STREAM"]).serialize())


@pytest.mark.parametrize("use_tls", [False, True])
def test_h2_non_reading_clients_released(truehop: Any, upstream: Any, certs: tuple[str, str],
                                         use_tls: bool) -> None:
    # upstream connections count against worker_connections, as in nginx, the 15 kept in
    # the keep-alive pool once the responses are read too: 30 of 34 while the clients stall;
    # held past their timeouts, only 4 of the 10 new clients would fit
    tp, port, tls_port = start(truehop, certs, upstream.port, conns=34)
    ctx = client_tls(certs[0], "h2") if use_tls else None
    target = tls_port if use_tls else port
    socks = []
    try:
        for i in range(15):
            # 20 MB as in the issue for a few, 8 MB (still well past what the kernel takes)
            # for the rest, to spare a loaded test machine
            s = stalled(target, h2_big_request(20480 if i < 3 else 8192), ctx)
            if use_tls:
                assert isinstance(s, ssl.SSLSocket) and s.selected_alpn_protocol() == "h2"
            socks.append(s)
        time.sleep(1.0)
        check_released(target, socks, SEND_TIMEOUT + SLACK, "HTTP/2 non-reading clients")
        assert served(target, 10, client_tls(certs[0], "http/1.1") if use_tls else None) == 10
    finally:
        close_all(socks)


# -- WebSocket tunnels ------------------------------------------------------------------------

class Flood:
    """A WebSocket upstream that answers the upgrade, then sends `size` bytes in binary
    frames to a client that will never read them."""

    def __init__(self, size: int = 8 << 20) -> None:
        self.size = size
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.upgraded = 0
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, c: socket.socket) -> None:
        c.settimeout(30)
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                d = c.recv(4096)
                if not d:
                    return
                data += d
            key = b""
            for line in data.split(b"\r\n"):
                if line.lower().startswith(b"sec-websocket-key:"):
                    key = line.split(b":", 1)[1].strip()
            accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            self.upgraded += 1
            frame = b"\x82\x7f" + (65536).to_bytes(8, "big") + b"w" * 65536
            for _ in range(self.size // 65536):
                if self.stop.is_set():
                    return
                c.sendall(frame)
        except OSError:
            pass
        finally:
            c.close()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def flood() -> Iterator[Flood]:
    f = Flood()
    yield f
    f.close()


WS_REQUEST = (b"GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              b"Sec-WebSocket-Version: 13\r\n\r\n")


def ws_stalled(truehop: Any, upstream: Any, certs: tuple[str, str], flood: Flood,
               ws_idle: str, after: float) -> None:
    # each tunnel holds two slots (its upstream connection counts, as in nginx): 20 of 25
    # while they stall; held past their timeouts, only 5 of the 10 new clients would fit
    tp, port, _ = start(truehop, certs, upstream.port, conns=25, ws=flood.port, ws_idle=ws_idle)
    socks = []
    try:
        for _ in range(10):
            socks.append(stalled(port, WS_REQUEST))
        t0 = time.monotonic() + 10
        while flood.upgraded < 10 and time.monotonic() < t0:
            time.sleep(0.1)
        assert flood.upgraded == 10
        time.sleep(1.0)
        check_released(port, socks, after, "WebSocket clients that never read")
        assert served(port, 10) == 10
    finally:
        close_all(socks)


def test_ws_non_reading_clients_released_after_idle(truehop: Any, upstream: Any,
                                                    certs: tuple[str, str],
                                                    flood: Flood) -> None:
    """The tunnel ends at proxy_read_timeout without traffic (3s); its close then has a
    deadline: the client's socket goes within send_timeout more."""
    ws_stalled(truehop, upstream, certs, flood, "3s", 3.0 + SEND_TIMEOUT + SLACK)


def test_ws_non_reading_client_released_at_send_timeout(truehop: Any, upstream: Any,
                                                        certs: tuple[str, str],
                                                        flood: Flood) -> None:
    """As nginx (ngx_http_upstream_process_upgraded arms send_timeout on the client's
    blocked write): the tunnel ends at send_timeout, not at the 60s proxy_read_timeout."""
    ws_stalled(truehop, upstream, certs, flood, "60s", SEND_TIMEOUT + SLACK)

