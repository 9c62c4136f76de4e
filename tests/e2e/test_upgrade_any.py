"""Any upgrade is tunnelled as nginx does when the upstream answers 101 to an Upgrade the
client sent (Docker's `Upgrade: tcp`, kubectl's `SPDY/3.1`); a WebSocket 101 is still checked
against the key; h2c and HTTP/1.0 upgrades are never forwarded (bad-input.md S77, W04)."""

from __future__ import annotations

import socket

from harness import free_port
from raw_upstreams import RawUpstream, header, switching

CONF = """
map $http_upgrade $connection_upgrade { default upgrade; '' close; }
server {
    listen 127.0.0.1:@@PORT@@;
    location / {
        proxy_pass http://127.0.0.1:@@UP@@;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_read_timeout 5s;
    }
}
"""


def exchange(port: int, request: bytes, then: bytes = b"") -> tuple[bytes, bytes]:
    """Send a request, read the response head, then send `then` and read what comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(request)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                return buf, b""
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        if then:
            s.sendall(then)
            while len(rest) < len(then):
                chunk = s.recv(65536)
                if not chunk:
                    break
                rest += chunk
        return head, rest


def test_docker_tcp_upgrade_on_a_post_is_tunnelled(truehop) -> None:
    with RawUpstream(switching()) as up:
        port = free_port()
        truehop(CONF, PORT=port, UP=up.port)
        head, echoed = exchange(port, b"POST /v1.43/containers/x/attach?stream=1 HTTP/1.1\r\n"
                                      b"Host: docker\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n"
                                      b"Content-Type: text/plain\r\n\r\n", b"ls -l\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        assert header(head, "upgrade") == "tcp"
        assert echoed == b"LS -L\n"
        assert header(up.heads[0], "upgrade") == "tcp"
        assert up.heads[0].startswith(b"POST /v1.43/containers/x/attach")


def test_spdy_upgrade_is_tunnelled(truehop) -> None:
    with RawUpstream(switching()) as up:
        port = free_port()
        truehop(CONF, PORT=port, UP=up.port)
        head, echoed = exchange(port, b"GET /api/v1/namespaces/d/pods/p/exec HTTP/1.1\r\n"
                                      b"Host: k8s\r\nUpgrade: SPDY/3.1\r\n"
                                      b"Connection: Upgrade\r\n\r\n", b"spdy-frame")
        assert head.startswith(b"HTTP/1.1 101 ")
        assert echoed == b"SPDY-FRAME"


def test_websocket_with_a_wrong_accept_is_refused(truehop) -> None:
    with RawUpstream(switching(accept="bm90IHRoZSByaWdodCBvbmU=")) as up:
        port = free_port()
        tp = truehop(CONF, PORT=port, UP=up.port)
        head, _ = exchange(port, b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                                 b"Connection: Upgrade\r\n"
                                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                 b"Sec-WebSocket-Version: 13\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 502 ")
        assert "upstream sent invalid Sec-WebSocket-Accept" in tp.error_log()


def test_websocket_with_the_right_accept_is_tunnelled(truehop) -> None:
    with RawUpstream(switching(accept="s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")) as up:
        port = free_port()
        truehop(CONF, PORT=port, UP=up.port)
        head, echoed = exchange(port, b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                                      b"Connection: Upgrade\r\n"
                                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                      b"Sec-WebSocket-Version: 13\r\n\r\n", b"abc")
        assert head.startswith(b"HTTP/1.1 101 ") and echoed == b"ABC"


def test_h2c_and_http10_upgrades_are_not_forwarded(truehop) -> None:
    with RawUpstream(switching()) as up:
        port = free_port()
        truehop(CONF, PORT=port, UP=up.port)
        head, body = exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n"
                                    b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
                                    b"Connection: Upgrade, HTTP2-Settings\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        head, body = exchange(port, b"GET / HTTP/1.0\r\nHost: a\r\nUpgrade: tcp\r\n"
                                    b"Connection: Upgrade\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert [header(h, "upgrade") for h in up.heads] == [None, None]


def test_a_101_to_a_request_without_upgrade_opens_nothing(truehop) -> None:
    """nginx relays it as a response whose body never ends (ssl_proxy_upgrade.t
    "noupgrade"): the client gets no byte of it, the connection is closed."""
    with RawUpstream(switching(always=True)) as up:
        port = free_port()
        tp = truehop(CONF, PORT=port, UP=up.port)
        head, echoed = exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"x")
        assert head == b"" and echoed == b""
        assert "upstream sent unexpected 101 response" in tp.error_log()
